axes = reduced_axes(dy)
return dy.sum(axis=axes), dy.sum(axis=axes)
