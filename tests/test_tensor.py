"""The Tensor API (factories, dtypes and promotion, properties, conversions, repr), checked against torch.

Every expected dtype and value comes from torch run on the same input, or is derived by hand.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import minidl

# ---- helpers ------------------------------------------------------------------------------------

DTYPE_NAMES = ["float32", "float64", "int32", "int64", "bool"]


def mdtype(name: str):
    """The minidl dtype called ``name``."""
    return minidl.bool if name == "bool" else getattr(minidl, name)


def tdtype(name: str):
    """The torch dtype called ``name``."""
    return getattr(torch, name)


def tname(dtype: torch.dtype) -> str:
    """torch.float32 -> 'float32'."""
    return str(dtype).removeprefix("torch.")


def assert_like_torch(m: minidl.Tensor, t: torch.Tensor, exact: bool = True) -> None:
    """Same type, dtype, shape and values as the torch result."""
    assert isinstance(m, minidl.Tensor), f"expected a minidl.Tensor, got {type(m).__name__}"
    assert m.dtype.name == tname(t.dtype), f"dtype {m.dtype.name} != torch {tname(t.dtype)}"
    assert tuple(m.shape) == tuple(t.shape), f"shape {tuple(m.shape)} != torch {tuple(t.shape)}"
    got, want = m.detach().numpy(), t.detach().numpy()
    if exact or not np.issubdtype(want.dtype, np.floating):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# ---- factories ----------------------------------------------------------------------------------

# Each case is built the same way from either library ``L`` (minidl or torch).
FACTORY_CASES = {
    "int scalar": lambda L: L.tensor(3),
    "negative int scalar": lambda L: L.tensor(-7),
    "float scalar": lambda L: L.tensor(2.5),
    "bool scalar": lambda L: L.tensor(True),
    "int list": lambda L: L.tensor([1, 2, 3]),
    "float list": lambda L: L.tensor([1.0, -2.5]),
    "mixed int float": lambda L: L.tensor([1, 2.5]),
    "mixed bool int": lambda L: L.tensor([True, 2]),
    "mixed bool float": lambda L: L.tensor([True, 2.5]),
    "bool list": lambda L: L.tensor([True, False]),
    "nested": lambda L: L.tensor([[1, 2], [3, 4], [5, 6]]),
    "nested float": lambda L: L.tensor([[[1.5], [2.0]]]),
    "empty list": lambda L: L.tensor([]),
    "empty nested": lambda L: L.tensor([[], []]),
    "tensor dtype float64": lambda L: L.tensor([1, 2], dtype=L.float64),
    "tensor dtype int64 truncates": lambda L: L.tensor([1.7, -1.7, 0.2], dtype=L.int64),
    "tensor dtype int32": lambda L: L.tensor([[1, 2]], dtype=L.int32),
    "tensor dtype bool": lambda L: L.tensor([0.0, 2.0], dtype=L.bool),
    "numpy float64 scalar": lambda L: L.tensor(np.float64(2.5)),
    "numpy int32 scalar": lambda L: L.tensor(np.int32(2)),
    "zeros varargs": lambda L: L.zeros(2, 3),
    "zeros tuple": lambda L: L.zeros((2, 3)),
    "zeros 0-d": lambda L: L.zeros(()),
    "zeros empty": lambda L: L.zeros(0, 4),
    "ones int32": lambda L: L.ones(4, dtype=L.int32),
    "ones bool": lambda L: L.ones(2, 2, dtype=L.bool),
    "full float": lambda L: L.full((2, 3), 1.5),
    "full int": lambda L: L.full((2,), 7),
    "full bool": lambda L: L.full((2, 2), True),
    "full int as float64": lambda L: L.full((3,), 2, dtype=L.float64),
    "arange int": lambda L: L.arange(5),
    "arange start end step": lambda L: L.arange(1, 8, 2),
    "arange negative step": lambda L: L.arange(10, 0, -3),
    "arange float end": lambda L: L.arange(5.0),
    "arange float step": lambda L: L.arange(0, 1, 0.25),
    "arange float start": lambda L: L.arange(-1.5, 1.5, 0.5),
    "arange dtype": lambda L: L.arange(0, 5, dtype=L.float64),
    "arange empty": lambda L: L.arange(3, 3),
    "linspace": lambda L: L.linspace(0, 1, 5),
    "linspace float64": lambda L: L.linspace(-2, 2, 7, dtype=L.float64),
    "linspace one step": lambda L: L.linspace(0, 1, 1),
    "linspace zero steps": lambda L: L.linspace(0, 1, 0),
    "linspace int64": lambda L: L.linspace(0, 10, 5, dtype=L.int64),
    "eye": lambda L: L.eye(3),
    "eye rect": lambda L: L.eye(2, 4),
    "eye int": lambda L: L.eye(3, dtype=L.int64),
}


@pytest.mark.parametrize("name", list(FACTORY_CASES))
def test_factory_matches_torch(name):
    """Each deterministic factory call gives torch's dtype, shape and values (floats to rounding)."""
    build = FACTORY_CASES[name]
    assert_like_torch(build(minidl), build(torch), exact=False)


