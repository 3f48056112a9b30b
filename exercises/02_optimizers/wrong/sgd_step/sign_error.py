step = grad + group["weight_decay"] * param
param += group["lr"] * step
