axes = reduced_axes(x)
mean = x.mean(axis=axes)
var = x.var(axis=axes)
x_hat = (x - per_feature(mean, x)) / np.sqrt(per_feature(var, x) + eps)
if running is not None:
    running["mean"] *= 1 - momentum
    running["mean"] += momentum * mean
    running["var"] *= 1 - momentum
    running["var"] += momentum * var
return per_feature(gamma, x) * x_hat + per_feature(beta, x)
