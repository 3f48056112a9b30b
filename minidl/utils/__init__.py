"""minidl.utils: PyTorch's addresses for things minidl keeps elsewhere (minidl.utils.data)."""

from minidl.utils import data

__all__ = ["data"]
