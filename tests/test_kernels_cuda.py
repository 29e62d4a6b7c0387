"""The CUDA kernels (``kernels/cuda``) against the NumPy reference kernels (``kernels/reference``).

Two parts:

* **Compile checks**, on every machine with ``nvcc`` on PATH: each ``.cu`` source must compile
  for sm_80 and sm_90 with every warning an error (through ptxas too). Without nvcc, CuPy's
  NVRTC compiles them instead, if CuPy is importable; only with neither is the check skipped.
  A few more CPU-only checks: the sources are listed, and importing the package needs no CuPy.
* **GPU tests**, skipped without CuPy or a CUDA device: every kernel on many shapes (odd sizes,
  size 1, empty, broadcast batches, non-contiguous inputs, every convolution and pooling
  parameter), in float32 and float64, against the reference on the same data.
"""

from __future__ import annotations

import importlib
import itertools
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidl.backend.kernel_loader import import_kernels

import_kernels()
import minidl.kernels.cuda as kc  # noqa: E402
import minidl.kernels.reference as ref  # noqa: E402

# The package exports the functions ``matmul`` and friends, which shadow the submodules of the
# same name as attributes; import_module returns the modules themselves.
cuda_conv = importlib.import_module("minidl.kernels.cuda.conv")
cuda_matmul = importlib.import_module("minidl.kernels.cuda.matmul")
loader = importlib.import_module("minidl.kernels.cuda.loader")

ARCHS = ("80", "90")
ROOT = Path(__file__).resolve().parents[1]


def _cupy_with_gpu():
    try:
        import cupy
    except Exception:
        return None
    try:
        return cupy if cupy.cuda.is_available() else None
    except Exception:
        return None


cp = _cupy_with_gpu()
gpu = pytest.mark.skipif(cp is None, reason="needs CuPy and a CUDA GPU")
DTYPES = ["float32", "float64"]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# CPU-only: the sources compile, are listed, and the package imports without CuPy
# ---------------------------------------------------------------------------------------------


def test_every_cu_file_is_listed():
    on_disk = sorted(p.name for p in (ROOT / "kernels" / "cuda").glob("*.cu"))
    assert sorted(kc.SOURCES) == on_disk
    assert all(kc.source_path(name).is_file() for name in kc.SOURCES)


def _nvcc_command(nvcc: str, source: str, out: Path) -> list[str]:
    """nvcc for both architectures in one call (-fatbin runs ptxas for each), warnings as errors."""
    cmd = [nvcc, *loader.OPTIONS, "-fatbin", "-Werror", "all-warnings", "-Xptxas", "-Werror"]
    for arch in ARCHS:
        cmd += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    return cmd + ["-o", str(out), str(kc.source_path(source))]


