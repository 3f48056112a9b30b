step = grad + group["weight_decay"] * param
param = param - group["lr"] * step
