shape = tuple(shape)
if tuple(grad.shape) == shape:
    return grad
axes = [i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1]
axes += list(range(len(shape), grad.ndim))
return grad.sum(tuple(axes), keepdim=True).reshape(shape)