@pytest.fixture(scope="module")
def nvcc_builds(tmp_path_factory):
    """Start nvcc on every source at once (they compile in parallel); None without nvcc."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    tmp = tmp_path_factory.mktemp("nvcc")
    builds = {}
    for source in loader.SOURCES:
        log = tmp / f"{source}.log"
        with open(log, "w") as handle:
            proc = subprocess.Popen(_nvcc_command(nvcc, source, tmp / f"{source}.fatbin"), stdout=handle, stderr=handle)
        builds[source] = (proc, log)
    return builds


@pytest.mark.parametrize("source", loader.SOURCES)
def test_cuda_source_compiles(source, nvcc_builds):
    """Every .cu file compiles for sm_80 and sm_90 without a warning (nvcc, else NVRTC)."""
    if nvcc_builds is not None:
        proc, log_path = nvcc_builds[source]
        proc.wait(timeout=600)
        log = log_path.read_text()
        assert proc.returncode == 0, f"nvcc failed on {source}:\n{log}"
        assert "warning" not in log.lower(), f"nvcc warned on {source}:\n{log}"
        return
    try:
        from cupy.cuda import compiler
    except Exception:
        pytest.skip("neither nvcc nor CuPy (NVRTC) is available to compile the CUDA sources")
    for arch in ARCHS:
        try:
            compiler.compile_using_nvrtc(kc.source_path(source).read_text(), options=loader.OPTIONS, arch=arch)
        except compiler.CompileException as err:  # a real compile error: fail
            pytest.fail(f"NVRTC failed on {source} for compute_{arch}:\n{err}")


def test_import_needs_no_cupy():
    code = (
        "import sys\n"
        "from minidl.backend.kernel_loader import import_kernels\n"
        "import_kernels()\n"
        "import minidl.kernels.cuda\n"
        "assert 'cupy' not in sys.modules, 'importing minidl.kernels.cuda imported cupy'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_dtype_errors_name_the_op():
    with pytest.raises(TypeError, match=r"matmul \(cuda\): expected float32 or float64 arrays, got int64"):
        loader.float_suffix("matmul", np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="one dtype"):
        loader.float_suffix("conv2d_forward", np.zeros(2, np.float32), np.zeros(2, np.float64))
    assert loader.float_suffix("x", np.zeros(1, np.float64)) == "f64"


def test_gemm_collapse_merges_contiguous_and_broadcast_axes():
    # (2, 3) batch, a contiguous, b broadcast: one level of 6.
    assert cuda_matmul._collapse((2, 3), [60, 20], [0, 0]) == [(6, 20, 0)]
    # a broadcast over the first axis only: two levels.
    assert cuda_matmul._collapse((2, 3), [0, 20], [90, 30]) == [(2, 0, 90), (3, 20, 30)]
    # size-1 axes vanish.
    assert cuda_matmul._collapse((1, 4, 1), [0, 12, 0], [0, 0, 0]) == [(4, 12, 0)]


def test_gemm_plan_tiles_and_splits(monkeypatch):
    monkeypatch.setattr(cuda_matmul, "sm_count", lambda: 132)  # an H100
    choose = cuda_matmul.choose_config
    assert choose("float32", 4096, 4096, 1) == "f32_128x128"
    assert choose("float32", 512, 512, 1) == "f32_64x64"  # 16 large tiles: too few for 132 SMs
    assert choose("float32", 64, 1024, 64) == "f32_64x64"  # 64 rows: half of a 128-row tile idle
    assert choose("float32", 128, 784, 32) == "f32_128x128"
    assert choose("float64", 4096, 4096, 1) == "f64_64x64"
    splits = cuda_matmul.choose_splits
    assert splits(9, 65536) == 30  # conv2d dW: 9 tiles, k = images x positions
    assert splits(200, 65536) == 1 and splits(1, 1000) == 1
    assert splits(1, 4096) == 16  # chunks of at least 256


# ---------------------------------------------------------------------------------------------
# GPU: helpers
# ---------------------------------------------------------------------------------------------


def _gpu(a):
    return cp.asarray(a)


def _cpu(a):
    return cp.asnumpy(a)


def _tol(dtype, k: int = 1) -> dict:
    """Tolerances for sums of ``k`` products of O(1) numbers (errors grow like sqrt(k) eps)."""
    if np.dtype(dtype) == np.float32:
        return {"rtol": 2e-4, "atol": 2e-5 * math.sqrt(max(k, 1))}
    return {"rtol": 1e-10, "atol": 1e-12 * math.sqrt(max(k, 1))}


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# GPU: matmul
# ---------------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((7, 1), (1, 9)),  # outer product
    ((2, 1, 3, 1), (4, 1, 6)),  # batched outer product, broadcast
    ((0, 3), (3, 2)),
    ((3, 0), (0, 2)),  # k = 0: zeros
    ((2, 3, 0), (0, 4)),
    ((0, 2, 3), (3, 4)),
    ((65, 33), (33, 129)),
    ((127, 129), (129, 63)),
    ((64, 128), (128, 256)),  # every vector-alignment condition met
    ((1, 300), (300, 1)),
    ((1, 257), (257, 131)),
    ((200, 3), (3, 1)),
    ((5, 17, 33), (33, 19)),  # batched, b broadcast
    ((17, 33), (5, 33, 19)),  # batched, a broadcast
    ((2, 1, 17, 32), (1, 3, 32, 20)),  # two broadcast levels
    ((2, 1, 3, 5, 6), (1, 4, 3, 6, 7)),  # three levels: materialized
    ((3, 1, 40, 24), (3, 5, 24, 8)),
    ((8, 3000), (3000, 8)),  # long k, few tiles: split-K
    ((2, 16, 2500), (2500, 12)),  # split-K over a batch
    ((300, 260), (260, 280)),
]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape_a,shape_b", MATMUL_SHAPES)
def test_matmul_matches_reference(shape_a, shape_b, dtype):
    rng = np.random.default_rng(len(shape_a) * 100 + shape_a[-1])
    a, b = _randn(rng, shape_a, dtype), _randn(rng, shape_b, dtype)
    want = ref.matmul(a, b)
    got = kc.matmul(_gpu(a), _gpu(b))
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(_cpu(got), want, **_tol(dtype, shape_a[-1]))


@st.composite
def _matmul_shapes(draw):
    """Random (shape_a, shape_b): sizes 1..70 (odd ones included), up to two broadcast batch axes."""
    m, k, n = (draw(st.integers(1, 70)) for _ in range(3))
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    batch_a = [d if draw(st.booleans()) else 1 for d in batch]
    batch_b = [d if draw(st.booleans()) else 1 for d in batch]
    batch_a = batch_a[draw(st.integers(0, len(batch_a))) :]  # a may have fewer batch axes
    return (*batch_a, m, k), (*batch_b, k, n)


@gpu
@PROPERTY
@given(shapes=_matmul_shapes(), dtype=st.sampled_from(DTYPES))
def test_matmul_property(shapes, dtype):
    shape_a, shape_b = shapes
    rng = np.random.default_rng(0)
    a, b = _randn(rng, shape_a, dtype), _randn(rng, shape_b, dtype)
    got = kc.matmul(_gpu(a), _gpu(b))
    np.testing.assert_allclose(_cpu(got), ref.matmul(a, b), **_tol(dtype, shape_a[-1]))


def _same(xp, t):
    return t


# (label, base shape of a, view of a, base shape of b, view of b): each view is applied to the
# same data on both sides (NumPy and CuPy), so the GPU kernel sees the strided layout.
NONCONTIGUOUS = [
    ("a transposed", (70, 50), lambda xp, t: t.T[:, :31], (31, 13), _same),
    ("row slice, lda > k", (50, 70), lambda xp, t: t[:, 5:38], (33, 21), _same),
    ("column step 2", (50, 70), lambda xp, t: t[:, ::2], (35, 9), _same),
    ("reversed rows", (50, 70), lambda xp, t: t[::-1], (70, 5), _same),
    ("b transposed", (9, 30), _same, (40, 30), lambda xp, t: t.T),
    ("b column slice", (9, 30), _same, (30, 64), lambda xp, t: t[:, 3:50]),
    ("batch transposed", (6, 30, 40), lambda xp, t: t.transpose(0, 2, 1), (30, 7), _same),
    ("batch step", (6, 40, 30), lambda xp, t: t[::2], (30, 11), _same),
    ("broadcast rows", (1, 70), lambda xp, t: xp.broadcast_to(t, (12, 70)), (70, 4), _same),
    ("broadcast batch", (20, 30), lambda xp, t: xp.broadcast_to(t, (3, 20, 30)), (3, 30, 40), _same),
    ("unaligned start", (3501,), lambda xp, t: t[1:].reshape(50, 70), (70, 8), _same),
]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", NONCONTIGUOUS, ids=[c[0] for c in NONCONTIGUOUS])
def test_matmul_noncontiguous_inputs(case, dtype):
    _, shape_a, view_a, shape_b, view_b = case
    rng = np.random.default_rng(3)
    base_a, base_b = _randn(rng, shape_a, dtype), _randn(rng, shape_b, dtype)
    a, b = view_a(np, base_a), view_b(np, base_b)
    got = kc.matmul(view_a(cp, _gpu(base_a)), view_b(cp, _gpu(base_b)))
    np.testing.assert_allclose(_cpu(got), ref.matmul(a, b), **_tol(dtype, a.shape[-1]))


@gpu
@pytest.mark.parametrize("config", sorted(cuda_matmul.CONFIGS))
def test_matmul_every_tile_config(config):
    dtype = cuda_matmul.CONFIGS[config][4]
    rng = np.random.default_rng(5)
    for shape_a, shape_b in [((1, 1), (1, 3)), ((130, 67), (67, 190)), ((3, 129, 64), (64, 132)), ((64, 8), (8, 64))]:
        a, b = _randn(rng, shape_a, dtype), _randn(rng, shape_b, dtype)
        got = cuda_matmul.matmul_with(_gpu(a), _gpu(b), config)
        np.testing.assert_allclose(_cpu(got), ref.matmul(a, b), **_tol(dtype, shape_a[-1]))


@gpu
@pytest.mark.parametrize("splits", [2, 3, 7])
def test_gemm_forced_split_k(splits):
    rng = np.random.default_rng(splits)
    a, b = _randn(rng, (37, 100), "float64"), _randn(rng, (100, 45), "float64")
    out = cp.empty((37, 45), dtype=np.float64)
    cuda_matmul.gemm(_gpu(a), _gpu(b), out, 37, 45, 100, 100, 45, splits=splits)
    np.testing.assert_allclose(_cpu(out), a @ b, **_tol("float64", 100))


@gpu
def test_matmul_dtypes_and_errors():
    a32, a64 = cp.ones((2, 3), np.float32), cp.ones((3, 2), np.float64)
    assert kc.matmul(a32, a64).dtype == np.float64  # promotes as NumPy does
    with pytest.raises(TypeError, match="float32 or float64"):
        kc.matmul(cp.ones((2, 2), np.int64), cp.ones((2, 2), np.int64))
    with pytest.raises(ValueError, match="cannot be multiplied: 3 != 4"):
        kc.matmul(cp.ones((2, 3), np.float32), cp.ones((4, 5), np.float32))
    np.testing.assert_array_equal(_cpu(kc.matmul_cublas(a32, a32.T)), np.full((2, 2), 3.0))


# ---------------------------------------------------------------------------------------------
# GPU: convolution
# ---------------------------------------------------------------------------------------------

# (N, C, H, W, K, KH, KW, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 7, 9, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (1, 1, 5, 5, 1, 1, 1, (1, 1), (0, 0), (1, 1), 1),  # 1x1: no im2col
    (2, 4, 6, 6, 6, 1, 1, (1, 1), (0, 0), (1, 1), 2),  # 1x1, grouped
    (2, 4, 6, 5, 6, 1, 1, (2, 1), (1, 0), (1, 1), 1),  # 1x1 with stride and padding: im2col
    (2, 4, 9, 8, 6, 3, 2, (2, 3), (1, 2), (2, 1), 2),  # everything at once
    (3, 6, 10, 10, 6, 3, 3, (1, 1), (1, 1), (1, 1), 6),  # depthwise
    (2, 6, 10, 10, 12, 3, 3, (2, 2), (1, 1), (1, 1), 3),
    (2, 2, 5, 7, 3, 5, 5, (1, 1), (2, 2), (1, 1), 1),  # large kernel
    (1, 3, 4, 4, 2, 4, 4, (1, 1), (0, 0), (1, 1), 1),  # kernel = input: 1x1 output
    (2, 3, 9, 9, 4, 2, 2, (4, 4), (1, 1), (1, 1), 1),  # stride > kernel: gaps
    (2, 3, 11, 7, 4, 3, 3, (2, 1), (0, 1), (3, 2), 1),  # dilation
    (1, 2, 1, 1, 3, 1, 1, (1, 1), (0, 0), (1, 1), 1),  # 1x1 image
    (1, 2, 1, 1, 3, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # 1x1 image, padded 3x3
    (3, 5, 13, 11, 7, 3, 3, (3, 2), (2, 0), (1, 2), 1),
    (8, 16, 16, 16, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # long k in dW: split-K
]


def _conv_data(case, dtype):
    n, c, h, w, k, kh, kw, stride, padding, dilation, groups = case
    rng = np.random.default_rng(n * 1000 + c * 100 + h)
    x = _randn(rng, (n, c, h, w), dtype)
    wt = _randn(rng, (k, c // groups, kh, kw), dtype)
    ho, wo = ref.conv2d_output_size(h, w, kh, kw, stride, padding, dilation)
    g = _randn(rng, (n, k, ho, wo), dtype)
    return x, wt, g, (stride, padding, dilation, groups)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_forward_and_backward(case, dtype):
    _check_conv(case, dtype)


def _check_conv(case, dtype):
    """Forward and both backward passes of one convolution against the reference."""
    x, w, g, params = _conv_data(case, dtype)
    k_sum = w[0].size
    got = kc.conv2d_forward(_gpu(x), _gpu(w), *params)
    want = ref.conv2d_forward(x, w, *params)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(_cpu(got), want, **_tol(dtype, k_sum))

    got = kc.conv2d_backward_input(_gpu(g), _gpu(w), x.shape, *params)
    want = ref.conv2d_backward_input(g, w, x.shape, *params)
    assert got.shape == x.shape
    np.testing.assert_allclose(_cpu(got), want, **_tol(dtype, w.shape[0] * w[0, 0].size))

    got = kc.conv2d_backward_weight(_gpu(x), _gpu(g), w.shape, *params)
    want = ref.conv2d_backward_weight(x, g, w.shape, *params)
    assert got.shape == w.shape
    np.testing.assert_allclose(_cpu(got), want, **_tol(dtype, g.shape[0] * g[0, 0].size))


@st.composite
def _conv_cases(draw):
    """A random valid convolution: every parameter varied, output at least 1x1."""
    groups = draw(st.integers(1, 3))
    c, k = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h_min = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0])
    w_min = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1])
    h, w = draw(st.integers(h_min, h_min + 8)), draw(st.integers(w_min, w_min + 8))
    return (draw(st.integers(1, 3)), c, h, w, k, kh, kw, stride, padding, dilation, groups)


@gpu
@PROPERTY
@given(case=_conv_cases(), dtype=st.sampled_from(DTYPES))
def test_conv2d_property(case, dtype):
    _check_conv(case, dtype)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_noncontiguous_inputs(dtype):
    x, w, g, params = _conv_data((2, 4, 9, 8, 6, 3, 2, (2, 3), (1, 2), (2, 1), 2), dtype)
    # the same values, as transposed views on the GPU
    gx = _gpu(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)
    gw = _gpu(np.ascontiguousarray(w.transpose(3, 2, 1, 0))).transpose(3, 2, 1, 0)
    gg = _gpu(np.ascontiguousarray(g.transpose(1, 0, 2, 3))).transpose(1, 0, 2, 3)
    assert not gx.flags.c_contiguous and not gw.flags.c_contiguous and not gg.flags.c_contiguous
    tol = _tol(dtype, 64)
    np.testing.assert_allclose(_cpu(kc.conv2d_forward(gx, gw, *params)), ref.conv2d_forward(x, w, *params), **tol)
    np.testing.assert_allclose(
        _cpu(kc.conv2d_backward_input(gg, gw, x.shape, *params)),
        ref.conv2d_backward_input(g, w, x.shape, *params),
        **tol,
    )
    np.testing.assert_allclose(
        _cpu(kc.conv2d_backward_weight(gx, gg, w.shape, *params)),
        ref.conv2d_backward_weight(x, g, w.shape, *params),
        **tol,
    )


@gpu
def test_conv2d_in_chunks_of_images(monkeypatch):
    """A tiny im2col budget forces one image per chunk: offsets and the dW accumulation."""
    monkeypatch.setattr(cuda_conv, "COLS_BUDGET", 1)
    for case in (CONV_CASES[0], CONV_CASES[4], CONV_CASES[2]):
        x, w, g, params = _conv_data(case, "float64")
        tol = _tol("float64", 64)
        np.testing.assert_allclose(
            _cpu(kc.conv2d_forward(_gpu(x), _gpu(w), *params)), ref.conv2d_forward(x, w, *params), **tol
        )
        np.testing.assert_allclose(
            _cpu(kc.conv2d_backward_input(_gpu(g), _gpu(w), x.shape, *params)),
            ref.conv2d_backward_input(g, w, x.shape, *params),
            **tol,
        )
        np.testing.assert_allclose(
            _cpu(kc.conv2d_backward_weight(_gpu(x), _gpu(g), w.shape, *params)),
            ref.conv2d_backward_weight(x, g, w.shape, *params),
            **tol,
        )


@gpu
def test_conv2d_errors():
    x, w = cp.ones((1, 4, 5, 5), np.float32), cp.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="groups"):
        kc.conv2d_forward(x, w, (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(TypeError, match="one dtype"):
        kc.conv2d_forward(x, cp.ones((2, 4, 3, 3)), (1, 1), (0, 0), (1, 1), 1)


# ---------------------------------------------------------------------------------------------
# GPU: pooling
# ---------------------------------------------------------------------------------------------

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
MAX_POOL_CASES = [
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1), (1, 1), False),
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1), (1, 1), True),
    (1, 2, 8, 8, (2, 2), (2, 2), (0, 0), (1, 1), False),
    (2, 2, 10, 9, (3, 2), (1, 2), (1, 1), (2, 1), True),
    (1, 1, 5, 5, (5, 5), (1, 1), (2, 2), (1, 1), False),
    (2, 3, 6, 7, (2, 3), (3, 1), (1, 1), (1, 2), True),
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1), False),
    (2, 4, 9, 9, (3, 3), (1, 1), (1, 1), (1, 1), False),  # heavy overlap: atomics in backward
    (1, 2, 11, 6, (4, 2), (3, 2), (2, 1), (1, 1), True),
]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=[str(i) for i in range(len(MAX_POOL_CASES))])
def test_max_pool2d_forward_and_backward(case, dtype):
    n, c, h, w, *params = case
    rng = np.random.default_rng(h * w)
    x = _randn(rng, (n, c, h, w), dtype)
    out, idx = kc.max_pool2d_forward(_gpu(x), *params)
    want, want_idx = ref.max_pool2d_forward(x, *params)
    assert out.shape == want.shape and out.dtype == want.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(_cpu(out), want)
    np.testing.assert_array_equal(_cpu(idx), want_idx)
    g = _randn(rng, want.shape, dtype)
    got = kc.max_pool2d_backward(_gpu(g), _gpu(want_idx), x.shape)
    np.testing.assert_allclose(_cpu(got), ref.max_pool2d_backward(g, want_idx, x.shape), **_tol(dtype, 9))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_nan_wins_and_ties_pick_the_first(dtype):
    x = np.zeros((1, 1, 4, 4), dtype)  # all ties: the first element of each window wins
    x[0, 0, 1, 2] = np.nan
    x[0, 0, 3, 0] = np.nan
    x[0, 0, 3, 1] = np.nan  # a second NaN in the same window: the first one wins
    for params in [((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 3), (1, 1), (1, 1), (1, 1), True)]:
        out, idx = kc.max_pool2d_forward(_gpu(x), *params)
        want, want_idx = ref.max_pool2d_forward(x, *params)
        np.testing.assert_array_equal(_cpu(out), want)  # NaN == NaN for assert_array_equal
        np.testing.assert_array_equal(_cpu(idx), want_idx)


@gpu
def test_max_pool2d_noncontiguous_input():
    rng = np.random.default_rng(0)
    x = _randn(rng, (2, 3, 8, 7), "float32")
    gx = _gpu(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)
    out, idx = kc.max_pool2d_forward(gx, (3, 3), (2, 2), (1, 1), (1, 1), False)
    want, want_idx = ref.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    np.testing.assert_array_equal(_cpu(out), want)
    np.testing.assert_array_equal(_cpu(idx), want_idx)


@st.composite
def _pool_cases(draw, dilated: bool):
    """Random valid pooling windows (padding at most half the window, as torch requires)."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    sizes = []
    for k, p, d in zip(kernel, padding, dilation):
        low = max(1, d * (k - 1) + 1 - 2 * p, d)  # at least one input element under each window
        sizes.append(draw(st.integers(low, low + 7)))
    return sizes, kernel, stride, padding, dilation, draw(st.booleans())


