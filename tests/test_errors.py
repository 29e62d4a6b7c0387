"""Bad input gets a clear error: the exception type torch raises, a message naming the op, the
shapes or dtypes and the fix, and -- where it is observable -- no compute and no side effects.

Each test first checks what torch raises for the same call, then that minidl raises the same
kind of exception with the important words in its message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minidl
import minidl.nn.functional as F
from minidl.ops import conv as conv_ops
from minidl.ops import linalg


def _shapes(*shapes: tuple) -> str:
    """A regex prefix (anchored at the start) requiring every shape somewhere in the message, in any order."""
    return "(?s)^" + "".join(f"(?=.*{re.escape(str(s))})" for s in shapes)


def _spy(monkeypatch, op_cls) -> list:
    """Replace ``op_cls.forward`` by a recorder, to see whether an op computed at all."""
    calls: list = []
    original = op_cls.forward

    def forward(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(op_cls, "forward", staticmethod(forward))
    return calls


# ---- elementwise broadcasting -------------------------------------------------------------------

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}
BAD_PAIRS = [((2, 3), (4,)), ((4,), (2, 3)), ((5, 1, 3), (4, 2)), ((2, 3), (3, 2))]


@pytest.mark.parametrize("shapes", BAD_PAIRS, ids=str)
@pytest.mark.parametrize("op", list(BINARY))
def test_broadcast_mismatch_names_op_and_shapes(op, shapes):
    """Elementwise ops on unbroadcastable shapes raise RuntimeError naming the op, both shapes and the fix."""
    sa, sb = shapes
    with pytest.raises(RuntimeError):
        BINARY[op](torch.ones(sa), torch.ones(sb))
    with pytest.raises(RuntimeError, match=_shapes(sa, sb) + rf"{op}: .*broadcast.*(reshape|unsqueeze)"):
        BINARY[op](minidl.ones(sa), minidl.ones(sb))


@pytest.mark.parametrize("op", list(BINARY))
def test_broadcast_mismatch_named_function(op):
    """minidl.add/sub/mul/div raise the same clear error as the operators."""
    with pytest.raises(RuntimeError, match=_shapes((3,), (2,)) + rf"{op}: "):
        getattr(minidl, op)(minidl.ones(3), minidl.ones(2))


def test_inplace_broadcast_mismatch_leaves_tensor_unchanged():
    """A failing in-place add_ (or +=) raises and leaves values and _version unchanged."""
    with pytest.raises(RuntimeError):
        torch.ones(3).add_(torch.ones(4))
    x = minidl.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=_shapes((3,), (4,))):
        x.add_(minidl.ones(4))
    with pytest.raises(RuntimeError, match=_shapes((3,), (4,))):
        x += minidl.ones(4)
    assert x.tolist() == [1.0, 2.0, 3.0] and x._version == 0


def test_inplace_result_broadcasts_larger_than_target():
    """add_ whose result would be larger than the target raises, leaving the target unchanged."""
    with pytest.raises(RuntimeError):
        torch.ones(3).add_(torch.ones(2, 3))
    x = minidl.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=_shapes((2, 3), (3,)) + r"add_"):
        x.add_(minidl.ones(2, 3))
    assert x.tolist() == [1.0, 2.0, 3.0] and x._version == 0


def test_inplace_dtype_that_cannot_be_cast_leaves_tensor_unchanged():
    """int_tensor.add_(1.5) raises (float result into an int tensor) and changes nothing."""
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2]).add_(1.5)
    x = minidl.tensor([1, 2])
    with pytest.raises(RuntimeError, match=r"add_.*can't be cast.*int64.*out-of-place"):
        x.add_(1.5)
    assert x.tolist() == [1, 2] and x._version == 0


def test_copy_shape_mismatch_names_op_and_shapes():
    """copy_ from an unbroadcastable source raises RuntimeError naming copy_ and both shapes; no change."""
    with pytest.raises(RuntimeError):
        torch.ones(3).copy_(torch.ones(4))
    x = minidl.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=_shapes((3,), (4,)) + r"copy_?:"):
        x.copy_(minidl.ones(4))
    assert x.tolist() == [1.0, 2.0, 3.0] and x._version == 0


def test_setitem_shape_mismatch_leaves_tensor_unchanged():
    """Assigning a (5,) value into a row of length 3 raises and changes nothing."""
    with pytest.raises(RuntimeError):
        torch.ones(3, 3)[0] = torch.ones(5)
    x = minidl.zeros(3, 3)
    with pytest.raises(RuntimeError, match=_shapes((5,), (3,))):
        x[0] = minidl.ones(5)
    assert x.tolist() == [[0.0] * 3] * 3 and x._version == 0


def test_bool_subtraction_names_op_and_fix():
    """bool - bool raises (as torch) naming sub and pointing to ^ / logical_xor, in minidl's words."""
    with pytest.raises(RuntimeError):
        torch.tensor([True]) - torch.tensor([False])
    with pytest.raises(RuntimeError, match=r"^sub.*bool.*logical_xor"):
        minidl.tensor([True]) - minidl.tensor([False])


