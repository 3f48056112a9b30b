# region: Mul.backward
return unbroadcast(grad * a, a.shape), unbroadcast(grad * b, b.shape)
