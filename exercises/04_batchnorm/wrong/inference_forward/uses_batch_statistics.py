axes = reduced_axes(x)
x_hat = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
return per_feature(gamma, x) * x_hat + per_feature(beta, x)
