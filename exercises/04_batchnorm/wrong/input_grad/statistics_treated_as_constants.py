return dy * per_feature(gamma, dy) * inv_std
