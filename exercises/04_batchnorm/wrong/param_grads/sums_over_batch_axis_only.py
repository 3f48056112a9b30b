return (dy * x_hat).sum(axis=0).reshape(dy.shape[1], -1)[:, 0], dy.sum(axis=0).reshape(dy.shape[1], -1)[:, 0]