@gpu
@PROPERTY
@given(case=_pool_cases(dilated=True), dtype=st.sampled_from(DTYPES))
def test_max_pool2d_property(case, dtype):
    (h, w), kernel, stride, padding, dilation, ceil = case
    x = _randn(np.random.default_rng(h * w), (2, 2, h, w), dtype)
    out, idx = kc.max_pool2d_forward(_gpu(x), kernel, stride, padding, dilation, ceil)
    want, want_idx = ref.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil)
    np.testing.assert_array_equal(_cpu(out), want)
    np.testing.assert_array_equal(_cpu(idx), want_idx)
    g = np.ones_like(want)
    got = kc.max_pool2d_backward(_gpu(g), _gpu(want_idx), x.shape)
    np.testing.assert_allclose(_cpu(got), ref.max_pool2d_backward(g, want_idx, x.shape), **_tol(dtype, 16))


@gpu
@PROPERTY
@given(
    case=_pool_cases(dilated=False),
    cip=st.booleans(),
    div=st.sampled_from([None, 1, 5]),
    dtype=st.sampled_from(DTYPES),
)
def test_avg_pool2d_property(case, cip, div, dtype):
    (h, w), kernel, stride, padding, _, ceil = case
    rng = np.random.default_rng(h * w)
    x = _randn(rng, (2, 2, h, w), dtype)
    params = (kernel, stride, padding, ceil, cip, div)
    want = ref.avg_pool2d_forward(x, *params)
    np.testing.assert_allclose(_cpu(kc.avg_pool2d_forward(_gpu(x), *params)), want, **_tol(dtype, 16))
    g = _randn(rng, want.shape, dtype)
    got = kc.avg_pool2d_backward(_gpu(g), x.shape, *params)
    np.testing.assert_allclose(_cpu(got), ref.avg_pool2d_backward(g, x.shape, *params), **_tol(dtype, 16))