# ---- matmul -------------------------------------------------------------------------------------


def test_matmul_mismatch_exact_message(monkeypatch):
    """The spec's example: (2, 3) @ (4, 5) names both shapes and the mismatch, before any compute."""
    with pytest.raises(RuntimeError):
        torch.matmul(torch.ones(2, 3), torch.ones(4, 5))
    calls = _spy(monkeypatch, linalg.Matmul)
    expected = "matmul: shapes (2, 3) and (4, 5) cannot be multiplied: 3 != 4"
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        minidl.matmul(minidl.ones(2, 3), minidl.ones(4, 5))
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        minidl.ones(2, 3) @ minidl.ones(4, 5)
    assert calls == [], "matmul computed before reporting the error"
    minidl.ones(2, 3) @ minidl.ones(3, 5)
    assert calls == [1], "the spy must see a valid matmul"


@pytest.mark.parametrize(
    "sa, sb",
    [((3,), (4,)), ((2, 3), (2,)), ((5,), (4, 2)), ((2, 2, 3), (2, 4, 1))],
    ids=str,
)
def test_matmul_mismatch_other_ranks(sa, sb):
    """Vector and batched matmul mismatches also name both shapes and the two sizes."""
    with pytest.raises(RuntimeError):
        torch.matmul(torch.ones(sa), torch.ones(sb))
    k1, k2 = sa[-1], sb[0] if len(sb) == 1 else sb[-2]
    with pytest.raises(
        RuntimeError, match=re.escape(f"matmul: shapes {sa} and {sb} cannot be multiplied: {k1} != {k2}")
    ):
        minidl.matmul(minidl.ones(sa), minidl.ones(sb))


def test_matmul_batch_mismatch_names_shapes():
    """Unbroadcastable batch dimensions name matmul and the batch shapes."""
    with pytest.raises(RuntimeError):
        torch.matmul(torch.ones(2, 3, 4), torch.ones(3, 4, 5))
    with pytest.raises(RuntimeError, match=_shapes((2,), (3,)) + r"matmul.*batch"):
        minidl.matmul(minidl.ones(2, 3, 4), minidl.ones(3, 4, 5))


@pytest.mark.parametrize("sa, sb", [((), (3,)), ((3,), ()), ((), ())], ids=str)
def test_matmul_zero_dim(sa, sb):
    """matmul with a 0-d operand raises RuntimeError saying both need at least 1 dimension, and to use *."""
    with pytest.raises(RuntimeError):
        torch.matmul(torch.ones(sa), torch.ones(sb))
    with pytest.raises(RuntimeError, match=_shapes(sa, sb) + r"matmul.*at least 1 dimension.*\*"):
        minidl.matmul(minidl.ones(sa), minidl.ones(sb))


# ---- shape ops ----------------------------------------------------------------------------------


