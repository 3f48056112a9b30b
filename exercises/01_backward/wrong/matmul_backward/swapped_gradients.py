return a.transpose(0, 1) @ grad, grad @ b.transpose(0, 1)
