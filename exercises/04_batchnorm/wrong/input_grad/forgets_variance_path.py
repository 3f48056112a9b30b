axes = reduced_axes(dy)
g = dy * per_feature(gamma, dy)
return inv_std * (g - g.mean(axis=axes, keepdims=True))
