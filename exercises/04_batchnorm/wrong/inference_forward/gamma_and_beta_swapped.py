x_hat = (x - per_feature(running_mean, x)) / np.sqrt(per_feature(running_var, x) + eps)
return per_feature(beta, x) * x_hat + per_feature(gamma, x)
