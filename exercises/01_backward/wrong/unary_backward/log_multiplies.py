# region: Log.backward
(x,) = self.saved_tensors
return grad * x