def test_cat_mismatch_names_both_shapes():
    """cat of (2, 3) and (2, 4) along dim 0 names cat, the dimension and both shapes."""
    with pytest.raises(RuntimeError):
        torch.cat([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(RuntimeError, match=_shapes((2, 3), (2, 4)) + r"cat:.*dimension 0"):
        minidl.cat([minidl.ones(2, 3), minidl.ones(2, 4)])
    with pytest.raises(RuntimeError, match=_shapes((2, 3), (3, 3)) + r"cat:.*dimension 1"):
        minidl.cat([minidl.ones(2, 3), minidl.ones(3, 3)], dim=1)


def test_cat_rank_mismatch_names_shapes():
    """cat of a 2-D and a 1-D tensor raises naming both shapes."""
    with pytest.raises(RuntimeError):
        torch.cat([torch.ones(2, 3), torch.ones(3)])
    with pytest.raises(RuntimeError, match=_shapes((2, 3), (3,)) + r"cat:"):
        minidl.cat([minidl.ones(2, 3), minidl.ones(3)])


def test_stack_unequal_shapes():
    """stack of unequal shapes names stack and both shapes."""
    with pytest.raises(RuntimeError):
        torch.stack([torch.ones(2, 3), torch.ones(3, 2)])
    with pytest.raises(RuntimeError, match=_shapes((2, 3), (3, 2)) + r"stack:.*equal size"):
        minidl.stack([minidl.ones(2, 3), minidl.ones(3, 2)])


@pytest.mark.parametrize("new", [(4, 4), (5, -1), (7,)], ids=str)
def test_reshape_incompatible_size(new):
    """reshape to a size with a different number of elements names the target shape and the input size."""
    with pytest.raises(RuntimeError):
        torch.ones(2, 3).reshape(new)
    with pytest.raises(RuntimeError, match=rf"^reshape:.*{re.escape(str(new))}.*size 6"):
        minidl.ones(2, 3).reshape(new)
    with pytest.raises(RuntimeError, match=rf"{re.escape(str(new))}.*size 6"):
        minidl.ones(2, 3).view(new)


def test_reshape_two_inferred_dims():
    """reshape(-1, -1) says only one dimension can be inferred."""
    with pytest.raises(RuntimeError):
        torch.ones(2, 3).reshape(-1, -1)
    with pytest.raises(RuntimeError, match=r"reshape:.*only one dimension can be inferred"):
        minidl.ones(2, 3).reshape(-1, -1)


@pytest.mark.parametrize(
    "make",
    [
        lambda L: L.ones(2, 3).t(),
        lambda L: L.ones(2, 3, 4).permute(2, 0, 1),
        lambda L: L.arange(24.0).reshape(4, 6)[:, :3],
    ],
    ids=["t", "permute", "sliced"],
)
def test_view_on_non_contiguous_needs_copy(make):
    """view of a non-contiguous tensor that would need a copy raises and suggests .reshape()."""
    with pytest.raises(RuntimeError):
        make(torch).view(-1)
    x = make(minidl)
    with pytest.raises(RuntimeError, match=r"^view:.*stride.*\.reshape\("):
        x.view(-1)
    assert x.reshape(-1).shape == (x.numel(),)


# ---- convolution and pooling --------------------------------------------------------------------


def test_conv2d_channel_mismatch(monkeypatch):
    """conv2d with 3 input channels and a weight expecting 4 names both shapes, before any compute."""
    with pytest.raises(RuntimeError):
        TF.conv2d(torch.ones(1, 3, 5, 5), torch.ones(2, 4, 3, 3))
    calls = _spy(monkeypatch, conv_ops.Conv2d)
    with pytest.raises(RuntimeError, match=_shapes((1, 3, 5, 5), (2, 4, 3, 3)) + r"conv2d:.*3 channels.*4"):
        F.conv2d(minidl.ones(1, 3, 5, 5), minidl.ones(2, 4, 3, 3))
    assert calls == []


def test_conv2d_kernel_larger_than_input(monkeypatch):
    """A 3x3 kernel on a 2x2 input names conv2d, the kernel and the input size, before any compute."""
    with pytest.raises(RuntimeError):
        TF.conv2d(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 3, 3))
    calls = _spy(monkeypatch, conv_ops.Conv2d)
    with pytest.raises(RuntimeError, match=_shapes((3, 3), (2, 2)) + r"conv2d:.*kernel"):
        F.conv2d(minidl.ones(1, 1, 2, 2), minidl.ones(1, 1, 3, 3))
    assert calls == []
    F.conv2d(minidl.ones(1, 1, 2, 2), minidl.ones(1, 1, 3, 3), padding=1)  # fits once padded
    assert calls == [1]


@pytest.mark.parametrize("shape", [(2, 3), (5,), (1, 1, 1, 5, 5)], ids=str)
def test_conv2d_wrong_input_ndim(shape):
    """conv2d on an input that is not 3-D or 4-D raises as torch does, naming the expected layouts and the shape."""
    with pytest.raises(RuntimeError):
        TF.conv2d(torch.ones(shape), torch.ones(1, 1, 1, 1))
    with pytest.raises(RuntimeError, match=r"^conv2d:.*3-D.*4-D.*" + re.escape(str(shape))):
        F.conv2d(minidl.ones(shape), minidl.ones(1, 1, 1, 1))


def test_conv2d_wrong_weight_ndim():
    """conv2d with a 3-D weight names the 4-D weight layout and the given shape."""
    with pytest.raises(RuntimeError):
        TF.conv2d(torch.ones(1, 1, 5, 5), torch.ones(1, 5, 5))
    with pytest.raises((RuntimeError, ValueError), match=r"conv2d:.*4-D weight.*" + re.escape("(1, 5, 5)")):
        F.conv2d(minidl.ones(1, 1, 5, 5), minidl.ones(1, 5, 5))


@pytest.mark.parametrize("kernel, padding", [(2, 2), (3, 2), (2, 5)])
def test_max_pool2d_padding_too_large(kernel, padding):
    """max_pool2d with padding above half the kernel names the op, padding, kernel and the rule."""
    with pytest.raises(RuntimeError):
        TF.max_pool2d(torch.ones(1, 1, 8, 8), kernel, padding=padding)
    with pytest.raises(RuntimeError, match=rf"^max_pool2d:.*padding.*{padding}.*half.*kernel.*{kernel}"):
        F.max_pool2d(minidl.ones(1, 1, 8, 8), kernel, padding=padding)


def test_max_pool2d_kernel_larger_than_input():
    """A pooling window larger than the input says the output would be empty, naming the input shape."""
    with pytest.raises(RuntimeError):
        TF.max_pool2d(torch.ones(1, 1, 2, 2), 3)
    with pytest.raises(RuntimeError, match=r"^max_pool2d:.*empty.*" + re.escape("(1, 1, 2, 2)")):
        F.max_pool2d(minidl.ones(1, 1, 2, 2), 3)


# ---- indexing -----------------------------------------------------------------------------------


def test_index_with_float_tensor():
    """Indexing with a float tensor raises IndexError: indices must be long, int or bool; use .long()."""
    with pytest.raises(IndexError):
        torch.ones(3)[torch.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match=r"must be long, int or bool.*float32.*\.long\(\)"):
        minidl.ones(3)[minidl.tensor([0.0, 1.0])]


def test_gather_with_float_index():
    """gather with a float index raises as torch does (RuntimeError), naming gather, the dtype and .long()."""
    with pytest.raises(RuntimeError):
        torch.ones(3).gather(0, torch.tensor([0.0]))
    with pytest.raises(RuntimeError, match=r"^gather:.*float32.*\.long\(\)"):
        minidl.ones(3).gather(0, minidl.tensor([0.0]))


def test_gather_with_int_index_works():
    """gather accepts int64 and int32 indices and matches torch (the error above is only for floats)."""
    src = [[1.0, 2.0], [3.0, 4.0]]
    idx = [[1, 0], [0, 0]]
    want = torch.tensor(src).gather(1, torch.tensor(idx))
    for dt in (minidl.int64, minidl.int32):
        got = minidl.tensor(src).gather(1, minidl.tensor(idx, dtype=dt))
        np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize(
    "shape, index, bad, size",
    [((3,), 5, 5, 3), ((3,), -4, -4, 3), ((2, 3), 2, 2, 2), ((3, 2), (slice(None), 2), 2, 2)],
    ids=["pos", "neg", "row", "column"],
)
def test_index_out_of_range(shape, index, bad, size):
    """An integer index out of range raises IndexError naming the index, the size and the shape."""
    with pytest.raises(IndexError):
        torch.ones(shape)[index]
    with pytest.raises(IndexError, match=rf"index {bad} is out of bounds.*size {size}.*{re.escape(str(shape))}"):
        minidl.ones(shape)[index]


def test_index_tensor_out_of_range():
    """An index tensor with an out-of-range entry raises IndexError naming it."""
    with pytest.raises(IndexError):
        torch.ones(3)[torch.tensor([0, 3])]
    with pytest.raises(IndexError, match=r"index 3 is out of bounds.*size 3"):
        minidl.ones(3)[minidl.tensor([0, 3])]


def test_setitem_out_of_range_leaves_tensor_unchanged():
    """Assigning at an out-of-range index raises IndexError and changes nothing."""
    with pytest.raises(IndexError):
        torch.ones(3)[5] = 1.0
    x = minidl.zeros(3)
    with pytest.raises(IndexError, match=r"index 5 is out of bounds"):
        x[5] = 1.0
    assert x.tolist() == [0.0, 0.0, 0.0] and x._version == 0


def test_too_many_indices():
    """Indexing a 1-D tensor with two indices raises IndexError naming the shape."""
    with pytest.raises(IndexError):
        torch.ones(3)[0, 0]
    with pytest.raises(IndexError, match=r"too many indices.*\(3,\)"):
        minidl.ones(3)[0, 0]


# ---- bitwise ------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["&", "|", "^"])
def test_bitwise_on_float_tensors(op):
    """Bitwise ops on float tensors raise as torch does (RuntimeError), naming the dtype and the mask fix."""
    fn = {"&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b}[op]
    with pytest.raises(RuntimeError):
        fn(torch.ones(2), torch.ones(2))
    with pytest.raises(RuntimeError, match=r"bitwise.*bool or integer.*float32.*x > 0"):
        fn(minidl.ones(2), minidl.ones(2))


def test_bitwise_not_on_float_tensor():
    """~ on a float tensor raises TypeError (as torch) naming bitwise_not and the dtype."""
    with pytest.raises(TypeError):
        ~torch.ones(2)
    with pytest.raises(TypeError, match=r"bitwise_not.*float32"):
        ~minidl.ones(2)


def test_bitwise_on_bool_and_int_works():
    """The bitwise ops still work on bool and integer tensors, matching torch."""
    a, b = [True, False, True], [True, True, False]
    for fn in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y):
        assert fn(minidl.tensor(a), minidl.tensor(b)).tolist() == fn(torch.tensor(a), torch.tensor(b)).tolist()
        assert (
            fn(minidl.tensor([6, 3]), minidl.tensor([3, 5])).tolist()
            == fn(torch.tensor([6, 3]), torch.tensor([3, 5])).tolist()
        )


# ---- autograd misuse ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda L: L.tensor([1, 2], requires_grad=True),
        lambda L: L.zeros(2, dtype=L.int32, requires_grad=True),
        lambda L: L.arange(3, requires_grad=True),
        lambda L: L.tensor([True], requires_grad=True),
    ],
    ids=["tensor int64", "zeros int32", "arange int", "bool"],
)
def test_integer_tensor_requires_grad(make):
    """Integer/bool tensors with requires_grad=True raise RuntimeError saying convert with .float()."""
    with pytest.raises(RuntimeError):
        make(torch)
    with pytest.raises(RuntimeError, match=r"floating.*\.float\(\)"):
        make(minidl)


