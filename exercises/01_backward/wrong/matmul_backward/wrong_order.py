return grad @ b.transpose(0, 1), grad @ a.transpose(0, 1)
