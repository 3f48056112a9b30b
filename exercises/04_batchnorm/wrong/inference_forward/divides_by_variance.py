x_hat = (x - per_feature(running_mean, x)) / (per_feature(running_var, x) + eps)
return per_feature(gamma, x) * x_hat + per_feature(beta, x)