def test_backward_non_scalar_without_gradient():
    """backward() on a non-scalar without gradient= raises and says to pass gradient=; leaves untouched."""
    t = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        (t * 2).backward()
    x = minidl.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(3,\).*gradient="):
        y.backward()
    assert x.grad is None
    y.backward(gradient=minidl.tensor([1.0, 2.0, 3.0]))
    (t * 2).backward(gradient=torch.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_backward_gradient_wrong_shape():
    """backward(gradient=) with the wrong shape names both shapes."""
    with pytest.raises(RuntimeError):
        (torch.ones(3, requires_grad=True) * 2).backward(torch.ones(4))
    x = minidl.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=_shapes((4,), (3,)) + r".*shape"):
        (x * 2).backward(minidl.ones(4))
    assert x.grad is None


@pytest.mark.parametrize(
    "make",
    [lambda L: L.ones(3).sum(), lambda L: L.ones(3, requires_grad=True).detach().sum(), lambda L: L.tensor(2.0)],
    ids=["no grad inputs", "detached", "leaf"],
)
def test_backward_on_tensor_without_grad(make):
    """backward() on a tensor that does not require grad raises and says it has no grad_fn."""
    with pytest.raises(RuntimeError):
        make(torch).backward()
    with pytest.raises(RuntimeError, match=r"does not require grad.*grad_fn"):
        make(minidl).backward()


