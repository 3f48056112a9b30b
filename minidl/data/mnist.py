"""MNIST and Fashion-MNIST from their IDX files, read with NumPy; optional checked download.

The IDX format is tiny: 2 zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then each dimension as a big-endian int32, then the values. Files may be
gzipped (as distributed). Put the four files in a folder and pass it as `root`, or pass
download=True to fetch them (into `root`, or ~/.cache/minidl/<kind>) from `base_url`.
"""

import gzip
import os
import zlib

import numpy as np

from minidl.data.dataset import TensorDataset
from minidl.data.download import download_url, file_digest, parse_checksum

FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Where the .gz files are published and their published MD5 checksums.
BASE_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion": {
        "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
    },
}


class MissingFilesError(FileNotFoundError):
    """`root` lacks some of the IDX files and download=False.

    root, missing, kind and url (where download=True would fetch them from) are attributes,
    so a front end can phrase the advice in its own words (`minidl train` says --download).
    """

    def __init__(self, root, missing, kind, url):
        self.root, self.missing, self.kind, self.url = root, list(missing), kind, url
        super().__init__(
            f"mnist: {root} does not contain {' and '.join(self.missing)} (plain or .gz): put the files there, "
            f"or pass download=True to fetch them from {url} (base_url= chooses another mirror)"
        )


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (gzipped if its name ends in .gz) into a NumPy array.

    A file that cannot be read becomes a ValueError naming it: a missing or unreadable file
    (OSError), a truncated gzip stream (EOFError) or a garbled one (zlib.error).
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"read_idx: cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(n) for n in np.frombuffer(raw[4:header], dtype=">i4"))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"read_idx: {path} has {len(raw)} bytes, but its header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(root, candidate)
        if os.path.exists(path):
            return path
    return None


def default_cache_dir(kind):
    base = os.environ.get("MINIDL_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "minidl"))
    return os.path.join(base, kind)


def mnist(root=None, kind="mnist", train=True, download=False, base_url=None, checksums=None):
    """The MNIST (kind="mnist") or Fashion-MNIST (kind="fashion") train or test set.

    Returns a TensorDataset of images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64.
    root       folder holding the IDX files (plain or .gz)
    download   fetch missing files into root (or the cache folder) from base_url
               (default: the official mirror), verifying `checksums` (default: the published MD5s)
    """
    if kind in ("fashion-mnist", "fashion_mnist"):
        kind = "fashion"
    if kind not in BASE_URLS:
        raise ValueError(f"mnist: kind must be 'mnist' or 'fashion', got {kind!r}")
    if root is None:
        if not download:
            raise ValueError(
                f"mnist: give root= (the folder with the IDX files) or download=True "
                f"(fetches them from {base_url or BASE_URLS[kind]} into {default_cache_dir(kind)})"
            )
        root = default_cache_dir(kind)
    names = FILES[bool(train)]
    paths = [_find(root, name) for name in names]
    if None in paths:
        if not download:
            missing = [n for n, p in zip(names, paths) if p is None]
            raise MissingFilesError(root, missing, kind, base_url or BASE_URLS[kind])
        checksums = CHECKSUMS[kind] if checksums is None else checksums
        base_url = BASE_URLS[kind] if base_url is None else base_url
        paths = [p or fetch(name + ".gz", root, base_url, checksums.get(name + ".gz")) for name, p in zip(names, paths)]
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"mnist: expected images (N, H, W) and labels (N,), got {images.shape} from {paths[0]} "
            f"and {labels.shape} from {paths[1]}"
        )
    return TensorDataset((images[:, None] / np.float32(255)).astype(np.float32), labels.astype(np.int64))


def fetch(filename, root, base_url, checksum):
    """Download base_url + filename into root/filename (checked), unless a verified copy is already there."""
    destination = os.path.join(root, filename)
    if os.path.exists(destination):
        if checksum is None or file_digest(destination, parse_checksum(checksum)[0]) == parse_checksum(checksum)[1]:
            return destination
    url = base_url if base_url.endswith("/") else base_url + "/"
    return download_url(url + filename, destination, checksum)


def fashion_mnist(root=None, train=True, download=False, base_url=None, checksums=None):
    """Fashion-MNIST (Zalando's clothes images, same format as MNIST); see mnist()."""
    return mnist(root, "fashion", train, download, base_url, checksums)
