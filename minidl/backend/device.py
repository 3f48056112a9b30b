"""Devices: where a tensor's array lives and which kernel set computes on it.

    minidl.device("cpu")        minidl.device("cuda:0")        minidl.device("cuda", 0)

A device is a string ("cpu", "cuda", "cuda:1") with PyTorch's `.type` and `.index`, so it
is at once the key the backend looks kernel sets up by (`active_kernels[tensor.device]`,
once per op) and the object PyTorch code expects (`x.device.type == "cpu"`). Devices are
interned: `device("cpu") is device("cpu")`, which keeps that per-op lookup an identity hit.
"""

DEVICE_TYPES = ("cpu", "cuda")


class device(str):  # noqa: N801 - PyTorch's name
    """A device: device("cpu"), device("cuda"), device("cuda:1") or device("cuda", 1)."""

    __slots__ = ()
    _interned = {}

    def __new__(cls, type_or_name="cpu", index=None):
        if type(type_or_name) is cls and index is None:
            return type_or_name
        key = (type_or_name, index)
        found = cls._interned.get(key)
        if found is not None:
            return found
        name = _parse(type_or_name, index)
        made = cls._interned.get((name, None))
        if made is None:
            made = cls._interned[(name, None)] = super().__new__(cls, name)
        cls._interned[key] = made
        return made

    @property
    def type(self):
        """ "cpu" or "cuda"."""
        return str.partition(self, ":")[0] if ":" in self else str(self)

    @property
    def index(self):
        """The device number ("cuda:1" -> 1), or None when none was given."""
        _, colon, number = str.partition(self, ":")
        return int(number) if colon else None

    def __repr__(self):
        extra = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{extra})"

    def __reduce__(self):  # pickle (and copy) as a device again, not as a plain string
        return (device, (str(self),))


def _parse(type_or_name, index):
    """The canonical name of a device given as "cuda:1", ("cuda", 1), or a device."""
    if not isinstance(type_or_name, str):
        raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {type(type_or_name).__name__}")
    kind, colon, number = str(type_or_name).partition(":")
    if kind not in DEVICE_TYPES:
        raise ValueError(f"device: unknown device type {kind!r} in {type_or_name!r}; expected one of {DEVICE_TYPES}")
    if colon:
        if index is not None:
            raise ValueError(f"device: {type_or_name!r} already names an index; do not pass index={index} too")
        if not number.isdigit():
            raise ValueError(f"device: the index in {type_or_name!r} must be a non-negative integer")
        index = int(number)
    if index is None:
        return kind
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"device: index must be a non-negative integer, got {index!r}")
    if kind == "cpu" and index != 0:
        raise ValueError(f"device: the cpu has only index 0, got {index}")
    return "cpu" if kind == "cpu" else f"{kind}:{index}"


CPU = device("cpu")