@pytest.mark.parametrize(
    "update",
    [
        lambda x: x.add_(1.0),
        lambda x: x.mul_(2.0),
        lambda x: x.sub_(1.0),
        lambda x: x.div_(2.0),
        lambda x: x.fill_(0.0),
        lambda x: x.zero_(),
        lambda x: x.copy_(x.detach() * 0),
        lambda x: x.__iadd__(1.0),
        lambda x: x.__setitem__(0, 5.0),
        lambda x: x.exp_(),
    ],
    ids=["add_", "mul_", "sub_", "div_", "fill_", "zero_", "copy_", "+=", "setitem", "exp_"],
)
def test_inplace_on_leaf_requiring_grad(update):
    """In-place ops on a leaf that requires grad raise RuntimeError mentioning no_grad, and change nothing."""
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        update(t)
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"leaf.*requires grad.*in-place.*no_grad"):
        update(x)
    assert x.detach().tolist() == [1.0, 2.0]
    assert x._version == 0 and x.is_leaf and x.grad_fn is None
    with minidl.no_grad():
        update(x)  # the fix the message suggests works
    with torch.no_grad():
        update(t)
    np.testing.assert_allclose(x.detach().numpy(), t.detach().numpy(), rtol=1e-6)


# ---- reductions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_mean_on_integer_tensor(dtype):
    """mean() on an integer/bool tensor raises as torch does (RuntimeError), saying to convert with .float()."""
    data = [[1, 2], [3, 4]]
    with pytest.raises(RuntimeError):
        torch.tensor(data, dtype=getattr(torch, dtype)).mean()
    x = minidl.tensor(data, dtype=minidl.bool if dtype == "bool" else getattr(minidl, dtype))
    with pytest.raises(RuntimeError, match=rf"^mean:.*{dtype}.*\.float\(\)"):
        x.mean()
    with pytest.raises(RuntimeError, match=r"^mean:"):
        x.mean(0)
    assert x.float().mean().item() == torch.tensor(data, dtype=getattr(torch, dtype)).float().mean().item()


