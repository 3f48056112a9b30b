axes = reduced_axes(dy)
return (dy * x_hat).mean(axis=axes), dy.mean(axis=axes)
