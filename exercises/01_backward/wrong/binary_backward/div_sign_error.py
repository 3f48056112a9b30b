# region: Div.backward
grad_a = grad / b
grad_b = grad * a / (b * b)
return unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)
