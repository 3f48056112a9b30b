# region: Max.backward
kept = _kept_shape(x.shape, self.dims)
return grad.reshape(kept).expand(x.shape)