def test_arange_float_step_matches_torch():
    """arange with a float step (0.1 is not exact) gives float32 and torch's length and values."""
    m, t = minidl.arange(0, 1, 0.1), torch.arange(0, 1, 0.1)
    assert_like_torch(m, t, exact=False)
    assert len(m) == 10


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_tensor_from_numpy_array_keeps_dtype_and_copies(name):
    """tensor(ndarray) keeps each supported dtype and copies; from_numpy shares memory."""
    arr = np.array([[0, 1, 2], [3, 0, 5]]).astype(name)
    m, t = minidl.tensor(arr), torch.tensor(arr)
    assert_like_torch(m, t)
    arr[0, 0] = 1
    assert m.numpy()[0, 0] == 0, "tensor() must copy the array"
    shared = minidl.from_numpy(arr)
    assert shared.dtype.name == name
    arr[0, 1] = 0
    assert shared.numpy()[0, 1] == 0, "from_numpy must share memory"


def test_tensor_from_tensor_copies():
    """tensor(tensor) copies the values into a new leaf that does not require grad."""
    src = minidl.tensor([1.0, 2.0], requires_grad=True)
    out = minidl.tensor(src)
    assert out is not src and not out.requires_grad and out.is_leaf
    np.testing.assert_array_equal(out.numpy(), [1.0, 2.0])
    out.numpy()[0] = 9.0
    assert src.detach().numpy()[0] == 1.0
    assert minidl.tensor(minidl.tensor([1, 2]), dtype=minidl.float64).dtype == minidl.float64


@pytest.mark.parametrize("np_dtype", [np.uint8, np.float16, np.int16, np.complex64])
def test_unsupported_numpy_dtype_raises_with_advice(np_dtype):
    """Arrays of unsupported dtypes raise a TypeError that names the dtype and how to convert."""
    arr = np.zeros(3, dtype=np_dtype)
    for make in (minidl.tensor, minidl.from_numpy, minidl.Tensor, minidl.as_tensor):
        with pytest.raises(TypeError, match=rf"{np.dtype(np_dtype).name}.*astype"):
            make(arr)


def test_tensor_from_unsupported_numpy_with_dtype_converts():
    """tensor(uint8_array, dtype=...) is an explicit conversion and works."""
    arr = np.array([1, 2, 255], dtype=np.uint8)
    assert_like_torch(minidl.tensor(arr, dtype=minidl.int64), torch.tensor(arr, dtype=torch.int64))


def test_empty_has_shape_and_dtype():
    """empty() gives the requested shape and dtype (values are unspecified)."""
    for args, kwargs in [((2, 3), {}), (((4,),), {"dtype": "int32"}), ((0,), {"dtype": "bool"})]:
        m_kwargs = {k: mdtype(v) for k, v in kwargs.items()}
        t_kwargs = {k: tdtype(v) for k, v in kwargs.items()}
        m, t = minidl.empty(*args, **m_kwargs), torch.empty(*args, **t_kwargs)
        assert m.dtype.name == tname(t.dtype) and tuple(m.shape) == tuple(t.shape)


@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_rand_randn_shape_dtype_and_distribution(fn):
    """rand is uniform in [0, 1), randn standard normal; float32 by default, float64 on request."""
    m = getattr(minidl, fn)(4000)
    assert m.dtype == minidl.float32 and m.shape == (4000,)
    a = m.numpy()
    if fn == "rand":
        assert a.min() >= 0.0 and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.03
    else:
        assert abs(a.mean()) < 0.06 and abs(a.std() - 1.0) < 0.06
    assert getattr(minidl, fn)(2, 3, dtype=minidl.float64).dtype == minidl.float64
    assert getattr(minidl, fn)((2, 3)).shape == (2, 3)
    r = getattr(minidl, fn)(3, requires_grad=True)
    assert r.requires_grad and r.is_leaf


def test_randint_range_and_dtype():
    """randint(low, high, size) draws int64 values in [low, high), like torch."""
    m, t = minidl.randint(-3, 4, (500,)), torch.randint(-3, 4, (500,))
    assert m.dtype.name == tname(t.dtype) and tuple(m.shape) == (500,)
    assert set(np.unique(m.numpy())) == set(range(-3, 4))
    assert minidl.randint(0, 5, (2, 2), dtype=minidl.int32).dtype == minidl.int32


