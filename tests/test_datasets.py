"""minidl.data.datasets: the IDX reader, MNIST (local files, torchvision's layout, downloads
from a local HTTP server, the real test set), the offline Digits and load_mnist_or_digits.

Expected bytes and arrays are built in the tests with ``struct``, ``gzip`` and
``numpy.frombuffer`` -- never with minidl's own reader or writer -- and the pixel scaling is
compared with torch's ``x.float() / 255`` (what torchvision's ToTensor computes)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import minidl
from minidl.data import DataLoader, TensorDataset
from minidl.data.datasets import (
    MNIST,
    Digits,
    IDXError,
    load_mnist_or_digits,
    mnist,
    parse_idx,
    read_idx,
    write_idx,
)

# The real MNIST test set, kept beside the repository (never copied into it).
REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


# ---- IDX files written by hand ------------------------------------------------------------------


def idx_bytes(code: int, shape: tuple[int, ...], values: list, fmt: str) -> bytes:
    """An IDX file laid out byte by byte: 0, 0, type code, ndim, sizes, big-endian values."""
    header = bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape)
    return header + b"".join(struct.pack(">" + fmt, v) for v in values)


@pytest.mark.parametrize(
    "code, fmt, values, dtype",
    [
        (0x08, "B", [0, 1, 255, 128, 7, 9], np.uint8),
        (0x09, "b", [-128, 127, 0, -1, 5, 6], np.int8),
        (0x0B, "h", [-32768, 32767, 1, -2, 3, 300], np.int16),
        (0x0C, "i", [-(2**31), 2**31 - 1, 0, 1, -5, 70000], np.int32),
        (0x0D, "f", [0.5, -1.25, 3.0, 1e-3, 2.0, -0.0], np.float32),
        (0x0E, "d", [0.1, -2.5, 1e300, 4.0, 5.0, 6.0], np.float64),
    ],
)
def test_parse_idx_reads_every_type_in_native_byte_order(code, fmt, values, dtype):
    arr = parse_idx(idx_bytes(code, (2, 3), values, fmt))
    assert arr.dtype == np.dtype(dtype) and arr.dtype.isnative and arr.shape == (2, 3)
    np.testing.assert_array_equal(arr.ravel(), np.array(values, dtype=dtype))
    arr[0, 0] = 1  # writable, not a view of the bytes


def test_read_idx_gzipped_or_not_and_write_idx_produces_the_same_bytes(tmp_path):
    raw = idx_bytes(0x08, (3, 2, 2), list(range(12)), "B")
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "renamed").write_bytes(gzip.compress(raw))  # gzip is recognised by content
    for name in ("a.idx", "a.idx.gz", "renamed"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), np.arange(12, dtype=np.uint8).reshape(3, 2, 2))
    write_idx(tmp_path / "b.idx", np.arange(12, dtype=np.uint8).reshape(3, 2, 2))
    assert (tmp_path / "b.idx").read_bytes() == raw
    write_idx(tmp_path / "c.idx.gz", np.array([1.5, -2.0], dtype=np.float64))
    assert gzip.decompress((tmp_path / "c.idx.gz").read_bytes()) == idx_bytes(0x0E, (2,), [1.5, -2.0], "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.idx", "a.idx.gz", "b.idx", "c.idx.gz", "renamed"]
    with pytest.raises(TypeError, match="cannot store dtype int64"):
        write_idx(tmp_path / "d.idx", np.arange(3))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x05", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x05", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "truncated: its header declares 3 dimensions"),
        (idx_bytes(0x08, (2, 3), list(range(6)), "B")[:-1], "truncated: shape \\(2, 3\\)"),
        (idx_bytes(0x08, (2, 3), list(range(6)), "B") + b"\x00", "longer than its header says"),
        (idx_bytes(0x0C, (2,), [1, 2], "i")[:-2], "needs 8 bytes"),
    ],
)
def test_parse_idx_rejects_malformed_files_naming_them(data, message):
    with pytest.raises(IDXError, match=message) as info:
        parse_idx(data, "some/file.idx")
    assert "some/file.idx" in str(info.value)


def test_read_idx_reports_damaged_gzip(tmp_path):
    packed = gzip.compress(idx_bytes(0x08, (100,), list(range(100)), "B"))
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(IDXError, match=r"cut.gz is a damaged gzip file"):
        read_idx(tmp_path / "cut.gz")
    flipped = bytearray(packed)
    flipped[-6] ^= 0xFF  # the CRC
    (tmp_path / "crc.gz").write_bytes(bytes(flipped))
    with pytest.raises(IDXError, match=r"crc.gz is a damaged gzip file"):
        read_idx(tmp_path / "crc.gz")


# ---- MNIST from synthetic files ------------------------------------------------------------------------


def fake_mnist_files(n: int, seed: int) -> dict[str, tuple[np.ndarray, bytes, bytes]]:
    """For each split: (images, labels) and the two IDX files' bytes, built with struct."""
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, count in (("train", n), ("t10k", n - 1)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        files[f"{prefix}-images-idx3-ubyte"] = images, idx_bytes(0x08, (count, 28, 28), images.ravel().tolist(), "B")
        files[f"{prefix}-labels-idx1-ubyte"] = labels, idx_bytes(0x08, (count,), labels.tolist(), "B")
    return files


def write_fake_mnist(folder: Path, files: dict, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (_, raw) in files.items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)


@pytest.mark.parametrize("layout", ["flat-gz", "flat-raw", "torchvision"])
def test_mnist_reads_synthetic_files_in_every_layout(tmp_path, layout):
    files = fake_mnist_files(6, seed=1)
    folder = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    write_fake_mnist(folder, files, gz=layout != "flat-raw")
    for train, prefix in ((True, "train"), (False, "t10k")):
        ds = MNIST(tmp_path, train=train)
        images, _ = files[f"{prefix}-images-idx3-ubyte"]
        labels, _ = files[f"{prefix}-labels-idx1-ubyte"]
        assert len(ds) == len(labels)
        assert ds.data.dtype == np.uint8 and ds.targets.dtype == np.int64
        np.testing.assert_array_equal(ds.data, images)
        np.testing.assert_array_equal(ds.targets, labels)
        x, y = ds[2]
        assert isinstance(y, int) and y == labels[2]
        assert x.dtype is minidl.float32 and x.shape == (1, 28, 28)
        expected = torch.from_numpy(images[2]).float().div(255).unsqueeze(0).numpy()
        np.testing.assert_array_equal(x.numpy(), expected)


def test_mnist_transforms_tensors_and_loader(tmp_path):
    files = fake_mnist_files(9, seed=2)
    write_fake_mnist(tmp_path, files)
    images, _ = files["train-images-idx3-ubyte"]
    labels, _ = files["train-labels-idx1-ubyte"]
    scaled = torch.from_numpy(images).float().div(255).numpy()
    ds = MNIST(tmp_path, transform=lambda t: t.reshape(-1), target_transform=lambda c: c + 100)
    x, y = ds[0]
    assert x.shape == (784,) and y == labels[0] + 100
    xs, ys = ds.as_tensors()
    assert xs.shape == (9, 1, 28, 28) and xs.dtype is minidl.float32 and ys.dtype is minidl.int64
    np.testing.assert_array_equal(xs.numpy()[:, 0], scaled)
    np.testing.assert_array_equal(ys.numpy(), labels)
    flat, _ = ds.as_tensors(flatten=True)
    assert flat.shape == (9, 784)
    # sample by sample, then batched: the same as the TensorDataset of as_tensors()
    plain = MNIST(tmp_path)
    batches = list(DataLoader(plain, batch_size=4))
    fast = list(DataLoader(TensorDataset(*plain.as_tensors()), batch_size=4))
    for (a, b), (c, d) in zip(batches, fast):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
    assert "Split: Train" in repr(plain) and plain.class_to_idx["3 - three"] == 3


def test_mnist_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MNIST(tmp_path / "nowhere", train=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and str(tmp_path / "nowhere") in message
    assert "MNIST/raw" in message and "download=True" in message


def test_mnist_rejects_swapped_or_inconsistent_files(tmp_path):
    files = fake_mnist_files(5, seed=3)
    write_fake_mnist(tmp_path, files)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    good_images, good_labels = images.read_bytes(), labels.read_bytes()
    images.write_bytes(good_labels)
    with pytest.raises(IDXError, match="magic number 2051"):
        MNIST(tmp_path)
    images.write_bytes(good_images)
    labels.write_bytes(gzip.compress(idx_bytes(0x08, (4,), [1, 2, 3, 4], "B")))
    with pytest.raises(IDXError, match="5 images but .* 4 labels"):
        MNIST(tmp_path)
    labels.write_bytes(gzip.compress(idx_bytes(0x08, (5,), [1, 2, 3, 4, 12], "B")))
    with pytest.raises(IDXError, match="label 12"):
        MNIST(tmp_path)
    labels.write_bytes(good_labels[:-10])
    with pytest.raises(IDXError, match="train-labels-idx1-ubyte.gz"):
        MNIST(tmp_path)


# ---- downloads from a local server ------------------------------------------------------------------------


class Server:
    """A local HTTP server: ``files`` maps URL paths to bytes; ``requests`` records the paths asked."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(self.path)
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def fake_remote(monkeypatch):
    """Synthetic gzipped MNIST files, with RESOURCES pointing at their MD5 sums."""
    files = fake_mnist_files(4, seed=4)
    gz = {f"{stem}.gz": gzip.compress(raw) for stem, (_, raw) in files.items()}
    monkeypatch.setattr(mnist, "RESOURCES", {name: hashlib.md5(body).hexdigest() for name, body in gz.items()})
    return files, gz


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_fetches_verifies_and_reads(tmp_path, server, fake_remote, monkeypatch):
    files, gz = fake_remote
    for name, body in gz.items():
        server.files[f"/good/{name}"] = body
    monkeypatch.setattr(mnist, "MIRRORS", [server.url + "/good/"])
    ds = MNIST(tmp_path / "data", train=False, download=True)
    np.testing.assert_array_equal(ds.data, files["t10k-images-idx3-ubyte"][0])
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert sorted(server.requests) == ["/good/t10k-images-idx3-ubyte.gz", "/good/t10k-labels-idx1-ubyte.gz"]
    MNIST(tmp_path / "data", train=False, download=True)  # already there: nothing is fetched again
    assert len(server.requests) == 2


def test_load_mnist_or_digits_downloads_both_splits(tmp_path, server, fake_remote, monkeypatch):
    files, gz = fake_remote
    for name, body in gz.items():
        server.files[f"/m/{name}"] = body
    monkeypatch.setattr(mnist, "MIRRORS", [server.url + "/m/"])
    split = load_mnist_or_digits(tmp_path, download=True)
    assert split.name == "MNIST" and len(server.requests) == 4
    np.testing.assert_array_equal(split.y_train.numpy(), files["train-labels-idx1-ubyte"][0])
    np.testing.assert_array_equal(split.y_test.numpy(), files["t10k-labels-idx1-ubyte"][0])


def test_download_skips_a_mirror_with_a_bad_checksum(tmp_path, server, fake_remote, monkeypatch):
    files, gz = fake_remote
    for name, body in gz.items():
        server.files[f"/bad/{name}"] = body[:-1] + bytes([body[-1] ^ 1])
        server.files[f"/good/{name}"] = body
    monkeypatch.setattr(mnist, "MIRRORS", [server.url + "/bad/", server.url + "/missing/", server.url + "/good/"])
    ds = MNIST(tmp_path, train=True, download=True)
    np.testing.assert_array_equal(ds.targets, files["train-labels-idx1-ubyte"][0])
    assert (tmp_path / "train-images-idx3-ubyte.gz").read_bytes() == gz["train-images-idx3-ubyte.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_download_failures_are_explained_and_leave_no_file(tmp_path, server, fake_remote, monkeypatch):
    _, gz = fake_remote
    for name in gz:
        server.files[f"/bad/{name}"] = b"not the file"
    dead = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setattr(mnist, "MIRRORS", [server.url + "/bad/", server.url + "/missing/", dead])
    with pytest.raises(RuntimeError) as info:
        MNIST(tmp_path, train=False, download=True)
    message = str(info.value)
    assert "could not download t10k-images-idx3-ubyte.gz" in message
    assert "MD5 checksum mismatch" in message and "HTTP 404" in message and dead in message
    assert "network" in message
    assert list(tmp_path.iterdir()) == []  # no partial or unverified file left behind


def test_download_without_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", [f"http://127.0.0.1:{closed_port()}/mnist/"])
    with pytest.raises(RuntimeError, match="(?s)could not download.*refused.*network"):
        mnist.download_mnist(tmp_path, ["t10k-labels-idx1-ubyte.gz"], timeout=5)
    with pytest.raises(ValueError, match="unknown file"):
        mnist.download_mnist(tmp_path, ["cifar.tar.gz"])


def test_published_checksums_and_mirrors_are_torchvisions():
    assert mnist.RESOURCES == {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    assert mnist.MIRRORS[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"


# ---- the real MNIST test set ------------------------------------------------------------------------------------


def independent_parse(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.mark.skipif(not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="the real MNIST files are absent")
def test_real_mnist_test_set_matches_an_independent_parse():
    ds = MNIST(REAL_MNIST, train=False)
    images = independent_parse(REAL_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = independent_parse(REAL_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels
    x, y = ds[9999]
    np.testing.assert_array_equal(x.numpy()[0], torch.from_numpy(images[9999].copy()).float().div(255).numpy())
    assert y == labels[9999]
    with pytest.raises(FileNotFoundError, match="train-images"):
        MNIST(REAL_MNIST, train=True)


# ---- Digits and load_mnist_or_digits -----------------------------------------------------------------------------


def test_digits_match_scikit_learn_and_split_stratified():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ref = sklearn_datasets.load_digits()
    everything = Digits()  # no official split: everything by default
    assert len(everything) == 1797 and len(Digits(train=None)) == 1797
    np.testing.assert_array_equal(everything.data, ref.images)
    np.testing.assert_array_equal(everything.targets, ref.target)
    x, y = everything[5]
    assert x.shape == (1, 8, 8) and x.dtype is minidl.float32 and y == ref.target[5]
    np.testing.assert_array_equal(x.numpy()[0], torch.from_numpy(ref.images[5]).float().div(16).numpy())
    assert float(everything.as_tensors()[0].max().item()) == 1.0
    train, test = Digits(train=True), Digits(train=False)
    assert len(train) + len(test) == 1797
    # every class split 80/20 (rounded), and the two sides disjoint: matched back to sklearn's rows
    for c in range(10):
        count = int((ref.target == c).sum())
        assert int((test.targets == c).sum()) == round(0.2 * count)
    rows = {r.tobytes(): i for i, r in enumerate(ref.images.astype(np.uint8).reshape(1797, -1))}
    train_rows = {rows[r.tobytes()] for r in train.data.reshape(len(train), -1)}
    test_rows = {rows[r.tobytes()] for r in test.data.reshape(len(test), -1)}
    assert not train_rows & test_rows
    np.testing.assert_array_equal(Digits(train=False).targets, test.targets)  # fixed split
    assert not np.array_equal(Digits(train=False, split_seed=1).data, test.data)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"minidl\[datasets\]"):
        Digits()
    with pytest.raises(ImportError, match=r"(?s)no MNIST files in .*minidl\[datasets\]"):
        load_mnist_or_digits("/nonexistent")


def test_load_mnist_or_digits_prefers_full_mnist_then_test_set_then_digits(tmp_path):
    pytest.importorskip("sklearn")
    files = fake_mnist_files(12, seed=5)
    write_fake_mnist(tmp_path / "full", files)
    full = load_mnist_or_digits(tmp_path / "full", flatten=True)
    assert full.name == "MNIST" and full.x_train.shape == (12, 784) and full.x_test.shape == (11, 784)
    np.testing.assert_array_equal(full.y_test.numpy(), files["t10k-labels-idx1-ubyte"][0])
    assert len(full.train_dataset()) == 12 and full.image_shape == (1, 28, 28)

    only_test = {k: v for k, v in fake_mnist_files(60, seed=6).items() if k.startswith("t10k")}
    write_fake_mnist(tmp_path / "test-only", only_test)
    part = load_mnist_or_digits(tmp_path / "test-only")
    assert part.name.startswith("MNIST t10k split")
    assert len(part.y_train) + len(part.y_test) == 59
    labels = only_test["t10k-labels-idx1-ubyte"][0]
    assert sorted(part.y_train.numpy().tolist() + part.y_test.numpy().tolist()) == sorted(labels.tolist())

    offline = load_mnist_or_digits(tmp_path / "empty")
    assert offline.name == "Digits 8x8" and offline.x_train.shape[1:] == (1, 8, 8)
    assert len(offline.test_dataset()) + len(offline.train_dataset()) == 1797


@pytest.mark.skipif(not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="the real MNIST files are absent")
def test_load_mnist_or_digits_on_the_shared_test_set():
    split = load_mnist_or_digits(REAL_MNIST)
    assert split.name == "MNIST t10k split 8000/2000"
    assert split.x_train.shape == (8000, 1, 28, 28) and split.x_test.shape == (2000, 1, 28, 28)
