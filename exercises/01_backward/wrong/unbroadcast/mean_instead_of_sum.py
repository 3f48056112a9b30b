shape = tuple(shape)
if tuple(grad.shape) == shape:
    return grad
added = grad.ndim - len(shape)
axes = list(range(added))
axes += [added + i for i, n in enumerate(shape) if n == 1 and grad.shape[added + i] != 1]
return grad.mean(tuple(axes), keepdim=True).reshape(shape)