def test_randint_high_size_form():
    """randint(high, size) starts at 0, as torch.randint(high, size)."""
    m, t = minidl.randint(5, (300,)), torch.randint(5, (300,))
    assert m.dtype.name == tname(t.dtype) and tuple(m.shape) == tuple(t.shape)
    assert set(np.unique(m.numpy())) == set(range(5))


def test_manual_seed_reproducible():
    """The same seed gives the same numbers; a different seed gives different ones."""
    minidl.manual_seed(123)
    a = (minidl.rand(5).numpy(), minidl.randn(5).numpy(), minidl.randint(0, 1000, (5,)).numpy())
    minidl.manual_seed(123)
    b = (minidl.rand(5).numpy(), minidl.randn(5).numpy(), minidl.randint(0, 1000, (5,)).numpy())
    minidl.manual_seed(124)
    c = (minidl.rand(5).numpy(), minidl.randn(5).numpy(), minidl.randint(0, 1000, (5,)).numpy())
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)


LIKE_CASES = {
    "zeros_like int32": lambda L, x: L.zeros_like(x),
    "ones_like dtype": lambda L, x: L.ones_like(x, dtype=L.float64),
    "full_like float fill on int": lambda L, x: L.full_like(x, 2.5),
    "full_like bool": lambda L, x: L.full_like(x, True, dtype=L.bool),
}


@pytest.mark.parametrize("name", list(LIKE_CASES))
def test_like_factories_match_torch(name):
    """*_like factories take shape and dtype from the input (dtype= overrides), as torch."""
    src = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    build = LIKE_CASES[name]
    assert_like_torch(build(minidl, minidl.tensor(src)), build(torch, torch.tensor(src)))


def test_random_like_factories():
    """empty_like/rand_like/randn_like/randint_like keep shape and dtype like torch."""
    m, t = minidl.zeros(2, 3, dtype=minidl.float64), torch.zeros(2, 3, dtype=torch.float64)
    for fn in ("empty_like", "rand_like", "randn_like"):
        a, b = getattr(minidl, fn)(m), getattr(torch, fn)(t)
        assert a.dtype.name == tname(b.dtype) and tuple(a.shape) == tuple(b.shape), fn
    r = minidl.rand_like(m)
    assert r.numpy().min() >= 0 and r.numpy().max() < 1
    mi, ti = minidl.zeros(50, dtype=minidl.int32), torch.zeros(50, dtype=torch.int32)
    a, b = minidl.randint_like(mi, 10), torch.randint_like(ti, 10)
    assert a.dtype.name == tname(b.dtype) and tuple(a.shape) == tuple(b.shape)
    assert a.numpy().min() >= 0 and a.numpy().max() < 10
    assert minidl.randn_like(m, requires_grad=True).requires_grad


NEW_CASES = {
    "new_zeros varargs": lambda L, x: x.new_zeros(2, 3),
    "new_zeros tuple": lambda L, x: x.new_zeros((2, 3)),
    "new_ones": lambda L, x: x.new_ones(4),
    "new_full int fill": lambda L, x: x.new_full((2,), 3),
    "new_tensor keeps dtype": lambda L, x: x.new_tensor([1, 2]),
    "new_tensor dtype": lambda L, x: x.new_tensor([1.5, 2], dtype=L.int32),
    "new_ones dtype": lambda L, x: x.new_ones(2, dtype=L.bool),
}


@pytest.mark.parametrize("name", list(NEW_CASES))
def test_new_factories_match_torch(name):
    """new_zeros/new_ones/new_full/new_tensor default to the source tensor's dtype."""
    m = minidl.tensor([1.0, 2.0], dtype=minidl.float64)
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert_like_torch(NEW_CASES[name](minidl, m), NEW_CASES[name](torch, t))


@pytest.mark.parametrize(
    "build",
    [
        lambda L: L.tensor([1.0, 2.0], requires_grad=True),
        lambda L: L.zeros(2, requires_grad=True),
        lambda L: L.ones(2, 2, dtype=L.float64, requires_grad=True),
        lambda L: L.full((3,), 1.5, requires_grad=True),
        lambda L: L.arange(3.0, requires_grad=True),
        lambda L: L.linspace(0, 1, 3, requires_grad=True),
        lambda L: L.eye(2, requires_grad=True),
        lambda L: L.zeros_like(L.ones(2), requires_grad=True),
    ],
)
def test_requires_grad_argument(build):
    """requires_grad=True makes a leaf that requires grad, with no grad yet."""
    m, t = build(minidl), build(torch)
    assert m.requires_grad is t.requires_grad is True
    assert m.is_leaf and m.grad is None and m.grad_fn is None
    assert_like_torch(m, t)


