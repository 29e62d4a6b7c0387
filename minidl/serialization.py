"""Checkpoints: ``save(obj, f)`` writes a state dict to disk, ``load(f)`` reads it back -- never with pickle.

This module sits above ``tensor`` and ``ops`` and below ``nn``/``optim``: it knows tensors,
NumPy arrays and plain Python values, and nothing of modules or optimizers, whose
``state_dict()`` is what it is meant to store.

**Why not pickle.** ``torch.save`` pickles, and unpickling runs whatever code the file names:
loading a checkpoint from a stranger is running a program from a stranger. minidl stores
only data -- tensors, arrays, numbers, strings, ``None`` and dicts/lists/tuples of them -- and
raises ``TypeError`` naming the place in the structure of anything else.

**The file format** is safetensors (https://github.com/huggingface/safetensors), written and
read by the code below::

    8 bytes     N, the header length: an unsigned 64-bit little-endian integer
    N bytes     the header: UTF-8 JSON, padded with spaces so that the data starts at a multiple of 8
                {"__metadata__": {str: str, ...},
                 "<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    the rest    the data section: every tensor's bytes, little-endian, C order, back to back;
                ``data_offsets`` count from the start of this section

Tensors are laid out widest dtype first, so that (the data section starting at a multiple of 8)
every tensor starts at a multiple of its item size. minidl keeps the nesting of the saved
object in ``__metadata__`` (the only place safetensors allows free text):

* ``minidl.format_version`` -- ``"1"``;
* ``minidl.structure`` -- the object as a JSON tree (see ``_Encoder``) whose leaves are plain
  values or references to tensors by name;
* ``minidl.data_crc32`` -- the CRC-32 of the data section (8 hex digits), as zip uses;
* ``minidl.header_crc32`` -- the CRC-32 of the rest of the header (tensor table and
  structure), re-serialized canonically, so a flipped byte in a dtype or a number is caught too.

A CRC catches accidental damage (a bad disk, a cut-off copy); it is not a signature against
deliberate tampering -- it is three times faster than SHA-256, which would guard against
nothing more here, since an attacker could rewrite either.

Any safetensors reader sees the tensors of a minidl file; minidl reads any safetensors file
(without minidl metadata it is a flat ``{name: tensor}`` dict). A path ending in ``.npz`` is
written as a NumPy ``.npz`` archive instead (one ``.npy`` member per tensor, the same JSON in
a string member ``__minidl__``), read back with ``allow_pickle=False``.

**Atomic writes.** The file is written under a temporary name in the target's directory,
flushed and fsync'ed, then renamed over the target with ``os.replace`` (atomic on POSIX and
Windows), and the directory is fsync'ed so the rename itself survives a power loss. A crash
at any moment leaves either the old checkpoint or the new one, never half of one.
See docs/checkpoints.md for the whole story.
"""

from __future__ import annotations

import io
import json
import math
import os
import secrets
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from .backend import cuda as _cuda
from .backend.device import Device, cpu
from .backend.device import device as parse_device
from .dtypes import ALL_DTYPES
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

FORMAT_VERSION = "1"
_NPZ_META = "__minidl__"  # the .npz member that holds the metadata (a 0-d string array)
_MAX_HEADER = 100_000_000  # the safetensors limit: larger "headers" mean it is not a safetensors file

