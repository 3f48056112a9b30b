# region: Sigmoid.backward
(x,) = self.saved_tensors
return grad * (x * (1 - x))