# ---- dtypes and promotion -----------------------------------------------------------------------


def test_default_dtype_is_float32():
    """Floats default to float32, ints to int64, bools to bool."""
    assert minidl.get_default_dtype() == minidl.float32
    assert minidl.tensor(1.0).dtype == minidl.float32
    assert minidl.tensor(1).dtype == minidl.int64
    assert minidl.tensor(True).dtype == minidl.bool
    assert minidl.float is minidl.float32 and minidl.double is minidl.float64
    assert minidl.long is minidl.int64 and minidl.int is minidl.int32


def test_set_default_dtype_float64():
    """With default float64, Python floats and int/int division give float64, as in torch."""
    old_m, old_t = minidl.get_default_dtype(), torch.get_default_dtype()
    try:
        minidl.set_default_dtype(minidl.float64)
        torch.set_default_dtype(torch.float64)
        assert_like_torch(minidl.tensor([1.5]), torch.tensor([1.5]))
        assert_like_torch(minidl.tensor([1, 2]) * 0.5, torch.tensor([1, 2]) * 0.5)
        assert_like_torch(minidl.tensor([1, 2]) / 2, torch.tensor([1, 2]) / 2)
        assert_like_torch(minidl.zeros(2), torch.zeros(2))
    finally:
        minidl.set_default_dtype(old_m)
        torch.set_default_dtype(old_t)
    assert minidl.get_default_dtype() == minidl.float32


NAMED_PROMOTIONS = {
    "int tensor * python float": lambda L: L.tensor([1, 2]) * 2.5,
    "int32 tensor * python float": lambda L: L.tensor([1, 2], dtype=L.int32) * 2.5,
    "float32 + float64 0-d": lambda L: L.ones(2) + L.tensor(1.0, dtype=L.float64),
    "float32 + float64 1-d": lambda L: L.ones(2) + L.ones(2, dtype=L.float64),
    "int32 + int64 0-d": lambda L: L.ones(2, dtype=L.int32) + L.tensor(5),
    "int32 + int64 1-d": lambda L: L.ones(2, dtype=L.int32) + L.tensor([5, 6]),
    "bool + python int": lambda L: L.tensor([True, False]) + 1,
    "bool + int tensor": lambda L: L.tensor([True, False]) + L.tensor([3, 4]),
    "int / int": lambda L: L.tensor([1, 3]) / L.tensor([2, 2]),
    "int / python int": lambda L: L.tensor([1, 3]) / 2,
    "int32 + python int": lambda L: L.tensor([1], dtype=L.int32) + 2,
    "0-d int + python float": lambda L: L.tensor(3) + 0.5,
    "0-d float64 * 0-d int": lambda L: L.tensor(2.0, dtype=L.float64) * L.tensor(3),
    "float32 + 0-d int64": lambda L: L.ones(2) + L.tensor(2),
    "int32 1-d + 0-d float64": lambda L: L.ones(2, dtype=L.int32) + L.tensor(1.5, dtype=L.float64),
}


@pytest.mark.parametrize("name", list(NAMED_PROMOTIONS))
def test_named_promotion_matches_torch(name):
    """The promotion rules the design calls out give torch's dtype and values."""
    build = NAMED_PROMOTIONS[name]
    assert_like_torch(build(minidl), build(torch), exact=False)


# Operands for the promotion table: a dimensioned tensor, a 0-d tensor, or a Python scalar,
# each built from small nonzero values so that / never divides by zero.
_VALUES = {"float32": [1.5, -2.0], "float64": [0.5, 3.0], "int32": [3, -2], "int64": [2, 5], "bool": [True, True]}
_SCALARS = {"py_bool": True, "py_int": 3, "py_float": 1.5}


def _operands():
    for name in DTYPE_NAMES:
        yield f"tensor[{name}]", (lambda L, n=name: L.tensor(_VALUES[n], dtype=tdtype(n) if L is torch else mdtype(n)))
        yield f"0-d[{name}]", (lambda L, n=name: L.tensor(_VALUES[n][0], dtype=tdtype(n) if L is torch else mdtype(n)))
    for name, value in _SCALARS.items():
        yield name, (lambda L, v=value: v)