# safetensors dtype codes <-> little-endian NumPy dtypes. BF16 and the 8/6/4-bit floats have
# no NumPy type and cannot be read.
_CODE_TO_NP = {
    "BOOL": np.dtype("|b1"),
    "U8": np.dtype("|u1"),
    "I8": np.dtype("|i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
}
_NP_TO_CODE = {dt.str: code for code, dt in _CODE_TO_NP.items()}
# The dtypes a minidl Tensor can have (float32, float64, int32, int64, bool), as codes.
_TENSOR_CODES = {_NP_TO_CODE[d.np.newbyteorder("<").str] for d in ALL_DTYPES}


class CheckpointError(ValueError):
    """A file that is not a valid checkpoint: not safetensors/npz, truncated, or corrupted."""


# ==== encoding: object -> (JSON tree, named arrays) ============================================


class _Encoder:
    """Turn a state dict into a JSON tree plus a table of named arrays.

    The tree mirrors the object. Plain values are themselves (``None``, ``true``, ``3``,
    ``0.5``, ``"adam"``); everything else is a one-key JSON object, so nothing is ambiguous::

        {"tensor": name}      a minidl Tensor, stored in the data section under ``name``
        {"ndarray": name}     a NumPy array (comes back as a NumPy array)
        {"scalar": name}      a NumPy scalar such as np.float32(1.5), stored as a 0-d array
        {"float": "nan"}      a non-finite float ("nan", "inf", "-inf"), which JSON cannot spell
        {"list": [...]}       a list;  {"tuple": [...]} a tuple
        {"dict": [[k, v], ...]}  a dict as ordered (key, value) pairs, so int keys stay ints

    Tensor names are the dotted key path ("fc.weight", "state.0.exp_avg"), so a module's
    state dict has its usual names in any safetensors reader; clashes get a ``#n`` suffix.
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}  # name -> little-endian, C-contiguous host array
        self._names: dict[int, str] = {}  # id(tensor) -> name: an object saved twice is stored once
        self._keep: list[Any] = []  # keeps those objects alive, so their ids stay unique
        self._open: set[int] = set()  # ids of the containers being encoded (cycle check)

    def encode(self, obj: Any, path: str = "obj", name: str = "") -> Any:
        kind = type(obj)
        if obj is None or kind in (bool, int, str):
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        if isinstance(obj, Tensor):
            return {"tensor": self._store(obj, path, name)}
        if kind is np.ndarray or isinstance(obj, np.memmap):
            return {"ndarray": self._store(obj, path, name)}
        if isinstance(obj, np.generic):
            return {"scalar": self._store(obj, path, name)}
        if isinstance(obj, dict):
            return {"dict": self._container(obj, path, name, obj.items())}
        if kind in (list, tuple) or (isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields")):
            tag = "tuple" if isinstance(obj, tuple) else "list"
            return {tag: self._container(obj, path, name, enumerate(obj))}
        raise TypeError(_unsupported(obj, path))

    def _container(self, obj: Any, path: str, name: str, items: Any) -> list:
        if id(obj) in self._open:
            raise ValueError(f"save: {path} contains itself; a checkpoint holds a tree, not a cycle")
        self._open.add(id(obj))
        out = []
        is_dict = isinstance(obj, dict)
        for key, value in items:
            if is_dict and type(key) not in (str, int, bool):
                raise TypeError(
                    f"save: {path} has a key {key!r} of type {type(key).__name__}; checkpoint dict keys must "
                    "be str or int"
                )
            child_path, child_name = f"{path}[{key!r}]", f"{name}.{key}" if name else str(key)
            value = self.encode(value, child_path, child_name)
            out.append([key, value] if is_dict else value)
        self._open.discard(id(obj))
        return out

    def _store(self, obj: Any, path: str, name: str) -> str:
        if id(obj) in self._names:
            return self._names[id(obj)]
        # Tensors are saved detached (only the values), CUDA ones copied to the host first.
        array = _to_host(obj._data) if isinstance(obj, Tensor) else np.asarray(obj)
        little = array.dtype.newbyteorder("<")
        if little.str not in _NP_TO_CODE:
            raise TypeError(
                f"save: {path} has dtype {array.dtype}, which a checkpoint cannot store; supported are "
                "bool, (u)int8/16/32/64, float16/32/64 and complex64"
            )
        unique, n = name or "tensor", 0
        while unique in self.arrays or unique in ("__metadata__", _NPZ_META):
            n += 1
            unique = f"{name or 'tensor'}#{n}"
        # A copy only when needed: to C order, or to little-endian on a big-endian machine.
        self.arrays[unique] = np.asarray(array, dtype=little, order="C")
        self._names[id(obj)] = unique
        self._keep.append(obj)
        return unique


def _unsupported(obj: Any, path: str) -> str:
    name = type(obj).__name__
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        what = "module" if hasattr(obj, "parameters") else "optimizer" if hasattr(obj, "param_groups") else "obj"
        hint = f"save {what}.state_dict() instead"
    elif isinstance(obj, tuple):  # a namedtuple
        hint = "convert it with ._asdict() or tuple(...)"
    elif isinstance(obj, (set, frozenset)):
        hint = "convert it to a sorted list"
    elif isinstance(obj, (int, float, str)):
        base = next(t for t in (bool, int, float, str) if isinstance(obj, t))
        hint = f"convert it with {base.__name__}(...)"
    else:
        hint = (
            "a checkpoint holds tensors, NumPy arrays, numbers, strings, None and dicts/lists/tuples of them "
            "(minidl never pickles arbitrary objects)"
        )
    return f"save: {path} is a {name}; {hint}"


def _to_host(array: Any) -> np.ndarray:
    """A CUDA array copied to host memory (CPU arrays pass through)."""
    return array if isinstance(array, np.ndarray) else array.get()


# ==== writing =================================================================================


def _write_array(stream: IO[bytes], array: np.ndarray) -> None:
    """Write one tensor's bytes (``array`` is C-contiguous and little-endian)."""
    if array.size:
        stream.write(array.reshape(-1).view(np.uint8).data)


def _safetensors_header(arrays: dict[str, np.ndarray], structure: str) -> tuple[bytes, list[np.ndarray]]:
    """The length prefix and padded JSON header, and the arrays in data-section order."""
    # Widest dtype first: with the data section 8-aligned, every tensor then starts at a
    # multiple of its item size. The sort is stable, so equal widths keep the object's order.
    order = sorted(arrays, key=lambda name: -arrays[name].dtype.itemsize)
    table: dict[str, Any] = {}
    crc = 0
    offset = 0
    for name in order:
        a = arrays[name]
        table[name] = {
            "dtype": _NP_TO_CODE[a.dtype.str],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
        if a.size:
            crc = zlib.crc32(a.reshape(-1).view(np.uint8).data, crc)
    meta = {
        "minidl.format_version": FORMAT_VERSION,
        "minidl.structure": structure,
        "minidl.data_crc32": f"{crc:08x}",
    }
    header = {"__metadata__": meta, **table}
    meta["minidl.header_crc32"] = _header_crc(header)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so that 8 + N, where the data starts, is a multiple of 8
    return struct.pack("<Q", len(text)) + text, [arrays[name] for name in order]


def _header_crc(header: dict) -> str:
    """CRC-32 of the header's values minus this CRC itself, in a canonical JSON spelling
    (so it does not depend on key order or padding, only on what the header says)."""
    meta = {k: v for k, v in header["__metadata__"].items() if k != "minidl.header_crc32"}
    canonical = json.dumps({**header, "__metadata__": meta}, sort_keys=True, separators=(",", ":"))
    return f"{zlib.crc32(canonical.encode('utf-8')):08x}"


def _write_safetensors(stream: IO[bytes], arrays: dict[str, np.ndarray], structure: str) -> None:
    head, ordered = _safetensors_header(arrays, structure)
    stream.write(head)
    for array in ordered:
        _write_array(stream, array)


def _write_npz(stream: IO[bytes], arrays: dict[str, np.ndarray], structure: str) -> None:
    # What np.savez does, minus its keyword-argument naming (any tensor name works here).
    meta = json.dumps({"minidl.format_version": FORMAT_VERSION, "minidl.structure": structure})
    members = {**arrays, _NPZ_META: np.array(meta)}
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in members.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Run ``write(stream)`` into a temporary file beside ``path``, then rename it over ``path``.

    The temporary file lives in the same directory because a rename is atomic only within one
    file system. ``fsync`` before the rename makes sure the data is on disk before the name
    points at it; without it a power loss could leave the new name on an empty file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: the directory {directory!r} does not exist; create it with os.makedirs first")
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a directory; give a file name such as {path!r}/model.safetensors")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # 0o666 minus the umask, as open() would give
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # Makes the rename durable. Not possible on Windows (directories cannot be opened) and not
    # needed there; elsewhere a failure here does not undo the write, so it is not an error.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(obj: Any, f: str | os.PathLike | IO[bytes]) -> None:
    """Save a tensor or a state dict to ``f`` (a path, or a binary file object), without pickle.

    ``obj`` may be a Tensor, a NumPy array or scalar, a Python number, string or ``None``, or
    dicts (str or int keys), lists and tuples nesting them -- such as ``model.state_dict()``
    or ``optimizer.state_dict()``. Tensors are saved detached, CUDA tensors copied to the host.
    Anything else raises ``TypeError`` naming where it sits, before the file is touched.

    The format is safetensors, or a NumPy ``.npz`` archive when the path ends in ``.npz``.
    A path is written atomically: if saving fails part way, an existing file is left as it was.

    >>> minidl.save({"model": model.state_dict(), "epoch": 3}, "ckpt.safetensors")
    """
    encoder = _Encoder()
    structure = json.dumps(encoder.encode(obj), separators=(",", ":"), allow_nan=False)
    if not isinstance(f, (str, os.PathLike)):
        if not hasattr(f, "write"):
            raise TypeError(
                f"save: f must be a path (str or os.PathLike) or a binary file object, got {type(f).__name__}"
            )
        _write_safetensors(f, encoder.arrays, structure)
        return
    path = os.fspath(f)
    writer = _write_npz if path.lower().endswith(".npz") else _write_safetensors
    _atomic_write(path, lambda stream: writer(stream, encoder.arrays, structure))


# ==== reading =================================================================================


def _sniff(head: bytes) -> str:
    """A guess at what a file that is not a checkpoint is, for the error message."""
    if head.startswith(b"PK\x03\x04"):
        return " (it is a zip archive, such as a torch.save file; an .npz loads when its name ends in .npz)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return " (it is a pickle, which minidl never loads: unpickling can run arbitrary code)"
    if head.startswith(b"\x93NUMPY"):
        return " (it is a .npy array; read it with numpy.load)"
    if head and all(32 <= c < 127 or c in b"\t\r\n" for c in head):
        return " (it looks like a text file)"
    return ""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise CheckpointError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _read_header(stream: IO[bytes], size: int, where: str) -> tuple[dict, int]:
    """Read and check the length prefix and JSON header; returns the header and its length."""
    head = stream.read(min(size, 16))
    not_ours = f"load: {where} is not a safetensors/minidl checkpoint"
    if size < 8:
        raise CheckpointError(f"{not_ours}{_sniff(head)}: it has only {size} bytes (it may be truncated)")
    (n,) = struct.unpack("<Q", head[:8])
    if (size > 8 and head[8:9] != b"{") or n < 2 or n > _MAX_HEADER:
        raise CheckpointError(f"{not_ours}{_sniff(head)}")
    if 8 + n > size:
        raise CheckpointError(
            f"load: {where} is truncated: its header should be {n} bytes, but only {size - 8} bytes follow its length"
        )
    stream.seek(8)
    raw = stream.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"load: {where} has a header that is not valid JSON ({exc}): it is corrupted") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"load: {where} has a header that is not a JSON object: it is corrupted")
    return header, n


