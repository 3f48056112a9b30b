"""minidl.nn.utils: gradient clipping where PyTorch keeps it (torch.nn.utils.clip_grad_norm_).

The functions live in minidl.optim.clip, with the lecture's reason for clipping; this module
only gives them PyTorch's address.
"""

from minidl.optim.clip import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