OPERANDS = dict(_operands())
BINARY_OPS = {"+": lambda a, b: a + b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@pytest.mark.parametrize("op", list(BINARY_OPS))
def test_promotion_table_matches_torch(op):
    """For every pair of operand kinds and dtypes, +, * and / give torch's result dtype and values."""
    fn = BINARY_OPS[op]
    mismatches = []
    for (na, make_a), (nb, make_b) in itertools.product(OPERANDS.items(), repeat=2):
        if na.startswith("py_") and nb.startswith("py_"):
            continue
        want = fn(make_a(torch), make_b(torch))
        try:
            got = fn(make_a(minidl), make_b(minidl))
        except Exception as err:  # a crash is a mismatch too; collect them all
            mismatches.append(f"{na} {op} {nb}: raised {type(err).__name__}: {err}")
            continue
        if not isinstance(got, minidl.Tensor) or got.dtype.name != tname(want.dtype):
            mismatches.append(f"{na} {op} {nb}: {getattr(got, 'dtype', type(got))} != torch {tname(want.dtype)}")
            continue
        if tuple(got.shape) != tuple(want.shape) or not np.allclose(got.numpy(), want.numpy(), rtol=1e-6):
            mismatches.append(f"{na} {op} {nb}: values {got.numpy()} != torch {want.numpy()}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_comparisons_give_bool(op):
    """Comparisons of any dtypes (and with Python scalars) give bool tensors with torch's values."""
    fn = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }[op]
    for na, nb in itertools.product(["tensor[float32]", "tensor[int64]", "0-d[float64]", "tensor[bool]"], OPERANDS):
        make_a, make_b = OPERANDS[na], OPERANDS[nb]
        assert_like_torch(fn(make_a(minidl), make_b(minidl)), fn(make_a(torch), make_b(torch)))


# ---- properties ---------------------------------------------------------------------------------


def test_basic_properties():
    """shape, ndim, dtype, device, size(), size(dim) incl. negative dims, numel(), dim()."""
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    m, t = minidl.tensor(data), torch.tensor(data)
    assert m.shape == tuple(t.shape) and isinstance(m.shape, tuple)
    assert m.ndim == t.ndim and m.dim() == t.dim()
    assert m.size() == tuple(t.size())
    for d in range(-3, 3):
        assert m.size(d) == t.size(d)
    assert m.numel() == t.numel()
    assert m.dtype is minidl.float32
    assert str(m.device) == str(t.device) == "cpu"
    assert m.device == minidl.device("cpu") and m.device.type == "cpu"
    s = minidl.tensor(2.0)
    assert s.shape == () and s.ndim == 0 and s.numel() == 1 and s.size() == ()


@pytest.mark.parametrize("dim", [3, -4])
def test_size_dim_out_of_range(dim):
    """size(dim) outside [-ndim, ndim) raises IndexError naming the range, as torch."""
    with pytest.raises(IndexError):
        torch.ones(2, 3, 4).size(dim)
    with pytest.raises(IndexError, match=r"\[-3, 2\]"):
        minidl.ones(2, 3, 4).size(dim)


def test_autograd_properties():
    """requires_grad, grad, grad_fn and is_leaf behave as in torch, and grad matches torch's."""
    data = [1.0, -2.0, 3.0]
    m, t = minidl.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    assert m.is_leaf and m.grad_fn is None and m.grad is None
    my, ty = (m * m).sum(), (t * t).sum()
    assert my.requires_grad and not my.is_leaf and my.grad_fn is not None
    my.backward()
    ty.backward()
    assert_like_torch(m.grad, t.grad)
    (m * 3).sum().backward()
    (t * 3).sum().backward()
    assert_like_torch(m.grad, t.grad)  # accumulates
    plain = minidl.tensor(data) * 2
    assert not plain.requires_grad and plain.is_leaf and plain.grad_fn is None


def test_requires_grad_on_int_tensor_raises():
    """Integer and bool tensors cannot require grad (factory argument, setter, requires_grad_)."""
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating"):
        minidl.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating"):
        minidl.zeros(2, dtype=minidl.int32, requires_grad=True)
    t = minidl.tensor([True])
    with pytest.raises(RuntimeError, match="floating"):
        t.requires_grad = True
    with pytest.raises(RuntimeError, match="floating"):
        minidl.tensor([1]).requires_grad_()
    assert not t.requires_grad


def test_requires_grad_setter_on_non_leaf_false_raises():
    """Turning requires_grad off on a non-leaf raises and points to detach()."""
    t = torch.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError):
        t.requires_grad = False
    m = minidl.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"leaf.*detach\(\)"):
        m.requires_grad = False
    assert m.requires_grad
    leaf = minidl.ones(2, requires_grad=True)
    leaf.requires_grad = False
    assert not leaf.requires_grad


def test_requires_grad_setter_on_non_leaf_true_raises():
    """Like torch, any change of requires_grad on a non-leaf raises (even to True)."""
    t = torch.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError):
        t.requires_grad = True
    m = minidl.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        m.requires_grad = True


# ---- conversions ----------------------------------------------------------------------------------