def _check_table(header: dict, data_size: int, where: str) -> dict[str, tuple[np.dtype, tuple, int, int]]:
    """Validate every tensor entry against the spec and the data section; ``name -> (dtype, shape, begin, end)``.

    The header must not lie: each entry's byte span must equal shape x item size, and the
    spans must tile the data section exactly -- no overlaps, no holes, nothing past the end.
    """
    bad = f"load: {where} has an invalid header"
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{bad}: __metadata__ must map strings to strings")
    table = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(
                f"{bad}: the entry of tensor {name!r} must have exactly dtype, shape and data_offsets"
            )
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if code not in _CODE_TO_NP:
            raise CheckpointError(
                f"load: {where}: tensor {name!r} has unknown or unsupported dtype {code!r}; "
                f"minidl reads {', '.join(_CODE_TO_NP)}"
            )
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise CheckpointError(f"{bad}: tensor {name!r} has shape {shape!r}, not a list of non-negative ints")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise CheckpointError(f"{bad}: tensor {name!r} has data_offsets {offsets!r}, not [begin, end]")
        begin, end = offsets
        dtype = _CODE_TO_NP[code]
        nbytes = math.prod(shape) * dtype.itemsize
        if not 0 <= begin <= end or end - begin != nbytes:
            raise CheckpointError(
                f"{bad}: tensor {name!r} is {code} of shape {shape} ({nbytes} bytes) but its data_offsets "
                f"{offsets} span {end - begin} bytes"
            )
        table[name] = (dtype, tuple(shape), begin, end)

    spans = sorted((begin, end, name) for name, (_, _, begin, end) in table.items())
    pos, previous = 0, None
    for begin, end, name in spans:
        if begin < pos:
            raise CheckpointError(f"{bad}: tensors {previous!r} and {name!r} overlap in the data section")
        pos, previous = max(pos, end), name
    if pos > data_size:
        if sum(end - begin for begin, end, _ in spans) == pos:  # contiguous: the file was cut short
            raise CheckpointError(
                f"load: {where} is truncated: its tensors need a data section of {pos} bytes, but only "
                f"{data_size} bytes follow the header"
            )
        name = max(spans)[2]
        raise CheckpointError(
            f"{bad}: tensor {name!r} has data_offsets {list(table[name][2:])} beyond the end of the "
            f"{data_size}-byte data section"
        )
    pos = 0
    for begin, end, _ in spans:
        if begin > pos:
            raise CheckpointError(f"{bad}: bytes {pos}..{begin} of the data section belong to no tensor")
        pos = end
    if pos < data_size:
        raise CheckpointError(f"{bad}: the data section has {data_size - pos} bytes after the last tensor")
    return table


