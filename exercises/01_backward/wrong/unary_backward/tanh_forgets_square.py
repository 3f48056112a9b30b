# region: Tanh.backward
y = self.output
return grad * (1 - y)
