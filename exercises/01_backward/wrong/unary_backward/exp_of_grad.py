# region: Exp.backward
return grad.exp()
