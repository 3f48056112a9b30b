# region: Mean.backward
return grad.reshape(_kept_shape(x.shape, self.dims)).expand(x.shape)
