# region: Sum.backward
return grad.expand(x.shape)