def test_numpy_shares_memory():
    """numpy() returns the storage itself: writes through either side show in the other."""
    m = minidl.tensor([1.0, 2.0, 3.0])
    a = m.numpy()
    a[0] = 5.0
    assert m.tolist() == [5.0, 2.0, 3.0]
    with minidl.no_grad():
        m.add_(1.0)
    np.testing.assert_array_equal(a, [6.0, 3.0, 4.0])


def test_numpy_requires_grad_raises_with_advice():
    """numpy() on a tensor that requires grad raises and says to detach() first."""
    with pytest.raises(RuntimeError):
        torch.ones(2, requires_grad=True).numpy()
    m = minidl.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"detach\(\)"):
        m.numpy()
    with pytest.raises(RuntimeError, match=r"detach\(\)"):
        np.asarray(m)
    np.testing.assert_array_equal(m.detach().numpy(), [1.0, 1.0])


@pytest.mark.parametrize(
    "data",
    [[1.5, -2.0], [[1, 2], [3, 4]], [True, False], 2.5, 7, True, [], [[0.1]]],
    ids=["float", "int2d", "bool", "float0d", "int0d", "bool0d", "empty", "nested1"],
)
def test_tolist_and_item_match_torch(data):
    """tolist() gives torch's nested Python values and types; item() on one-element tensors too."""
    m, t = minidl.tensor(data), torch.tensor(data)
    got, want = m.tolist(), t.tolist()
    assert got == want
    assert type(got) is type(want)
    if t.numel() == 1:
        assert m.item() == t.item() and type(m.item()) is type(t.item())


def test_item_many_elements_raises():
    """item() on a tensor with several elements raises RuntimeError, as torch."""
    with pytest.raises(RuntimeError):
        torch.ones(2).item()
    with pytest.raises(RuntimeError, match="2 elements"):
        minidl.ones(2).item()


def test_detach_shares_storage_and_version():
    """detach() shares storage and version counter, does not require grad, and is a leaf."""
    m, t = minidl.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    md, td = m.detach(), t.detach()
    assert md.requires_grad is td.requires_grad is False
    assert md.is_leaf and md.grad_fn is None
    md.add_(10.0)
    td.add_(10.0)
    assert_like_torch(m, t)
    assert m._version == t._version == 1
    assert md._version == td._version == 1


def test_clone_copies_and_keeps_graph():
    """clone() copies values; the clone of a grad tensor is a non-leaf that passes gradient back."""
    m, t = minidl.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    mc, tc = m.clone(), t.clone()
    assert mc.requires_grad and not mc.is_leaf and mc.grad_fn is not None
    (mc * mc).sum().backward()
    (tc * tc).sum().backward()
    assert_like_torch(m.grad, t.grad)
    plain = minidl.tensor([1, 2])
    c = plain.clone()
    c.numpy()[0] = 9
    assert plain.tolist() == [1, 2]


CAST_SOURCES = {
    "float": [-1.7, -0.2, 0.0, 2.5, 3.9],
    "int": [-3, 0, 2, 7, 1],
    "bool": [True, False, True, True, False],
}
CASTS = {
    "float()": lambda x: x.float(),
    "double()": lambda x: x.double(),
    "long()": lambda x: x.long(),
    "int()": lambda x: x.int(),
    "bool()": lambda x: x.bool(),
    "to(float64)": lambda x: x.to(minidl.float64 if isinstance(x, minidl.Tensor) else torch.float64),
    "to(int32)": lambda x: x.to(minidl.int32 if isinstance(x, minidl.Tensor) else torch.int32),
    "to(other)": lambda x: x.to(
        minidl.tensor([1], dtype=minidl.int32) if isinstance(x, minidl.Tensor) else torch.tensor([1], dtype=torch.int32)
    ),
}


@pytest.mark.parametrize("cast", list(CASTS))
@pytest.mark.parametrize("source", list(CAST_SOURCES))
def test_casts_match_torch(source, cast):
    """float()/double()/long()/int()/bool()/to(dtype) give torch's dtype and values."""
    data = CAST_SOURCES[source]
    assert_like_torch(CASTS[cast](minidl.tensor(data)), CASTS[cast](torch.tensor(data)))


def test_cast_to_same_dtype_returns_self():
    """to(own dtype) and float() on a float32 tensor return the tensor itself, as torch."""
    m, t = minidl.ones(2), torch.ones(2)
    assert t.to(torch.float32) is t and t.float() is t
    assert m.to(minidl.float32) is m and m.float() is m


def test_cast_keeps_grad_flow():
    """A float32 -> float64 cast is differentiable; its gradient comes back as float32."""
    m = minidl.tensor([1.0, 2.0], requires_grad=True)
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    (m.double() * 3).sum().backward()
    (t.double() * 3).sum().backward()
    assert_like_torch(m.grad, t.grad)