def _read_safetensors(stream: IO[bytes], size: int, where: str) -> tuple[dict[str, np.ndarray], dict]:
    """The tensors of a safetensors file as NumPy arrays, and its ``__metadata__``."""
    header, n = _read_header(stream, size, where)
    table = _check_table(header, size - 8 - n, where)
    meta = header.get("__metadata__", {})
    data = np.empty(size - 8 - n, dtype=np.uint8)
    stream.seek(8 + n)
    if stream.readinto(memoryview(data)) != data.size:
        raise CheckpointError(f"load: {where} changed while being read")
    if "minidl.structure" in meta:
        _verify(header, data, where)
    arrays = {}
    for name, (dtype, shape, begin, end) in table.items():
        chunk = data[begin:end]
        # Views share the one buffer; a tensor at an offset that is not a multiple of its item
        # size (allowed by the spec, never written by minidl) is copied to aligned memory.
        array = chunk.view(dtype) if begin % dtype.itemsize == 0 else np.frombuffer(chunk.tobytes(), dtype)
        if not dtype.isnative:  # a big-endian machine
            array = array.astype(dtype.newbyteorder("="))
        arrays[name] = array.reshape(shape)
    return arrays, meta


def _verify(header: dict, data: np.ndarray, where: str) -> None:
    meta = header["__metadata__"]
    expected = meta.get("minidl.header_crc32")
    if expected is None or "minidl.data_crc32" not in meta:
        raise CheckpointError(f"load: {where} has minidl metadata without its checksums: it is corrupted")
    if _header_crc(header) != expected:
        raise CheckpointError(f"load: {where} is corrupted: the header checksum does not match (CRC-32)")
    actual = f"{zlib.crc32(data.data):08x}"
    if actual != meta["minidl.data_crc32"]:
        raise CheckpointError(
            f"load: {where} is corrupted: the checksum of its data section does not match "
            f"(CRC-32 {actual}, expected {meta['minidl.data_crc32']})"
        )


