"""minidl.data: the DataLoader, splits, the built-in and generated data sets, IDX files and checked downloads.

Downloads are tested against local files only (file:// URLs and a server on 127.0.0.1).
"""

import functools
import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minidl
from minidl import data


def numbers_dataset(n=10):
    return data.TensorDataset(np.arange(n, dtype=np.float32)[:, None], np.arange(n))


def epoch_order(loader):
    return np.concatenate([y.data for _, y in loader])


# ---------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------
def test_loader_covers_every_example_once_per_epoch_in_batches():
    loader = data.DataLoader(numbers_dataset(10), batch_size=4, shuffle=True)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(np.concatenate([y.data for _, y in batches])) == list(range(10))
    x, y = batches[0]
    assert isinstance(x, minidl.Tensor) and x.dtype == np.float32 and x.shape == (4, 1)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x.data[:, 0], y.data)  # rows stay paired


def test_drop_last_and_no_shuffle():
    loader = data.DataLoader(numbers_dataset(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    np.testing.assert_array_equal(epoch_order(loader), np.arange(8))


def test_shuffle_is_reproducible_with_manual_seed_and_differs_between_epochs():
    loader = data.DataLoader(numbers_dataset(50), batch_size=8, shuffle=True)
    minidl.manual_seed(123)
    first, second = epoch_order(loader), epoch_order(loader)
    minidl.manual_seed(123)
    again_first, again_second = epoch_order(loader), epoch_order(loader)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(50))


def test_explicit_seed_uses_a_private_generator():
    a = data.DataLoader(numbers_dataset(30), batch_size=5, shuffle=True, seed=7)
    minidl.manual_seed(1)
    order = epoch_order(a)
    b = data.DataLoader(numbers_dataset(30), batch_size=5, shuffle=True, seed=7)
    minidl.manual_seed(999)  # the global generator does not matter
    np.testing.assert_array_equal(epoch_order(b), order)
    state = b.state_dict()
    next_epoch = epoch_order(b)
    c = data.DataLoader(numbers_dataset(30), batch_size=5, shuffle=True, seed=0)
    c.load_state_dict(state)
    np.testing.assert_array_equal(epoch_order(c), next_epoch)


def test_generic_dataset_and_custom_collate():
    class Squares(data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return float(i), i * i

    x, y = next(iter(data.DataLoader(Squares(), batch_size=5)))
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y.data, [0, 1, 4, 9, 16])
    batch = next(iter(data.DataLoader(Squares(), batch_size=2, collate_fn=lambda items: items)))
    assert batch == [(0.0, 0), (1.0, 1)]


def test_loader_argument_errors():
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(numbers_dataset(3), batch_size=0)
    with pytest.raises(ValueError, match="same first dimension"):
        data.TensorDataset(np.zeros(3), np.zeros(4))


def test_random_split_and_train_test_split_partition_the_data():
    ds = numbers_dataset(10)
    a, b = data.random_split(ds, [7, 3], seed=0)
    ids = sorted([int(a[i][1]) for i in range(7)] + [int(b[i][1]) for i in range(3)])
    assert ids == list(range(10))
    c, d = data.random_split(ds, [0.5, 0.5], seed=0)
    assert (len(c), len(d)) == (5, 5)
    train, test = data.train_test_split(ds, test_fraction=0.3, seed=1)
    assert (len(train), len(test)) == (7, 3)
    assert sorted(epoch_order(data.DataLoader(train, batch_size=3))) != sorted(epoch_order(data.DataLoader(test, 3)))
    with pytest.raises(ValueError, match="add up"):
        data.random_split(ds, [5, 6])


# ---------------------------------------------------------------------------
# Built-in and generated data
# ---------------------------------------------------------------------------
def test_digits_split_is_fixed_and_disjoint():
    everything = data.digits()
    train, test = data.digits(train=True), data.digits(train=False)
    assert len(everything) == 1797 and len(train) + len(test) == 1797 and len(test) == 359
    x, y = train.arrays
    assert x.shape[1:] == (1, 8, 8) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert set(np.unique(y)) == set(range(10))
    train_rows = {row.tobytes() for row in x}
    # A few digit images appear twice in the data set; almost all test images are unseen.
    assert sum(row.tobytes() in train_rows for row in test.arrays[0]) < 5
    np.testing.assert_array_equal(data.digits(train=True).arrays[1], y)


def test_import_minidl_loads_no_heavy_optional_module():
    code = (
        "import sys, minidl; "
        "print([m for m in ('sklearn', 'matplotlib', 'torch', 'mpi4py', 'tqdm') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("make,classes", [(data.spirals, 3), (data.moons, 2), (data.blobs, 3)])
def test_synthetic_data_is_seeded_and_balanced(make, classes):
    a, b, c = make(seed=0), make(seed=0), make(seed=1)
    x, y = a.arrays
    assert x.dtype == np.float32 and x.shape[1] == 2 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [len(y) // classes] * classes
    np.testing.assert_array_equal(x, b.arrays[0])
    assert not np.array_equal(x, c.arrays[0])


def test_spirals_are_not_linearly_separable_but_blobs_are():
    from minidl import nn, optim

    def linear_accuracy(dataset):
        minidl.manual_seed(0)
        model = nn.Linear(2, int(dataset.arrays[1].max()) + 1)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = (minidl.tensor(a) for a in dataset.arrays)
        for _ in range(300):
            loss = nn.CrossEntropyLoss()(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (model(x).data.argmax(axis=1) == y.data).mean()

    assert linear_accuracy(data.spirals(seed=0)) < 0.7
    assert linear_accuracy(data.blobs(seed=0, cluster_std=0.5)) > 0.95


@pytest.mark.parametrize("kind", ["copy", "reverse"])
def test_sequence_task_layout(kind):
    inputs, targets = data.sequence_task(kind, n_samples=20, length=3, vocab_size=5, seed=0).arrays
    assert inputs.shape == targets.shape == (20, 6)
    symbols = inputs[:, :3]
    assert symbols.min() >= 1 and symbols.max() <= 4
    assert np.all(inputs[:, 3:] == 0)
    assert np.all(targets[:, :3] == data.IGNORE_INDEX)
    expected = symbols[:, ::-1] if kind == "reverse" else symbols
    np.testing.assert_array_equal(targets[:, 3:], expected)


def test_vocabulary_and_skipgram_pairs():
    sentences = [["the", "quick", "fox"], ["the", "fox"]]
    vocab = data.Vocabulary([w for s in sentences for w in s])
    assert vocab.words == ["fox", "the", "quick"]  # most frequent first, ties alphabetical
    centers, contexts = data.skipgram_pairs(sentences, vocab, window=1)
    pairs = sorted(zip(vocab.decode(centers), vocab.decode(contexts)))
    assert pairs == sorted(
        [("the", "quick"), ("quick", "the"), ("quick", "fox"), ("fox", "quick"), ("the", "fox"), ("fox", "the")]
    )
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        vocab["zebra"]


def test_text_file_corpus(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("The King spoke. The queen laughed!\n\nA new paragraph")
    assert data.text_file_corpus(path) == [
        ["the", "king", "spoke"],
        ["the", "queen", "laughed"],
        ["a", "new", "paragraph"],
    ]


def test_analogy_corpus_plants_the_attribute_cues():
    sentences = data.analogy_corpus(200, seed=0)
    king = [s for s in sentences if "king" in s]
    assert king and all(any(w in s for w in ("crown", "throne", "palace", "reign")) for s in king)
    assert all(not any(w in s for w in ("she", "her", "hers", "dress")) for s in king)


# ---------------------------------------------------------------------------
# MNIST IDX files and checked downloads (local files only)
# ---------------------------------------------------------------------------
def idx_bytes(array):
    """Encode an array of unsigned bytes as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def corrupt_gzip(content):
    """gzip-compress content, then garble the deflate stream (the header stays valid): zlib.error on reading."""
    compressed = bytearray(gzip.compress(content))
    for i in range(12, 40):
        compressed[i] ^= 0xFF
    return bytes(compressed)


def write_fake_mnist(folder, n_train=12, n_test=5, compress=True):
    """Write small files with MNIST's names and format; returns {filename: bytes}."""
    rng = np.random.default_rng(0)
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(rng.integers(0, 256, (n, 28, 28)))
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(rng.integers(0, 10, n))
    os.makedirs(folder, exist_ok=True)
    written = {}
    for name, content in files.items():
        if compress:
            name, content = name + ".gz", gzip.compress(content)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
        written[name] = content
    return written


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files_from_a_folder(tmp_path, compress):
    write_fake_mnist(tmp_path, compress=compress)
    train = data.mnist(tmp_path, train=True)
    test = data.mnist(tmp_path, kind="fashion", train=False)
    x, y = train.arrays
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (12,) and y.dtype == np.int64
    assert len(test) == 5
    raw = data.read_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if compress else "")))
    np.testing.assert_allclose(x[:, 0], raw / 255, rtol=1e-6)  # one float32 rounding of raw / 255 (<= 6e-8)


def test_mnist_errors_name_the_missing_files_and_bad_contents(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not contain train-images-idx3-ubyte and train-labels"):
        data.mnist(tmp_path)
    (tmp_path / "bad-idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad-idx")
    (tmp_path / "short-idx").write_bytes(idx_bytes(np.zeros((3, 2), np.uint8))[:-1])
    with pytest.raises(ValueError, match="has 17 bytes, but its header \\(3, 2\\) needs 18"):
        data.read_idx(tmp_path / "short-idx")
    (tmp_path / "corrupt.gz").write_bytes(corrupt_gzip(idx_bytes(np.arange(900).reshape(30, 30) % 7)))
    with pytest.raises(ValueError, match="cannot read .*corrupt.gz: .*decompressing"):
        data.read_idx(tmp_path / "corrupt.gz")
    with pytest.raises(ValueError, match="kind must be"):
        data.mnist(tmp_path, kind="cifar")


def checksums_of(files, algorithm):
    return {name: f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}" for name, content in files.items()}


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_mnist_download_from_a_file_url_mirror_verifies_checksums(tmp_path, algorithm):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    files = write_fake_mnist(mirror)
    train = data.mnist(cache, download=True, base_url=mirror.as_uri(), checksums=checksums_of(files, algorithm))
    assert len(train) == 12
    assert sorted(os.listdir(cache)) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (cache / "train-images-idx3-ubyte.gz").read_bytes() == files["train-images-idx3-ubyte.gz"]


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    files = write_fake_mnist(mirror)
    wrong = checksums_of(files, "sha256")
    wrong["train-images-idx3-ubyte.gz"] = "sha256:" + "0" * 64
    with pytest.raises(data.DownloadError, match="checksum mismatch.*expected sha256 0000"):
        data.mnist(cache, download=True, base_url=mirror.as_uri(), checksums=wrong)
    assert "train-images-idx3-ubyte.gz" not in os.listdir(cache)
    assert not [name for name in os.listdir(cache) if name.endswith(".part")]


def test_download_of_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(data.DownloadError, match="could not download"):
        data.download_url((tmp_path / "nothing-here.gz").as_uri(), tmp_path / "out.gz")
    assert os.listdir(tmp_path) == []


def test_default_checksums_are_the_published_ones_and_reject_other_files(tmp_path):
    """Fake files served under MNIST's names fail the real MD5s: the default table is in force."""
    mirror = tmp_path / "mirror"
    write_fake_mnist(mirror)
    with pytest.raises(data.DownloadError, match="expected md5 f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        data.mnist(tmp_path / "cache", download=True, base_url=mirror.as_uri())


@pytest.fixture
def local_http_server(tmp_path):
    """Serve tmp_path/mirror on 127.0.0.1 (a free port) for the duration of a test."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    handler = functools.partial(QuietHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield mirror, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_mnist_download_over_http_from_a_local_server(tmp_path, local_http_server):
    mirror, url = local_http_server
    files = write_fake_mnist(mirror)
    test = data.mnist(
        tmp_path / "cache", train=False, download=True, base_url=url, checksums=checksums_of(files, "md5")
    )
    assert len(test) == 5
    with pytest.raises(data.DownloadError, match="could not download .*: HTTP 404"):
        data.download_url(url + "missing.gz", tmp_path / "x.gz")


class TruncatingHandler(QuietHandler):
    """Promises 1000 bytes and sends 10, then hangs up: what a dropped connection looks like.

    /chunked sends a chunked response cut off inside a chunk (http.client raises IncompleteRead);
    any other path gives a Content-Length that is never reached (http.client just stops reading).
    """

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"3e8\r\n" + b"x" * 10)
        else:
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
        self.wfile.flush()
        self.close_connection = True


@pytest.mark.parametrize(
    "path,expected",
    [("chunked/a.gz", "IncompleteRead"), ("plain/a.gz", "the connection closed after 10 of 1000 bytes")],
)
def test_a_truncated_http_response_is_a_clear_error_and_keeps_nothing(tmp_path, path, expected):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TruncatingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path}"
        with pytest.raises(data.DownloadError, match=f"could not download {url}: .*{expected}"):
            data.download_url(url, tmp_path / "out.gz")
    finally:
        server.shutdown()
        server.server_close()
    assert os.listdir(tmp_path) == []


def test_digits_read_without_importing_sklearn_match_sklearns_loader():
    from sklearn.datasets import load_digits

    from minidl.data.digits import load_digits_arrays

    images, labels = load_digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(images, (bunch.images / 16.0).astype(np.float32)[:, None])
    np.testing.assert_array_equal(labels, bunch.target)
