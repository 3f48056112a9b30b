shape = tuple(shape)
added = grad.ndim - len(shape)
if added:
    grad = grad.sum(tuple(range(added)))
return grad.reshape(shape)
