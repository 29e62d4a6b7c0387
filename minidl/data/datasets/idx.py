"""The IDX file format (MNIST's): read and write n-dimensional arrays of numbers.

An IDX file is a tiny header followed by the raw values, all big-endian::

    offset  bytes  meaning
    0       2      0x00 0x00            (always zero)
    2       1      type code            0x08 uint8, 0x09 int8, 0x0B int16,
                                        0x0C int32, 0x0D float32, 0x0E float64
    3       1      number of dimensions d
    4       4*d    the size of each dimension, uint32 big-endian
    4+4d    ...    prod(sizes) values of the type, big-endian, last dimension fastest (C order)

Read as one big-endian int32, the first four bytes are MNIST's "magic number":
``0x00000803 = 2051`` for the images (uint8, 3 dimensions: N x 28 x 28) and
``0x00000801 = 2049`` for the labels (uint8, 1 dimension: N). Files are usually gzipped; the
reader recognises gzip by its first two bytes (``1f 8b``), not by the file name.

The reader checks everything the header promises -- the zero bytes, a known type code, and
that the file holds exactly ``prod(sizes)`` values -- so a truncated download or a damaged
file fails with a message naming the file, rather than producing a wrong-shaped array.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXError", "read_idx", "parse_idx", "write_idx", "IDX_TYPES"]

#: type code -> big-endian NumPy dtype
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file is malformed (bad header, wrong length, damaged compression)."""


def parse_idx(buffer: bytes, name: str = "<bytes>") -> np.ndarray:
    """The array stored in the (uncompressed) IDX bytes ``buffer``, in native byte order.

    ``name`` is used in error messages (the file the bytes came from).
    """
    if len(buffer) < 4:
        raise IDXError(f"read_idx: {name} is too short to be an IDX file ({len(buffer)} bytes; the header alone is 4+)")
    zero, code, ndim = struct.unpack(">HBB", buffer[:4])
    if zero != 0:
        raise IDXError(
            f"read_idx: {name} is not an IDX file: its first two bytes are {buffer[:2].hex()}, not 0000 "
            f"(magic number {int.from_bytes(buffer[:4], 'big')})"
        )
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X} {t.name}" for c, t in IDX_TYPES.items())
        raise IDXError(f"read_idx: {name} has unknown IDX type code 0x{code:02X} (known: {known})")
    header = 4 + 4 * ndim
    if len(buffer) < header:
        raise IDXError(
            f"read_idx: {name} is truncated: its header declares {ndim} dimensions ({header} bytes) but the file "
            f"has only {len(buffer)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", buffer[4:header])
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(buffer) - header
    if actual != expected:
        kind = "truncated" if actual < expected else "longer than its header says"
        raise IDXError(
            f"read_idx: {name} is {kind}: shape {shape} of {dtype.name} needs {expected} bytes of data after the "
            f"{header}-byte header, but there are {actual}. The file is damaged; delete it and download it again"
        )
    array = np.frombuffer(buffer, dtype=dtype, offset=header).reshape(shape)
    # Native byte order (a no-op copy for bytes); frombuffer's result is read-only, a copy is not.
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a NumPy array of its type and shape."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            # BadGzipFile (an OSError) for a bad header or CRC, EOFError for a cut-off stream.
            raise IDXError(
                f"read_idx: {path} is a damaged gzip file ({err}); delete it and download it again"
            ) from None
    return parse_idx(raw, str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``), atomically:
    the bytes go to a temporary file in the same folder that is then renamed over ``path``."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(
            f"write_idx: IDX cannot store dtype {array.dtype}; use one of uint8, int8, int16, int32, float32, float64"
        )
    if array.ndim > 255 or any(s >= 2**32 for s in array.shape):
        raise ValueError(f"write_idx: IDX cannot store shape {array.shape} (at most 255 dimensions below 2**32)")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    body = header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        body = gzip.compress(body, mtime=0)  # mtime=0: the same array always gives the same bytes
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
