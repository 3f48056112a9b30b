mean = x.mean(axis=0)
var = x.var(axis=0)
x_hat = (x - mean) / np.sqrt(var + eps)
if running is not None:
    m = x.shape[0]
    running["mean"] *= 1 - momentum
    running["mean"] += momentum * mean.reshape(x.shape[1], -1).mean(axis=1)
    running["var"] *= 1 - momentum
    running["var"] += momentum * var.reshape(x.shape[1], -1).mean(axis=1) * m / (m - 1)
return per_feature(gamma, x) * x_hat + per_feature(beta, x)