# ---- losses -------------------------------------------------------------------------------------


def test_cross_entropy_float_target_wrong_shape():
    """Float (probability) targets of the wrong shape name cross_entropy and both shapes."""
    logits = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    for shape in [(3, 4), (3, 6), (3, 5, 1)]:
        with pytest.raises(RuntimeError):
            TF.cross_entropy(torch.tensor(logits), torch.rand(shape))
        with pytest.raises(RuntimeError, match=_shapes((3, 5), shape) + r"cross_entropy:"):
            F.cross_entropy(minidl.tensor(logits), minidl.rand(shape))


def test_cross_entropy_float_class_indices():
    """A 1-D float target (class indices given as floats) raises RuntimeError, as torch."""
    with pytest.raises(RuntimeError):
        TF.cross_entropy(torch.randn(3, 5), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"cross_entropy"):
        F.cross_entropy(minidl.randn(3, 5), minidl.tensor([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("bad", [5, 9, -1])
def test_cross_entropy_class_index_out_of_range(bad):
    """A class index outside [0, C) raises IndexError naming the index and the number of classes."""
    with pytest.raises(IndexError):
        TF.cross_entropy(torch.randn(3, 5), torch.tensor([0, bad, 1]))
    with pytest.raises(IndexError, match=rf"target {bad} is out of bounds for 5 classes"):
        F.cross_entropy(minidl.randn(3, 5), minidl.tensor([0, bad, 1]))


def test_cross_entropy_ignore_index_is_not_out_of_range():
    """The ignore_index value (-100 by default) is not an out-of-range class; values match torch."""
    logits = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    target = [0, -100, 4]
    got = F.cross_entropy(minidl.tensor(logits), minidl.tensor(target))
    want = TF.cross_entropy(torch.tensor(logits), torch.tensor(target))
    np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5)


@pytest.mark.parametrize("target", [[0, 1], [[0, 1, 1]], [0, 1, 1, 2]], ids=["short", "2-d", "long"])
def test_nll_loss_target_shape_mismatch(target):
    """nll_loss with a target of the wrong shape raises as torch does (ValueError), naming both shapes."""
    with pytest.raises(ValueError):
        TF.nll_loss(torch.randn(3, 5), torch.tensor(target))
    shape = tuple(np.shape(target))
    with pytest.raises(ValueError, match=_shapes((3, 5), shape) + r"nll_loss:"):
        F.nll_loss(minidl.randn(3, 5), minidl.tensor(target))


@pytest.mark.parametrize("values", [[1.5, 0.5], [-0.1, 0.5]], ids=["above", "below"])
def test_binary_cross_entropy_outside_unit_interval(values):
    """binary_cross_entropy on inputs outside [0, 1] raises as torch does (RuntimeError), suggesting the logits form."""
    with pytest.raises(RuntimeError):
        TF.binary_cross_entropy(torch.tensor(values), torch.tensor([1.0, 0.0]))
    with pytest.raises(RuntimeError, match=r"^binary_cross_entropy:.*between 0 and 1.*with_logits"):
        F.binary_cross_entropy(minidl.tensor(values), minidl.tensor([1.0, 0.0]))


# ---- unsupported operand types ------------------------------------------------------------------

OPERATORS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "lt": lambda a, b: a < b,
}


@pytest.mark.parametrize("other", ["a", None, object(), {}], ids=["str", "None", "object", "dict"])
@pytest.mark.parametrize("op", list(OPERATORS))
def test_unsupported_operand_type(op, other):
    """Mixing a tensor with a non-number raises TypeError naming the op and the offending type, either side."""
    fn = OPERATORS[op]
    with pytest.raises(TypeError):
        fn(torch.ones(2), other)
    name = type(other).__name__
    with pytest.raises(TypeError, match=rf"^{op}: unsupported operand type {name}"):
        fn(minidl.ones(2), other)
    if op != "lt":  # reflected comparisons dispatch to the mirrored op (gt), as in Python
        with pytest.raises(TypeError, match=rf"^{op}: unsupported operand type {name}"):
            fn(other, minidl.ones(2))


def test_matmul_with_non_tensor():
    """matmul with a string raises TypeError naming matmul and both types."""
    with pytest.raises(TypeError):
        torch.ones(2) @ "a"
    with pytest.raises(TypeError, match=r"^matmul:.*Tensor and str"):
        minidl.ones(2) @ "a"
    with pytest.raises(TypeError, match=r"^matmul:.*Tensor and str"):
        minidl.matmul(minidl.ones(2), "a")


def test_failed_op_leaves_no_trace_on_inputs():
    """After any of the errors above, the inputs keep their values, grad and version."""
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for bad in (lambda: x + minidl.ones(4), lambda: x @ minidl.ones(2), lambda: x + "a", lambda: x.view(2, 2)):
        with pytest.raises((RuntimeError, TypeError)):
            bad()
    assert x.grad is None and x._version == 0 and x.is_leaf
    assert x.detach().tolist() == [1.0, 2.0, 3.0]