# (H, W, kernel, stride, padding)
AVG_GEOMETRIES = [
    (7, 9, (3, 3), (2, 2), (1, 1)),
    (8, 8, (2, 2), (2, 2), (0, 0)),
    (10, 9, (3, 2), (1, 2), (1, 1)),
    (5, 6, (4, 3), (3, 2), (2, 1)),
    (1, 1, (1, 1), (1, 1), (0, 0)),
    (6, 7, (3, 3), (1, 1), (1, 1)),  # overlapping windows in backward
]
AVG_CASES = [
    (*geo, ceil, cip, div)
    for geo, ceil, cip, div in itertools.product(AVG_GEOMETRIES, (False, True), (True, False), (None, 3))
]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_CASES, ids=[str(i) for i in range(len(AVG_CASES))])
def test_avg_pool2d_forward_and_backward(case, dtype):
    h, w, kernel, stride, padding, ceil, cip, div = case
    rng = np.random.default_rng(h * 31 + w)
    x = _randn(rng, (2, 3, h, w), dtype)
    params = (kernel, stride, padding, ceil, cip, div)
    got = kc.avg_pool2d_forward(_gpu(x), *params)
    want = ref.avg_pool2d_forward(x, *params)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(_cpu(got), want, **_tol(dtype, 16))
    g = _randn(rng, want.shape, dtype)
    got = kc.avg_pool2d_backward(_gpu(g), x.shape, *params)
    np.testing.assert_allclose(_cpu(got), ref.avg_pool2d_backward(g, x.shape, *params), **_tol(dtype, 16))


