"""minidl.nn.utils: helpers around the layers, as torch.nn.utils (rnn: variable-length batches)."""

from minidl.nn.utils import rnn

__all__ = ["rnn"]