def test_array_protocol():
    """np.asarray(t) shares memory; np.asarray(t, dtype=...) converts; np.array(t) copies."""
    m = minidl.tensor([1.0, 2.0, 3.0])
    a = np.asarray(m)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert np.shares_memory(a, m.numpy())
    b = np.asarray(m, dtype=np.float64)
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, [1.0, 2.0, 3.0])
    c = np.array(m)
    c[0] = 0.0
    assert m.tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(np.asarray(minidl.tensor([[True, False]])), np.asarray(torch.tensor([[True, False]])))


def test_len_and_iter():
    """len() is the first dimension; iterating yields the rows as tensors; 0-d tensors raise TypeError."""
    data = [[1, 2], [3, 4], [5, 6]]
    m, t = minidl.tensor(data), torch.tensor(data)
    assert len(m) == len(t) == 3
    rows = list(m)
    assert all(isinstance(r, minidl.Tensor) for r in rows)
    assert [r.tolist() for r in rows] == [r.tolist() for r in t]
    s = minidl.tensor(1.0)
    with pytest.raises(TypeError, match="0-d"):
        len(s)
    with pytest.raises(TypeError, match="0-d"):
        iter(s)


def test_bool_conversion():
    """bool() works on one-element tensors; more (or zero) elements raise RuntimeError, as torch."""
    for data in ([0.0], [2.0], 0, [[True]], False):
        assert bool(minidl.tensor(data)) == bool(torch.tensor(data))
    for data in ([1.0, 2.0], []):
        with pytest.raises(RuntimeError):
            bool(torch.tensor(data))
        with pytest.raises(RuntimeError, match="ambiguous"):
            bool(minidl.tensor(data))


def test_float_int_conversion():
    """float() and int() of one-element tensors give torch's Python numbers (int truncates)."""
    for data in (2.5, -2.7, [3], [[True]], -7):
        m, t = minidl.tensor(data), torch.tensor(data)
        assert float(m) == float(t) and type(float(m)) is float
        assert int(m) == int(t) and type(int(m)) is int


def test_float_int_conversion_of_many_elements_raises_like_torch():
    """float()/int() of a several-element tensor raise the exception type torch raises (ValueError)."""
    for fn in (float, int):
        with pytest.raises(ValueError):
            fn(torch.ones(2))
        with pytest.raises(ValueError):
            fn(minidl.ones(2))


def test_index_protocol():
    """Integer one-element tensors work as list indices and range bounds; float tensors raise TypeError."""
    items = [10, 20, 30, 40]
    assert items[minidl.tensor(2)] == items[torch.tensor(2)] == 30
    assert items[minidl.tensor(1, dtype=minidl.int32)] == 20
    assert list(range(minidl.tensor(3))) == [0, 1, 2]
    assert items[minidl.tensor(1) : minidl.tensor(3)] == [20, 30]
    with pytest.raises(TypeError):
        items[torch.tensor(1.0)]
    with pytest.raises(TypeError, match="integer"):
        items[minidl.tensor(1.0)]
    with pytest.raises(TypeError, match="integer"):
        items[minidl.tensor([1, 2])]


def test_hash_is_identity():
    """Tensors hash by identity: equal-valued tensors are distinct dict keys, and in-place edits keep the hash."""
    a, b = minidl.tensor([1.0]), minidl.tensor([1.0])
    table = {a: "a", b: "b"}
    assert len(table) == 2 and table[a] == "a" and table[b] == "b"
    h = hash(a)
    with minidl.no_grad():
        a.add_(1.0)
    assert hash(a) == h and table[a] == "a"
    assert a in {a} and b not in {a}


# ---- repr ---------------------------------------------------------------------------------------


def _torch_repr(t: torch.Tensor) -> str:
    return repr(t).replace("torch.", "minidl.").replace("Backward0", "Backward")


