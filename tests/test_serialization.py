"""Checkpoints (``minidl.serialization``): round trips, the safetensors byte layout, atomic writes,
and a clear error for every way a file can be wrong.

The oracle for the format is the ``safetensors`` package, an independent implementation: files
minidl writes must read there, and files it writes must read here, bit for bit. The byte-layout
test parses a file by hand, following the spec, without minidl's reader. torch checks that a
checkpoint carries a model: a torch ``Linear`` loaded from a minidl file computes what minidl's
weights compute.
"""

from __future__ import annotations

import collections
import enum
import io
import json
import os
import pathlib
import pickle
import stat
import struct
import zlib

import numpy as np
import pytest
import torch

import minidl
from minidl import serialization
from minidl.serialization import CheckpointError, load, save

TENSOR_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.bool_]


def _array(rng, shape, dtype):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(-(2**30), 2**30, size=shape).astype(dtype)


def assert_same(got, want, path="obj"):
    """Equal structure, exact types (tuple is not list, True is not 1, 1.0 is not 1, dict key
    types), and tensors/arrays equal bit for bit with the same dtype and shape."""
    if isinstance(want, minidl.Tensor):
        assert type(got) is minidl.Tensor, path
        assert got.dtype is want.dtype and got.shape == want.shape, path
        assert got.device == minidl.device("cpu") and not got.requires_grad, path
        assert got._data.tobytes() == np.ascontiguousarray(want._data).tobytes(), path
    elif isinstance(want, np.ndarray):
        assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape, path
        assert got.tobytes() == np.ascontiguousarray(want).tobytes(), path
    elif isinstance(want, np.generic):
        assert type(got) is type(want) and got.tobytes() == want.tobytes(), path
    elif isinstance(want, dict):
        assert type(got) is dict, path
        assert list(got) == list(want) and [type(k) for k in got] == [type(k) for k in want], path
        for key in want:
            assert_same(got[key], want[key], f"{path}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and want != want:
        assert type(got) is float and got != got, path
    else:
        assert type(got) is type(want) and got == want, path
        if isinstance(want, float):
            assert np.signbit(got) == np.signbit(want), path


def roundtrip(obj, tmp_path, name="ckpt.safetensors", **kwargs):
    path = tmp_path / name
    save(obj, path)
    return load(path, **kwargs)


# ---- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", TENSOR_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (0, 4), (2, 3, 4)])
def test_every_tensor_dtype_and_shape_round_trips_bitwise(tmp_path, rng, dtype, shape):
    t = minidl.tensor(_array(rng, shape, dtype))
    assert_same(roundtrip(t, tmp_path), t)


def test_non_contiguous_tensors_and_arrays_are_saved_in_c_order(tmp_path, rng):
    base = _array(rng, (3, 4), np.float32)
    t = minidl.tensor(base).t()
    assert not t.is_contiguous()
    got = roundtrip({"t": t, "a": base.T, "f": np.asfortranarray(base)}, tmp_path)
    np.testing.assert_array_equal(got["t"].numpy(), base.T)
    np.testing.assert_array_equal(got["a"], base.T)
    np.testing.assert_array_equal(got["f"], base)


def test_special_float_values_keep_every_bit(tmp_path):
    bits = np.array([0x7FC00001, 0xFF800000, 0x7F800000, 0x80000000, 0x00000001, 0x7F7FFFFF], np.uint32)
    values = bits.view(np.float32)  # a NaN with a payload, -inf, inf, -0.0, a subnormal, the max
    got = roundtrip({"t": minidl.tensor(values), "a": values.astype(np.float64)}, tmp_path)
    np.testing.assert_array_equal(got["t"].numpy().view(np.uint32), bits)
    assert got["a"].tobytes() == values.astype(np.float64).tobytes()


def test_python_leaves_keep_their_exact_types_and_values(tmp_path):
    obj = {
        "int": 3,
        "neg": -7,
        "huge": 2**70,
        "float": 0.1,
        "one": 1.0,
        "neg_zero": -0.0,
        "tiny": 5e-324,
        "inf": float("inf"),
        "ninf": float("-inf"),
        "nan": float("nan"),
        "true": True,
        "false": False,
        "str": 'häßlich "quoted" \n ✓',
        "empty": "",
        "none": None,
    }
    assert_same(roundtrip(obj, tmp_path), obj)


def test_nesting_keys_and_empty_containers(tmp_path, rng):
    t = minidl.tensor(_array(rng, (2,), np.float32))
    obj = {
        0: "int key",
        "0": "str key",
        -3: [t, (1, [2, (3,)]), {}],
        "empty": ([], (), {}),
        "deep": {"a": {"b": {"c": [{"d": t * 2}]}}},
    }
    assert_same(roundtrip(obj, tmp_path), obj)


def test_module_state_dict_keeps_order_and_names(tmp_path, rng):
    """An OrderedDict of dotted names (keys deliberately unsorted) comes back as a dict in the
    same order, and the names are the tensors' names in the file, as in torch's safetensors files."""
    sd = collections.OrderedDict(
        (name, minidl.tensor(_array(rng, shape, np.float32)))
        for name, shape in [("fc2.weight", (3, 4)), ("fc2.bias", (3,)), ("fc1.weight", (4, 5)), ("bn.num_batches", ())]
    )
    got = roundtrip(sd, tmp_path)
    assert_same(got, dict(sd))
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    assert set(safetensors_numpy.load_file(tmp_path / "ckpt.safetensors")) == set(sd)


def test_optimizer_like_state_dict(tmp_path, rng):
    state = {
        "state": {
            0: {"step": 3, "exp_avg": minidl.tensor(_array(rng, (3, 2), np.float32))},
            1: {"step": minidl.tensor(3.0), "exp_avg": minidl.tensor(_array(rng, (2,), np.float32))},
        },
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False, "params": [0, 1]}],
    }
    assert_same(roundtrip(state, tmp_path), state)


