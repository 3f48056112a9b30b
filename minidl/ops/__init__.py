"""Every differentiable op, as the lowercase functions users call.

Each op is a small Function subclass (forward and backward side by side) in one
of these modules, wrapped by a function that checks its arguments:
    elementwise  arithmetic and pointwise functions
    reduce       sum, mean, max, min, var, logsumexp, softmax
    linalg       matmul, linear
    shape        reshape, transpose, indexing, concat, pad ...
    nn           conv2d, pooling, embedding, dropout, losses
    special      erf, gelu
    fused        linear_act, conv2d_act: a layer and its activation as one node (nn.fuse)
"""

from minidl.ops._util import unbroadcast
from minidl.ops.elementwise import *  # noqa: F403
from minidl.ops.fused import *  # noqa: F403
from minidl.ops.linalg import *  # noqa: F403
from minidl.ops.nn import *  # noqa: F403
from minidl.ops.reduce import *  # noqa: F403
from minidl.ops.shape import *  # noqa: F403
from minidl.ops.special import *  # noqa: F403

__all__ = ["unbroadcast"]
for _module in ("elementwise", "fused", "linalg", "nn", "reduce", "shape", "special"):
    __all__ += __import__(f"minidl.ops.{_module}", fromlist=["__all__"]).__all__
