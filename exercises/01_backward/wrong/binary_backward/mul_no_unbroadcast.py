# region: Mul.backward
return grad * b, grad * a