def test_numpy_arrays_and_scalars_come_back_as_numpy(tmp_path, rng):
    arrays = {str(dt): _array(rng, (2, 3), dt) for dt in [np.uint8, np.int8, np.int16, np.uint16, np.float16]}
    arrays |= {"u32": np.arange(4, dtype=np.uint32), "u64": np.array([2**64 - 1], np.uint64)}
    arrays |= {"c64": (rng.standard_normal(3) + 1j).astype(np.complex64), "bool": np.array([True, False])}
    scalars = {"f32": np.float32(1.5), "i64": np.int64(-2), "b": np.bool_(True), "f64": np.float64(0.1)}
    obj = {"arrays": arrays, "scalars": scalars}
    assert_same(roundtrip(obj, tmp_path), obj)
    big_endian = np.arange(6, dtype=">f4").reshape(2, 3)
    got = roundtrip(big_endian, tmp_path)
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, big_endian)


def test_tensors_requiring_grad_and_parameters_are_saved_detached(tmp_path):
    w = minidl.nn.Parameter(minidl.randn(3))
    y = w * 2
    got = roundtrip({"w": w, "y": y}, tmp_path)
    for key, want in (("w", w), ("y", y)):
        assert type(got[key]) is minidl.Tensor and not got[key].requires_grad and got[key].grad_fn is None
        assert not isinstance(got[key], minidl.nn.Parameter)
        np.testing.assert_array_equal(got[key].numpy(), want.detach().numpy())


def test_a_tensor_saved_twice_is_stored_once_and_loaded_as_one(tmp_path):
    t = minidl.randn(4)
    got = roundtrip({"a": t, "b": [t]}, tmp_path)
    assert got["a"] is got["b"][0]
    header = _parse(tmp_path / "ckpt.safetensors")[0]
    assert [k for k in header if k != "__metadata__"] == ["a"]


