"""minidl.nn.functional: the ops layers are built from, under PyTorch's familiar name.

`import minidl.nn.functional as F` then F.relu(x), F.cross_entropy(scores, y), F.conv2d(...).
These are the very functions in minidl.ops; this module only re-exports them.
"""

from minidl.ops import *  # noqa: F403
