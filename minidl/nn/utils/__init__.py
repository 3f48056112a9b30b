"""minidl.nn.utils: helpers around the layers, where PyTorch keeps them (torch.nn.utils).

rnn: variable-length batches (packing). clip_grad_norm_ / clip_grad_value_ live in
minidl.optim.clip, with the lecture's reason for clipping; this module gives them PyTorch's address.
"""

from minidl.nn.utils import rnn
from minidl.optim.clip import clip_grad_norm_, clip_grad_value_

__all__ = ["rnn", "clip_grad_norm_", "clip_grad_value_"]