def test_clashing_names_are_made_unique(tmp_path):
    obj = {"a.b": minidl.ones(1), "a": {"b": minidl.zeros(1)}, "__metadata__": minidl.ones(2)}
    assert_same(roundtrip(obj, tmp_path), obj)


@pytest.mark.parametrize("obj", [minidl.arange(3), 7, None, "text", []])
def test_roots_other_than_dicts(tmp_path, obj):
    assert_same(roundtrip(obj, tmp_path), obj)


def test_loaded_tensors_are_writable_and_independent(tmp_path):
    got = roundtrip({"a": minidl.zeros(3), "b": minidl.zeros(3)}, tmp_path)
    got["a"].add_(1.0)
    np.testing.assert_array_equal(got["a"].numpy(), [1, 1, 1])
    np.testing.assert_array_equal(got["b"].numpy(), [0, 0, 0])


def test_paths_file_objects_map_location_and_weights_only(tmp_path):
    obj = {"w": minidl.randn(2, 2), "step": 4}
    save(obj, str(tmp_path / "s.safetensors"))
    assert_same(load(str(tmp_path / "s.safetensors")), obj)
    assert_same(load(pathlib.Path(tmp_path / "s.safetensors"), map_location="cpu"), obj)
    assert_same(load(tmp_path / "s.safetensors", map_location=minidl.device("cpu"), weights_only=True), obj)
    buffer = io.BytesIO()
    save(obj, buffer)
    assert buffer.getvalue() == (tmp_path / "s.safetensors").read_bytes()  # the same bytes either way
    buffer.seek(0)
    assert_same(load(buffer), obj)
    save(obj, tmp_path / "s.npz")
    with open(tmp_path / "s.npz", "rb") as stream:  # a file object holding a zip is read as .npz
        assert_same(load(stream), obj)
    with pytest.raises(TypeError, match="map_location must be None, a device name"):
        load(tmp_path / "s.safetensors", map_location=lambda storage, loc: storage)
    with pytest.raises(TypeError, match="save: f must be a path"):
        save(obj, 42)


@pytest.mark.skipif(minidl.cuda.is_available(), reason="checks the error without CUDA")
def test_map_location_cuda_without_cuda_is_a_clear_error(tmp_path):
    save(minidl.ones(1), tmp_path / "x.safetensors")
    with pytest.raises(RuntimeError, match="CUDA is not available; use map_location='cpu'"):
        load(tmp_path / "x.safetensors", map_location="cuda")


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_are_copied_to_host_and_map_location_moves_them_back(tmp_path):
    t = minidl.randn(3, 4).cuda()
    got = roundtrip({"t": t}, tmp_path)
    assert got["t"].device == minidl.device("cpu")
    np.testing.assert_array_equal(got["t"].numpy(), t.cpu().numpy())
    on_gpu = load(tmp_path / "ckpt.safetensors", map_location="cuda")["t"]
    assert on_gpu.is_cuda
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), t.cpu().numpy())


# ---- what cannot be saved ------------------------------------------------------------------------