def _read_npz(source: Any, where: str) -> tuple[dict[str, np.ndarray], dict]:
    try:
        archive = np.load(source, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an archive")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"load: {where} is not a valid .npz checkpoint, or it is corrupted: {exc}") from None
    meta = arrays.pop(_NPZ_META, None)
    if meta is None:
        return arrays, {}
    try:
        meta = json.loads(str(meta))
    except ValueError:
        raise CheckpointError(f"load: {where} has corrupted minidl metadata") from None
    return arrays, meta


class _Decoder:
    """The inverse of ``_Encoder``: rebuild the object from its JSON tree and the arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], where: str, device: Device | None) -> None:
        self.arrays = arrays
        self.where = where
        self.device = device
        self._tensors: dict[str, Tensor] = {}  # a name referenced twice gives the same tensor

    def decode(self, node: Any, path: str = "obj") -> Any:
        if node is None or type(node) in (bool, int, float, str):
            return node
        if isinstance(node, dict) and len(node) == 1:
            ((tag, value),) = node.items()
            if tag in ("list", "tuple") and isinstance(value, list):
                items = [self.decode(v, f"{path}[{i}]") for i, v in enumerate(value)]
                return items if tag == "list" else tuple(items)
            if tag == "dict" and isinstance(value, list):
                return self._dict(value, path)
            if tag == "float" and value in ("nan", "inf", "-inf"):
                return float(value)
            if tag in ("tensor", "ndarray", "scalar") and value in self.arrays:
                if tag == "ndarray":
                    return self.arrays[value]
                if tag == "scalar":
                    return self.arrays[value][()]
                if value not in self._tensors:
                    self._tensors[value] = _tensor(self.arrays[value], value, self.where, self.device)
                return self._tensors[value]
        raise CheckpointError(f"load: {self.where} has a corrupted minidl structure at {path}")

    def _dict(self, pairs: list, path: str) -> dict:
        out = {}
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) in (str, int, bool)):
                raise CheckpointError(f"load: {self.where} has a corrupted minidl structure at {path}")
            out[pair[0]] = self.decode(pair[1], f"{path}[{pair[0]!r}]")
        return out


def _tensor(array: np.ndarray, name: str, where: str, device: Device | None) -> Tensor:
    if _NP_TO_CODE.get(array.dtype.newbyteorder("<").str) not in _TENSOR_CODES:
        raise TypeError(
            f"load: tensor {name!r} in {where} has dtype {array.dtype}, which minidl tensors do not support "
            "(float32, float64, int32, int64, bool); read the file with safetensors.numpy.load_file and convert"
        )
    t = Tensor(array)
    return t if device is None or device == cpu else t.to(device)


def _parse_map_location(map_location: Any) -> Device | None:
    if map_location is None:
        return None
    if not isinstance(map_location, (str, Device)):
        raise TypeError(
            "load: map_location must be None, a device name such as 'cpu' or 'cuda:0', or a minidl.device; "
            f"got {type(map_location).__name__}"
        )
    target = parse_device(map_location)
    if target.type == "cuda" and not _cuda.is_available():
        raise RuntimeError(f"load: map_location={str(target)!r}, but CUDA is not available; use map_location='cpu'")
    return target


def load(
    f: str | os.PathLike | IO[bytes], map_location: str | Device | None = None, *, weights_only: bool | None = None
) -> Any:
    """Load what ``save`` wrote (or any safetensors file, or an ``.npz`` if the name ends in ``.npz``).

    Returns the saved structure: dicts (``OrderedDict`` comes back as a plain dict, in order),
    lists, tuples, int keys, numbers, strings and ``None`` as saved; tensors as minidl
    Tensors on the CPU (or on ``map_location``) with their dtypes; NumPy arrays as NumPy
    arrays. A plain safetensors or ``.npz`` file gives a flat ``{name: Tensor}`` dict.

    Nothing in a checkpoint can run code, so ``weights_only`` (accepted for code written for
    ``torch.load``) changes nothing. A file that is missing, truncated, corrupted (checksum
    mismatch), not a checkpoint, or whose header contradicts itself raises an error naming
    the file and the problem; ``CheckpointError`` is a ``ValueError``.
    """
    device = _parse_map_location(map_location)
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        where = repr(path)
        if not os.path.exists(path):
            raise FileNotFoundError(2, f"load: no checkpoint file {where}", path)
        if path.lower().endswith(".npz"):
            arrays, meta = _read_npz(path, where)
        else:
            with open(path, "rb") as stream:
                arrays, meta = _read_safetensors(stream, os.fstat(stream.fileno()).st_size, where)
    elif hasattr(f, "read"):
        name = getattr(f, "name", None)
        where = repr(name) if isinstance(name, str) else "the file object"
        buffer = io.BytesIO(f.read())
        if buffer.getvalue().startswith(b"PK\x03\x04"):
            arrays, meta = _read_npz(buffer, where)
        else:
            arrays, meta = _read_safetensors(buffer, len(buffer.getvalue()), where)
    else:
        raise TypeError(f"load: f must be a path (str or os.PathLike) or a binary file object, got {type(f).__name__}")

    if "minidl.structure" not in meta:  # a plain safetensors / npz file: a flat dict of tensors
        return {name: _tensor(array, name, where, device) for name, array in arrays.items()}
    version = meta.get("minidl.format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"load: {where} has minidl format version {version!r}; this minidl reads version {FORMAT_VERSION}"
        )
    try:
        tree = json.loads(meta["minidl.structure"])
    except ValueError:
        raise CheckpointError(f"load: {where} has a corrupted minidl structure (not valid JSON)") from None
    return _Decoder(arrays, where, device).decode(tree)
