"""minidl.nn.functional: the ops layers are built from, under PyTorch's familiar name.

`import minidl.nn.functional as F` then F.relu(x), F.cross_entropy(scores, y), F.conv2d(...),
F.one_hot(y, 10). These are the very functions in minidl.ops, plus the functional forms that
live beside their layers: attention (nn/attention.py) and distillation (nn/distillation.py).
One differs: `pad` takes PyTorch's flat (left, right, top, bottom, ...) widths here
(minidl.pad takes one (before, after) pair per dim).
"""

from minidl import ops as _ops
from minidl.nn.attention import additive_attention, attention, scaled_dot_product_attention
from minidl.nn.distillation import distillation_loss, soft_targets
from minidl.ops import *  # noqa: F403
from minidl.ops import __all__ as _ops_all

__all__ = [
    *(name for name in _ops_all if name != "pad"),
    "pad",
    "attention",
    "additive_attention",
    "scaled_dot_product_attention",
    "distillation_loss",
    "soft_targets",
]


def pad(input, pad, mode="constant", value=0.0):  # noqa: A002 - PyTorch's argument names
    """F.pad as in PyTorch: `pad` lists (before, after) widths from the LAST dim backwards,
    e.g. (1, 1) pads the last dim by 1 on each side and (1, 1, 2, 0) also the one before it."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is implemented, got {mode!r}")
    widths = tuple(pad)
    if len(widths) % 2 or len(widths) // 2 > input.ndim:
        raise ValueError(f"pad: expects an even number of widths, two per dim for at most {input.ndim} dims, got {pad}")
    pairs = [(widths[i], widths[i + 1]) for i in range(0, len(widths), 2)][::-1]  # last dim first -> first dim first
    return _ops.pad(input, pairs, value)