class _Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"model": {"fc": minidl.nn.Module()}}, r"obj\['model'\]\['fc'\] is a Module; save module.state_dict\(\)"),
        ({"tags": {1, 2}}, r"obj\['tags'\] is a set; convert it to a sorted list"),
        ([object()], r"obj\[0\] is a object; .*never pickles"),
        ({"p": collections.namedtuple("P", "x")(1)}, r"obj\['p'\] is a P; convert it with ._asdict\(\)"),
        ({"c": _Color.RED}, r"obj\['c'\] is a _Color; convert it with int\(...\)"),
        ({"a": np.array([object()])}, r"obj\['a'\] has dtype object"),
        ({"a": np.zeros(2, np.complex128)}, r"obj\['a'\] has dtype complex128"),
        ({(1, 2): minidl.ones(1)}, r"obj has a key \(1, 2\) of type tuple; checkpoint dict keys must be str or int"),
        ({"f": 1 + 2j}, r"obj\['f'\] is a complex"),
    ],
)
def test_unsupported_objects_raise_naming_their_path_and_leave_the_file_alone(tmp_path, obj, message):
    path = tmp_path / "ckpt.safetensors"
    save({"old": minidl.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=message):
        save(obj, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_an_optimizer_object_gets_its_own_hint():
    class SGD:
        param_groups: list = []

        def state_dict(self):
            return {}

    with pytest.raises(TypeError, match=r"obj\['opt'\] is a SGD; save optimizer.state_dict\(\) instead"):
        save({"opt": SGD()}, io.BytesIO())


def test_a_cycle_is_refused(tmp_path):
    obj = {"a": []}
    obj["a"].append(obj)
    with pytest.raises(ValueError, match=r"save: obj\['a'\]\[0\] contains itself"):
        save(obj, tmp_path / "x.safetensors")


# ---- atomic writes ------------------------------------------------------------------------------


def _crash_halfway(monkeypatch, exc):
    """Make the second tensor write put half of its bytes down, then fail."""
    calls = []
    real = serialization._write_array

    def write_array(stream, array):
        calls.append(array)
        if len(calls) == 2:
            stream.write(array.reshape(-1).view(np.uint8)[: array.nbytes // 2].tobytes())
            raise exc
        real(stream, array)

    monkeypatch.setattr(serialization, "_write_array", write_array)
    return calls


@pytest.mark.parametrize("name", ["ckpt.safetensors", "ckpt.npz"])
@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_crash_mid_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch, name, exc):
    path = tmp_path / name
    old = {"w": minidl.ones(64), "b": minidl.zeros(8), "epoch": 1}
    save(old, path)
    if name.endswith(".npz"):  # the npz writer goes through numpy: make it fail in the same place
        real = np.lib.format.write_array
        calls = []

        def write_array(fp, array, **kwargs):
            calls.append(array)
            if len(calls) == 2:
                fp.write(b"\0" * 16)
                raise exc
            real(fp, array, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", write_array)
    else:
        calls = _crash_halfway(monkeypatch, exc)
    new = {"w": minidl.full((64,), 2.0), "b": minidl.full((8,), 3.0), "epoch": 2}
    with pytest.raises(type(exc)):
        save(new, path)
    assert len(calls) == 2  # the crash really happened part way through the data
    monkeypatch.undo()
    assert_same(load(path), old)
    assert os.listdir(tmp_path) == [name]


def test_a_crash_while_creating_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    _crash_halfway(monkeypatch, OSError("disk full"))
    with pytest.raises(OSError, match="disk full"):
        save({"a": minidl.ones(3), "b": minidl.ones(3)}, tmp_path / "new.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_fsyncs_then_renames_from_the_same_directory(tmp_path, monkeypatch):
    """The order that makes a save durable: fsync the file, rename it over the target (from a
    temporary name in the same directory), then fsync the directory."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.dirname(src), dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "ckpt.safetensors"
    save({"a": minidl.ones(3)}, path)
    expected = [("fsync", "file"), ("replace", str(tmp_path), str(path))]
    if os.name == "posix":  # Windows cannot open a directory to fsync it
        expected.append(("fsync", "directory"))
    assert events == expected


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save(minidl.ones(1), tmp_path / "x.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "x.safetensors").stat().st_mode & 0o777 == 0o640


def test_saving_into_a_missing_directory_or_onto_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it with os.makedirs"):
        save(minidl.ones(1), tmp_path / "nope" / "x.safetensors")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        save(minidl.ones(1), tmp_path)


# ---- the byte layout, parsed by hand ---------------------------------------------------------


def _parse(path):
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 : 8 + n], raw[8 + n :]


def test_byte_layout_follows_the_safetensors_spec(tmp_path, rng):
    arrays = {
        "flag": _array(rng, (3,), np.bool_),
        "w": _array(rng, (2, 3), np.float32),
        "idx": _array(rng, (5,), np.int64),
        "h": _array(rng, (3,), np.int32),
        "d": _array(rng, (), np.float64),
    }
    save({k: minidl.tensor(v) for k, v in arrays.items()} | {"epoch": 7}, tmp_path / "c.safetensors")
    header, raw_header, data = _parse(tmp_path / "c.safetensors")
    assert raw_header.startswith(b"{") and (8 + len(raw_header)) % 8 == 0  # data starts 8-aligned
    assert raw_header == raw_header.rstrip(b" ") + b" " * (len(raw_header) - len(raw_header.rstrip(b" ")))
    codes = {"flag": "BOOL", "w": "F32", "idx": "I64", "h": "I32", "d": "F64"}
    spans = []
    for name, array in arrays.items():
        entry = header[name]
        assert entry["dtype"] == codes[name] and entry["shape"] == list(array.shape)
        begin, end = entry["data_offsets"]
        assert begin % array.dtype.itemsize == 0  # aligned to the element size
        assert data[begin:end] == array.astype(array.dtype.newbyteorder("<")).tobytes()  # little-endian, C order
        spans.append((begin, end))
    spans.sort()
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no holes, no overlaps
    meta = header["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["minidl.format_version"] == "1"
    assert meta["minidl.data_crc32"] == f"{zlib.crc32(data):08x}"
    assert json.loads(meta["minidl.structure"])["dict"][-1] == ["epoch", 7]


# ---- interoperability with the safetensors package --------------------------------------------


def test_safetensors_package_reads_minidl_files(tmp_path, rng):
    safetensors = pytest.importorskip("safetensors")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")

    tensors = {f"t.{np.dtype(dt).name}": minidl.tensor(_array(rng, (2, 3), dt)) for dt in TENSOR_DTYPES}
    tensors |= {"scalar": minidl.tensor(2.5), "empty": minidl.zeros(0, 3)}
    save(tensors, tmp_path / "m.safetensors")
    got = safetensors_numpy.load_file(tmp_path / "m.safetensors")
    assert set(got) == set(tensors)
    for name, t in tensors.items():
        assert got[name].dtype == t.numpy().dtype and got[name].shape == t.shape
        assert got[name].tobytes() == t.numpy().tobytes()
    with safetensors.safe_open(tmp_path / "m.safetensors", framework="np") as f:
        assert f.metadata()["minidl.format_version"] == "1"


def test_minidl_reads_safetensors_package_files(tmp_path, rng):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {f"a.{np.dtype(dt).name}": _array(rng, (3, 2), dt) for dt in TENSOR_DTYPES}
    arrays |= {"scalar": np.array(3, np.int64), "empty": np.zeros((0, 2), np.float32)}
    safetensors_numpy.save_file(arrays, tmp_path / "p.safetensors", metadata={"format": "pt"})
    got = load(tmp_path / "p.safetensors")
    assert set(got) == set(arrays)  # in the file's order (safetensors sorts by dtype width)
    for name, array in arrays.items():
        assert_same(got[name], minidl.tensor(array), name)


def test_minidl_refuses_safetensors_dtypes_it_lacks_by_name(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safetensors_numpy.save_file({"half": np.ones(2, np.float16)}, tmp_path / "h.safetensors")
    with pytest.raises(TypeError, match="tensor 'half' .* has dtype float16, which minidl tensors do not support"):
        load(tmp_path / "h.safetensors")


def test_a_torch_model_loaded_from_a_minidl_checkpoint_computes_the_same(tmp_path, rng):
    """Both directions through safetensors.torch: the weights mean the same thing in both libraries."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    w, b = _array(rng, (3, 5), np.float32), _array(rng, (3,), np.float32)
    x = _array(rng, (4, 5), np.float32)
    save(collections.OrderedDict(weight=minidl.tensor(w), bias=minidl.tensor(b)), tmp_path / "lin.safetensors")
    lin = torch.nn.Linear(5, 3)
    lin.load_state_dict(safetensors_torch.load_file(tmp_path / "lin.safetensors"))
    expected = minidl.nn.functional.linear(minidl.tensor(x), minidl.tensor(w), minidl.tensor(b)).numpy()
    np.testing.assert_allclose(lin(torch.tensor(x)).detach().numpy(), expected, rtol=1e-6, atol=1e-6)

    torch_lin = torch.nn.Linear(5, 3)
    safetensors_torch.save_file(torch_lin.state_dict(), tmp_path / "torch.safetensors")
    got = load(tmp_path / "torch.safetensors")
    for name, value in torch_lin.state_dict().items():
        assert got[name]._data.tobytes() == value.numpy().tobytes()


# ---- loading bad files ----------------------------------------------------------------------------


def _good(tmp_path):
    path = tmp_path / "good.safetensors"
    save({"w": minidl.randn(4, 3), "b": minidl.arange(5), "epoch": 3}, path)
    return path


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file '.*missing.safetensors'"):
        load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("keep", [0, 3, 8, 12, "header-1", "header+5", "end-1"])
def test_truncated_files(tmp_path, keep):
    raw = _good(tmp_path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    cut = {"header-1": 8 + n - 1, "header+5": 8 + n + 5, "end-1": len(raw) - 1}.get(keep, keep)
    (tmp_path / "cut.safetensors").write_bytes(raw[:cut])
    with pytest.raises(CheckpointError, match=r"'.*cut.safetensors'.* truncated"):
        load(tmp_path / "cut.safetensors")


@pytest.mark.parametrize(
    "content, kind",
    [
        (bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8)), None),
        (b"epoch,loss\n1,0.5\n2,0.25\n", "it looks like a text file"),
        (pickle.dumps({"w": [1.0, 2.0]}, protocol=4), "it is a pickle, which minidl never loads"),
        (b"\x93NUMPY\x01\x00" + b" " * 100, "it is a .npy array"),
    ],
    ids=["random", "text", "pickle", "npy"],
)
def test_files_that_are_not_checkpoints(tmp_path, content, kind):
    (tmp_path / "x.bin").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"'.*x.bin' is not a safetensors/minidl checkpoint"):
        load(tmp_path / "x.bin")
    if kind is not None:
        with pytest.raises(CheckpointError, match=kind):
            load(tmp_path / "x.bin")
    with open(tmp_path / "x.bin", "rb") as stream, pytest.raises(CheckpointError, match="x.bin' is not a safetensors"):
        load(stream)


def test_a_torch_save_file_is_recognized_and_never_unpickled(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "model.pt")
    with pytest.raises(
        CheckpointError, match="not a safetensors/minidl checkpoint .*zip archive, such as a torch.save"
    ):
        load(tmp_path / "model.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="it is a pickle"):
        load(tmp_path / "old.pt")


def test_a_corrupted_data_section_fails_its_checksum(tmp_path):
    raw = bytearray(_good(tmp_path).read_bytes())
    raw[-3] ^= 0x10
    (tmp_path / "bad.safetensors").write_bytes(raw)
    with pytest.raises(CheckpointError, match=r"'.*bad.safetensors' is corrupted: the checksum of its data section"):
        load(tmp_path / "bad.safetensors")


def test_a_corrupted_header_value_fails_the_header_checksum(tmp_path):
    """I64 -> F64 keeps every size right, so only the checksum can tell."""
    raw = _good(tmp_path).read_bytes()
    assert raw.count(b'"I64"') == 1
    (tmp_path / "bad.safetensors").write_bytes(raw.replace(b'"I64"', b'"F64"'))
    with pytest.raises(CheckpointError, match="the header checksum does not match"):
        load(tmp_path / "bad.safetensors")


def _write_raw(path, header, data=b"", pad=True):
    """A safetensors file from a hand-written header (which may lie)."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [40, 48]}},
         bytes(16), "tensor 'b' has data_offsets \\[40, 48\\] beyond the end of the 16-byte data section"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
         bytes(12), "tensors 'a' and 'b' overlap"),
        ({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}},
         bytes(20), r"tensor 'a' is F32 of shape \[2, 3\] \(24 bytes\) but its data_offsets \[0, 20\] span 20 bytes"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, bytes(12), "bytes 0..8 of the data section belong to no tensor"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(8), "4 bytes after the last tensor"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, bytes(4), "data_offsets \\[4, 0\\] span -4 bytes"),
        ({"a": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), "tensor 'a' has unknown or unsupported dtype 'F17'"),
        ({"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, bytes(2), "unknown or unsupported dtype 'BF16'"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4), "shape \\[-1\\], not a list of non-negative ints"),
        ({"a": {"dtype": "F32", "shape": [1]}}, bytes(4), "must have exactly dtype, shape and data_offsets"),
        ({"__metadata__": {"n": 1}}, b"", "__metadata__ must map strings to strings"),
        (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
         bytes(4), "duplicate key 'a'"),
        (b'{"a": {"dtype": "F32", "shape": [1], ', bytes(4), "header that is not valid JSON"),
        (b"[1, 2]", b"", "not a safetensors/minidl checkpoint"),
    ],
)  # fmt: skip
def test_headers_that_lie_or_break_the_spec(tmp_path, header, data, message):
    path = _write_raw(tmp_path / "lie.safetensors", header, data)
    with pytest.raises(CheckpointError, match=message) as info:
        load(path)
    assert "lie.safetensors" in str(info.value)


def test_the_minidl_structure_must_reference_real_tensors(tmp_path):
    """A hand-made file whose structure names a tensor that is not there (its CRCs made to match)."""
    header = {"__metadata__": {"minidl.format_version": "1", "minidl.structure": '{"tensor":"ghost"}'}}
    header["__metadata__"]["minidl.data_crc32"] = "00000000"
    header["__metadata__"]["minidl.header_crc32"] = serialization._header_crc(header)
    with pytest.raises(CheckpointError, match="corrupted minidl structure at obj"):
        load(_write_raw(tmp_path / "ghost.safetensors", header))


def test_a_newer_format_version_is_refused(tmp_path):
    header = {"__metadata__": {"minidl.format_version": "2", "minidl.structure": "1"}}
    header["__metadata__"]["minidl.data_crc32"] = "00000000"
    header["__metadata__"]["minidl.header_crc32"] = serialization._header_crc(header)
    with pytest.raises(CheckpointError, match="format version '2'; this minidl reads version 1"):
        load(_write_raw(tmp_path / "v2.safetensors", header))


# ---- .npz ---------------------------------------------------------------------------------------------


def test_npz_round_trip_and_plain_numpy_can_read_it(tmp_path, rng):
    state = {
        "model": collections.OrderedDict(weight=minidl.tensor(_array(rng, (3, 2), np.float32)), mask=minidl.tensor([True, False])),
        "optimizer": {"state": {0: {"step": 2, "buf": minidl.tensor(_array(rng, (3, 2), np.float64))}}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999)}]},
        "scalar": np.float32(0.5),
        "nan": float("nan"),
    }  # fmt: skip
    got = roundtrip(state, tmp_path, "ckpt.npz")
    assert_same(got, state)
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as archive:
        assert set(archive.files) == {"model.weight", "model.mask", "optimizer.state.0.buf", "scalar", "__minidl__"}
        np.testing.assert_array_equal(archive["model.weight"], state["model"]["weight"].numpy())


def test_plain_npz_files_load_as_a_flat_dict(tmp_path, rng):
    w = _array(rng, (2, 2), np.float32)
    np.savez(tmp_path / "plain.npz", w=w, n=np.arange(3))
    assert_same(load(tmp_path / "plain.npz"), {"w": minidl.tensor(w), "n": minidl.arange(3)})


def test_bad_npz_files(tmp_path):
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="'.*obj.npz' is not a valid .npz checkpoint.*allow_pickle"):
        load(tmp_path / "obj.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="not a valid .npz checkpoint"):
        load(tmp_path / "text.npz")
    save({"w": minidl.ones(256)}, tmp_path / "c.npz")
    raw = bytearray((tmp_path / "c.npz").read_bytes())
    raw[raw.find(b"\x00\x00\x80\x3f") + 3] ^= 0x01  # flip a bit inside the data of "w"
    (tmp_path / "c.npz").write_bytes(raw)
    with pytest.raises(CheckpointError, match="CRC"):
        load(tmp_path / "c.npz")


# ---- resuming training -------------------------------------------------------------------------


def test_resuming_from_a_checkpoint_continues_exactly(tmp_path, rng):
    """Momentum SGD on a least-squares problem, written out by hand: stopping after 3 steps,
    saving parameters, momentum buffers and the step count, and resuming in fresh variables
    ends bit for bit where an uninterrupted run of 6 steps ends."""
    x, y = minidl.tensor(_array(rng, (8, 3), np.float32)), minidl.tensor(_array(rng, (8,), np.float32))
    w0 = _array(rng, (3,), np.float32)

    def train(state, steps):
        for _ in range(steps):
            w = state["model"]["w"].detach().requires_grad_()
            ((x @ w - y) ** 2).mean().backward()
            buf = state["optimizer"]["state"][0]["momentum_buffer"] * 0.9 + w.grad
            state["model"]["w"] = w.detach() - 0.1 * buf
            state["optimizer"]["state"][0]["momentum_buffer"] = buf
            state["epoch"] += 1
        return state

    def fresh():
        return {
            "model": {"w": minidl.tensor(w0)},
            "optimizer": {"state": {0: {"momentum_buffer": minidl.zeros(3)}}},
            "epoch": 0,
        }

    straight = train(fresh(), 6)
    save(train(fresh(), 3), tmp_path / "resume.safetensors")
    resumed = train(load(tmp_path / "resume.safetensors"), 3)
    assert resumed["epoch"] == 6
    assert_same(resumed["model"], straight["model"])
    assert_same(resumed["optimizer"], straight["optimizer"])


@pytest.mark.parametrize("optimizer, kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.05})])
def test_resuming_a_model_and_optimizer_matches_an_uninterrupted_run_and_torch(tmp_path, rng, optimizer, kwargs):
    """The recipe in docs/checkpoints.md: model.state_dict() + optimizer.state_dict() + epoch in
    one file. 3 steps, save, fresh objects, load, 3 more steps == 6 straight steps, bit for bit;
    and torch, run 6 steps from the same weights, agrees."""
    import minidl.optim

    x, y = _array(rng, (16, 4), np.float32), _array(rng, (16, 3), np.float32)
    w0, b0 = _array(rng, (3, 4), np.float32), _array(rng, (3,), np.float32)

    def make(initialize=True):
        model = minidl.nn.Linear(4, 3)
        if initialize:
            model.load_state_dict({"weight": minidl.tensor(w0), "bias": minidl.tensor(b0)})
        return model, getattr(minidl.optim, optimizer)(model.parameters(), **kwargs)

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            ((model(minidl.tensor(x)) - minidl.tensor(y)) ** 2).mean().backward()
            opt.step()

    model, opt = make()
    train(model, opt, 3)
    save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, tmp_path / "ckpt.safetensors")

    resumed, resumed_opt = make(initialize=False)  # fresh random weights: the checkpoint must replace them
    checkpoint = load(tmp_path / "ckpt.safetensors")
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    assert checkpoint["epoch"] == 3
    train(resumed, resumed_opt, 3)

    straight, straight_opt = make()
    train(straight, straight_opt, 6)
    assert_same(dict(resumed.state_dict()), dict(straight.state_dict()))

    reference = torch.nn.Linear(4, 3)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(w0))
        reference.bias.copy_(torch.tensor(b0))
    reference_opt = getattr(torch.optim, optimizer)(reference.parameters(), **kwargs)
    for _ in range(6):
        reference_opt.zero_grad()
        ((reference(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        reference_opt.step()
    for name, value in reference.state_dict().items():
        np.testing.assert_allclose(resumed.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-6)