# ---------------------------------------------------------------------------------------------
# GPU: log-softmax + NLL, erf
# ---------------------------------------------------------------------------------------------


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_nll_matches_reference(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 5)) * 20).astype(dtype)
    x[1] = [1e4, -1e4, 0, 3, 3]
    x[4] = -np.inf
    x[4, 2] = 0.0
    t = np.array([0, 1, -100, 3, 2, 0])
    logp, losses, counted = kc.log_softmax_nll(_gpu(x), _gpu(t))
    want_logp, want_losses, want_counted = ref.log_softmax_nll(x, t)
    assert logp.dtype == x.dtype and losses.dtype == x.dtype and counted == want_counted == 5
    np.testing.assert_allclose(_cpu(logp), want_logp, **_tol(dtype))
    np.testing.assert_allclose(_cpu(losses), want_losses, **_tol(dtype))
    with pytest.raises(IndexError, match="target 5 is out of bounds for 5 classes"):
        kc.log_softmax_nll(_gpu(x), _gpu(np.array([0, 5, 0, 0, 0, 0])))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_erf_matches_the_c_library(dtype):
    x = np.linspace(-6, 6, 97).astype(dtype).reshape(97, 1)
    got = kc.erf(_gpu(x))
    want = np.array([[math.erf(float(v))] for v in x[:, 0]], dtype=dtype)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_allclose(_cpu(got), want, rtol=1e-6 if dtype == "float32" else 1e-15, atol=1e-30)
