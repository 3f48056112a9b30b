"""minidl.nn.functional: the ops layers are built from, under PyTorch's familiar name.

`import minidl.nn.functional as F` then F.relu(x), F.cross_entropy(scores, y), F.conv2d(...).
These are the very functions in minidl.ops, plus the functional forms that live beside their
layers: attention (nn/attention.py) and distillation (nn/distillation.py).
"""

from minidl.nn.attention import additive_attention, attention, scaled_dot_product_attention
from minidl.nn.distillation import distillation_loss, soft_targets
from minidl.ops import *  # noqa: F403
from minidl.ops import __all__ as _ops_all

__all__ = [
    *_ops_all,
    "attention",
    "additive_attention",
    "scaled_dot_product_attention",
    "distillation_loss",
    "soft_targets",
]