REPR_CASES = {
    "float vector": lambda L: L.tensor([1.0, 2.5]),
    "int vector": lambda L: L.tensor([1, 2, 3]),
    "float matrix": lambda L: L.tensor([[1.0, 2.0], [3.0, 4.0]]),
    "int matrix widths": lambda L: L.tensor([[1, -20], [300, 4]]),
    "3-d": lambda L: L.arange(24.0).reshape(2, 3, 4),
    "float scalar": lambda L: L.tensor(3.5),
    "int scalar": lambda L: L.tensor(7),
    "bool mixed": lambda L: L.tensor([True, False]),
    "bool all true": lambda L: L.tensor([True, True]),
    "bool scalar": lambda L: L.tensor(True),
    "negative floats": lambda L: L.tensor([-1.5, 2.0]),
    "small sci": lambda L: L.tensor([1e-5, 1.0]),
    "large sci": lambda L: L.tensor([1e10, 1.0]),
    "integral floats, wide range": lambda L: L.tensor([123456.0, 1.0]),
    "mixed magnitudes": lambda L: L.tensor([0.1, 0.25, 100.0]),
    "nan inf": lambda L: L.tensor([float("nan"), float("inf"), 1.0]),
    "negative zero": lambda L: L.tensor([-0.0, 1.0]),
    "long row wraps": lambda L: L.arange(30.0) / 7,
    "summarized int": lambda L: L.arange(2000),
    "summarized float": lambda L: L.arange(2000.0) / 3,
    "summarized matrix": lambda L: L.arange(3000).reshape(30, 100),
    "float64": lambda L: L.tensor([1.0, 2.0], dtype=L.float64),
    "float64 scalar": lambda L: L.tensor(1.5, dtype=L.float64),
    "int32": lambda L: L.tensor([1, 2], dtype=L.int32),
    "empty": lambda L: L.zeros(0),
    "empty 2-d": lambda L: L.zeros(0, 3),
    "empty float64 2-d": lambda L: L.zeros(0, 2, dtype=L.float64),
    "empty int64": lambda L: L.zeros(0, dtype=L.int64),
    "empty bool": lambda L: L.zeros(0, dtype=L.bool),
    "requires grad": lambda L: L.tensor([1.0, 2.5], requires_grad=True),
    "requires grad float64": lambda L: L.tensor([1.0], dtype=L.float64, requires_grad=True),
    "grad_fn mul": lambda L: L.tensor([1.0, 2.5], requires_grad=True) * 2,
    "grad_fn add": lambda L: L.tensor([1.0, 2.5], requires_grad=True) + 1,
    "grad_fn sum": lambda L: L.tensor([1.0, 2.5], requires_grad=True).sum(),
    "grad_fn exp": lambda L: L.tensor([1.0, 2.5], requires_grad=True).exp(),
    "grad_fn float64": lambda L: L.tensor([1.0], dtype=L.float64, requires_grad=True) * 2,
}


@pytest.mark.parametrize("name", list(REPR_CASES))
def test_repr_matches_torch(name):
    """repr equals torch's with 'torch.' -> 'minidl.' and 'Backward0' -> 'Backward'."""
    build = REPR_CASES[name]
    assert repr(build(minidl)) == _torch_repr(build(torch))


def test_repr_important_parts():
    """Whatever the number format, repr shows values, requires_grad, grad_fn and non-default dtypes."""
    r = repr(minidl.tensor([1.0, 2.5], requires_grad=True))
    assert r.startswith("tensor([") and "2.5" in r and "requires_grad=True" in r and "dtype" not in r
    r = repr(minidl.tensor([1.0, 2.5], requires_grad=True).mean())
    assert "grad_fn=<" in r and "Backward" in r and "requires_grad" not in r and "1.75" in r
    assert "dtype=minidl.float64" in repr(minidl.tensor([1.0], dtype=minidl.float64))
    assert "dtype=minidl.int32" in repr(minidl.tensor([1], dtype=minidl.int32))
    assert "dtype" not in repr(minidl.tensor([1, 2]))
    assert "dtype" not in repr(minidl.tensor([True]))
    assert repr(minidl.tensor([])) == "tensor([])"
    assert "size=(0, 3)" in repr(minidl.zeros(0, 3))


# ---- numpy interop ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a**b,
    ],
    ids=["add", "sub", "mul", "div", "pow"],
)
def test_ndarray_op_tensor_returns_tensor(op):
    """``ndarray <op> tensor`` returns a minidl Tensor (NumPy defers), with torch's dtype and values."""
    arr = np.array([1.0, 2.0, 4.0])
    m, t = minidl.tensor([2.0, 0.5, 1.0]), torch.tensor([2.0, 0.5, 1.0])
    got = op(arr, m)
    assert isinstance(got, minidl.Tensor), type(got)
    assert_like_torch(got, op(torch.from_numpy(arr), t), exact=False)


def test_numpy_scalar_op_tensor():
    """NumPy scalars act as Python numbers on either side of an op, as in torch."""
    m, t = minidl.ones(3), torch.ones(3)
    assert_like_torch(np.float64(2.0) * m, np.float64(2.0) * t)
    assert_like_torch(m * np.float64(2.0), t * np.float64(2.0))
    mi, ti = minidl.ones(3, dtype=minidl.int32), torch.ones(3, dtype=torch.int32)
    assert_like_torch(mi + np.int64(2), ti + np.int64(2))
