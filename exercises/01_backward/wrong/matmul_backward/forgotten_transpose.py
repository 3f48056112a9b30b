return grad @ b, a.transpose(0, 1) @ grad
