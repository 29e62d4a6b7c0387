"""The table of ops under test: one ``OpInfo`` per op, with its sample inputs.

Each ``fn`` is written once against ``lib`` (minidl or torch; ``lib.F`` is ``nn.functional``).
Samples cover broadcasting, 0-d tensors, size-0 dimensions and, through the harness,
non-contiguous inputs. Values stay inside each op's smooth domain (``log`` on positives,
no ties for ``max`` unless ties are the point of the sample).
"""

from __future__ import annotations

import numpy as np

from harness import OpInfo, Sample


def U(rng, *shape, lo=-1.0, hi=1.0):
    return np.asarray(rng.uniform(lo, hi, shape))


def P(rng, *shape):
    """Positive values, away from zero."""
    return np.asarray(rng.uniform(0.5, 2.0, shape))


def away_from_zero(rng, *shape):
    """Values in [-2, -0.3] u [0.3, 2]: for ops with a kink at 0."""
    return np.asarray(rng.uniform(0.3, 2.0, shape) * rng.choice([-1.0, 1.0], shape))


def binary_samples(gen=U):
    def samples(rng):
        return [
            Sample((gen(rng, 3, 4), gen(rng, 3, 4)), name="same shape"),
            Sample((gen(rng, 2, 3, 4), gen(rng, 4)), name="broadcast trailing"),
            Sample((gen(rng, 3, 1), gen(rng, 1, 4)), name="outer broadcast"),
            Sample((gen(rng), gen(rng, 2, 3)), name="0-d with 2-d"),
            Sample((gen(rng, 2, 3), gen(rng)), name="2-d with 0-d"),
            Sample((gen(rng, 0, 3), gen(rng, 3)), name="size-0"),
        ]

    return samples


def scalar_samples(gen=U, scalars=(2.5, -3)):
    def samples(rng):
        return [Sample((gen(rng, 3, 4), s)) for s in scalars]

    return samples


def unary_samples(gen=U):
    def samples(rng):
        return [
            Sample((gen(rng, 3, 4),)),
            Sample((gen(rng),), name="0-d"),
            Sample((gen(rng, 2, 0, 3),), name="size-0"),
            Sample((gen(rng, 2, 3, 2),)),
        ]

    return samples


def reduce_samples(dims=(None, 0, 1, -1, (0, 2)), gen=U):
    def samples(rng):
        out = []
        for d in dims:
            if d is None:
                out.append(Sample((gen(rng, 3, 4, 2),), {}))
                continue
            for keepdim in (False, True):
                out.append(Sample((gen(rng, 3, 4, 2),), {"dim": d, "keepdim": keepdim}))
        out.append(Sample((gen(rng),), {}))
        return out

    return samples


def _f(lib, name):
    return getattr(lib, name)


OPS: list[OpInfo] = []


def op(name, fn, samples, **kw):
    OPS.append(OpInfo(name, fn, samples, **kw))


# ---- elementwise arithmetic ----------------------------------------------------------------------

op("add", lambda lib, a, b: a + b, binary_samples())
op("add_scalar", lambda lib, a, s: a + s, scalar_samples())
op("radd_scalar", lambda lib, a, s: s + a, scalar_samples())
op("add_alpha", lambda lib, a, b: lib.add(a, b, alpha=0.5), binary_samples())
op("sub", lambda lib, a, b: a - b, binary_samples())
op("rsub_scalar", lambda lib, a, s: s - a, scalar_samples())
op("mul", lambda lib, a, b: a * b, binary_samples())
op("mul_scalar", lambda lib, a, s: a * s, scalar_samples())
op("div", lambda lib, a, b: a / b, binary_samples(away_from_zero))
op("rdiv_scalar", lambda lib, a, s: s / a, scalar_samples(away_from_zero))
op("div_scalar", lambda lib, a, s: a / s, scalar_samples())
op(
    "remainder",
    lambda lib, a, b: a % b,
    lambda rng: [
        Sample((rng.uniform(0.1, 0.9, (3, 4)) + rng.integers(-3, 3, (3, 4)), rng.uniform(1.5, 2.5, (3, 4)))),
        Sample((rng.uniform(0.1, 0.9, (3, 4)) + rng.integers(-3, 3, (3, 4)), 2.5)),
    ],
)
op(
    "floor_divide",
    lambda lib, a, b: a // b,
    lambda rng: [Sample((U(rng, 3, 4, lo=-5, hi=5), P(rng, 3, 4)), no_grad=(0, 1))],
    differentiable=False,
)
op(
    "pow_scalar",
    lambda lib, a, s: a**s,
    lambda rng: [
        Sample((P(rng, 3, 4), 2)),
        Sample((P(rng, 3, 4), 0.5)),
        Sample((P(rng, 3, 4), -1.5)),
        Sample((U(rng, 3, 4), 3)),
    ],
)
op("pow_tensor", lambda lib, a, b: a**b, binary_samples(P))
op("rpow_scalar", lambda lib, a, s: s**a, lambda rng: [Sample((U(rng, 3, 4), 2.0)), Sample((U(rng, 3, 4), 0.5))])
# At a zero base, d^2(a^b)/db^2 = a^b (ln a)^2 is 0 * inf: torch returns nan, minidl 0 (the
# limit). First derivatives agree exactly, so only those are compared here.
op(
    "pow_zero_base",
    lambda lib, a, b: a**b,
    lambda rng: [Sample((np.array([0.0, 1.0, 2.0]), np.array([2.0, 3.0, 0.5])))],
    gradcheck=False,
    second_order=False,
)
op("maximum", lambda lib, a, b: lib.maximum(a, b), binary_samples())
op("minimum", lambda lib, a, b: lib.minimum(a, b), binary_samples())
op(
    "maximum_ties",
    lambda lib, a, b: lib.maximum(a, b),
    lambda rng: [Sample((np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])))],
    gradcheck=False,
)
op("neg", lambda lib, a: -a, unary_samples())
op("abs", lambda lib, a: lib.abs(a), unary_samples(away_from_zero))
op("sign", lambda lib, a: lib.sign(a), unary_samples(away_from_zero))
op("exp", lambda lib, a: lib.exp(a), unary_samples())
op("log", lambda lib, a: lib.log(a), unary_samples(P))
op("log1p", lambda lib, a: lib.log1p(a), unary_samples())
op("expm1", lambda lib, a: lib.expm1(a), unary_samples())
op("sqrt", lambda lib, a: lib.sqrt(a), unary_samples(P))
op("rsqrt", lambda lib, a: lib.rsqrt(a), unary_samples(P))
op("sin", lambda lib, a: lib.sin(a), unary_samples())
op("cos", lambda lib, a: lib.cos(a), unary_samples())
op("tanh", lambda lib, a: lib.tanh(a), unary_samples())
op("sigmoid", lambda lib, a: lib.sigmoid(a), unary_samples())
op(
    "sigmoid_large",
    lambda lib, a: lib.sigmoid(a),
    lambda rng: [Sample((np.array([-80.0, -30.0, 0.0, 30.0, 80.0]),))],
    gradcheck=False,
)
op("reciprocal", lambda lib, a: lib.reciprocal(a), unary_samples(away_from_zero))
op("erf", lambda lib, a: lib.erf(a), unary_samples())
op("square", lambda lib, a: lib.square(a), unary_samples())
op("floor", lambda lib, a: lib.floor(a), lambda rng: [Sample((U(rng, 3, 4, lo=-3, hi=3) + 0.5,))], gradcheck=False)
op("round", lambda lib, a: lib.round(a), lambda rng: [Sample((U(rng, 3, 4, lo=-3, hi=3) + 0.25,))], gradcheck=False)
op(
    "clamp",
    lambda lib, a, **kw: lib.clamp(a, **kw),
    lambda rng: [
        Sample((U(rng, 4, 5),), {"min": -0.5, "max": 0.5}),
        Sample((U(rng, 4, 5),), {"min": -0.5}),
        Sample((U(rng, 4, 5),), {"max": 0.25}),
    ],
)
op(
    "clamp_tensor_bounds",
    lambda lib, a, lo, hi: lib.clamp(a, lo, hi),
    lambda rng: [Sample((U(rng, 4, 5), U(rng, 4, 5, lo=-1, hi=-0.2), U(rng, 5, lo=0.2, hi=1)))],
)
op(
    "where",
    lambda lib, c, a, b: lib.where(c, a, b),
    lambda rng: [
        Sample((rng.random((3, 4)) > 0.5, U(rng, 3, 4), U(rng, 3, 4))),
        Sample((rng.random((3, 1)) > 0.5, U(rng, 1, 4), U(rng, 3, 4)), name="broadcast"),
        Sample((rng.random((3, 4)) > 0.5, U(rng, 3, 4), 0.0), name="scalar other"),
    ],
)
op(
    "masked_fill",
    lambda lib, a, m: a.masked_fill(m, -2.0),
    lambda rng: [
        Sample((U(rng, 3, 4), rng.random((3, 4)) > 0.5)),
        Sample((U(rng, 3, 4), rng.random((4,)) > 0.5), name="broadcast mask"),
    ],
)


def _compare_fn(name):
    return lambda lib, a, b: getattr(lib, name)(a, b)


for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    op(
        _name,
        _compare_fn(_name),
        lambda rng: [
            Sample((rng.integers(0, 3, (3, 4)).astype(float), rng.integers(0, 3, (4,)).astype(float))),
        ],
        differentiable=False,
    )

op(
    "logical_and",
    lambda lib, a, b: lib.logical_and(a, b),
    lambda rng: [Sample((rng.random((3, 4)) > 0.5, rng.random((4,)) > 0.5))],
    differentiable=False,
)
op(
    "logical_or",
    lambda lib, a, b: lib.logical_or(a, b),
    lambda rng: [Sample((rng.random((3, 4)) > 0.5, rng.random((4,)) > 0.5))],
    differentiable=False,
)
op(
    "logical_not",
    lambda lib, a: lib.logical_not(a),
    lambda rng: [Sample((rng.random((3, 4)) > 0.5,))],
    differentiable=False,
)
op(
    "bitwise_ops",
    lambda lib, a, b: ((a & b), (a | b), (a ^ b), ~a),
    lambda rng: [
        Sample((rng.random((3, 4)) > 0.5, rng.random((3, 4)) > 0.5)),
        Sample((rng.integers(0, 8, (3, 4)), rng.integers(0, 8, (4,)))),
    ],
    differentiable=False,
)
op(
    "int_arith",
    lambda lib, a, b: (a + b, a * b, a - b, a // b, a % b, a / b, a * 2.5),
    lambda rng: [
        Sample((rng.integers(-5, 5, (3, 4)), rng.integers(1, 4, (3, 4)))),
    ],
    differentiable=False,
)

# ---- reductions ------------------------------------------------------------------------------------

op("sum", lambda lib, a, **kw: a.sum(**kw), reduce_samples())
op("sum_size0", lambda lib, a: (a.sum(), a.sum(0)), lambda rng: [Sample((U(rng, 0, 3),))])
op("mean", lambda lib, a, **kw: a.mean(**kw), reduce_samples())
op(
    "prod",
    lambda lib, a, **kw: a.prod(**kw),
    lambda rng: [
        Sample((U(rng, 3, 4),)),
        Sample((U(rng, 3, 4),), {"dim": 1}),
        Sample((U(rng, 3, 4),), {"dim": 0, "keepdim": True}),
        Sample((np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 3.0], [1.0, 2.0, -1.0]]),), {"dim": 1}, name="zeros"),
        Sample((np.array([1.5, 0.0, 2.0]),), name="one zero"),
    ],
)
op(
    "var",
    lambda lib, a, **kw: lib.var(a, **kw),
    lambda rng: [
        Sample((U(rng, 3, 5),)),
        Sample((U(rng, 3, 5),), {"dim": 1}),
        Sample((U(rng, 3, 5),), {"dim": 0, "correction": 0, "keepdim": True}),
        Sample((U(rng, 3, 5, 2),), {"dim": (0, 2), "correction": 2}),
    ],
)
op(
    "std",
    lambda lib, a, **kw: lib.std(a, **kw),
    lambda rng: [
        Sample((U(rng, 3, 5),)),
        Sample((U(rng, 3, 5),), {"dim": 1, "correction": 0}),
    ],
)
op(
    "amax",
    lambda lib, a, **kw: lib.amax(a, **kw),
    lambda rng: [
        Sample((U(rng, 3, 4, 2),), {"dim": 1}),
        Sample((U(rng, 3, 4, 2),), {"dim": (0, 2), "keepdim": True}),
        Sample((np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]),), {"dim": 1}, name="ties"),
    ],
    gradcheck=False,
)
op(
    "amin",
    lambda lib, a, **kw: lib.amin(a, **kw),
    lambda rng: [
        Sample((U(rng, 3, 4, 2),), {"dim": -1}),
        Sample((np.array([[1.0, 1.0, 3.0], [2.0, 0.5, 0.5]]),), {"dim": 1}, name="ties"),
    ],
    gradcheck=False,
)
op(
    "max_all",
    lambda lib, a: a.max(),
    lambda rng: [
        Sample((U(rng, 3, 4),)),
        Sample((np.array([1.0, 3.0, 3.0, 2.0]),), name="ties"),
    ],
    gradcheck=False,
)
op("min_all", lambda lib, a: a.min(), lambda rng: [Sample((U(rng, 3, 4),))], gradcheck=False)
op(
    "max_dim",
    lambda lib, a, d, k: tuple(a.max(d, keepdim=k)),
    lambda rng: [
        Sample((U(rng, 3, 4), 1, False)),
        Sample((U(rng, 3, 4, 2), 0, True)),
        Sample(
            (np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 1.0]]), 1, False),
            name="ties go to the first index",
            finite_differences=False,
        ),
    ],
)
op("min_dim", lambda lib, a, d: tuple(a.min(d)), lambda rng: [Sample((U(rng, 3, 4), -1))])
op("max_binary", lambda lib, a, b: a.max(b), binary_samples())
op(
    "argmax",
    lambda lib, a, **kw: lib.argmax(a, **kw),
    lambda rng: [
        Sample((U(rng, 3, 4),)),
        Sample((U(rng, 3, 4),), {"dim": 1}),
        Sample((U(rng, 3, 4),), {"dim": 0, "keepdim": True}),
    ],
    differentiable=False,
)
op(
    "argmin",
    lambda lib, a, **kw: lib.argmin(a, **kw),
    lambda rng: [Sample((U(rng, 3, 4),), {"dim": 1})],
    differentiable=False,
)
op(
    "logsumexp",
    lambda lib, a, d, **kw: lib.logsumexp(a, d, **kw),
    lambda rng: [
        Sample((U(rng, 3, 4), 1)),
        Sample((U(rng, 3, 4, 2), (0, 2)), {"keepdim": True}),
        Sample((np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]]), 1), name="large"),
    ],
)
op(
    "norm",
    lambda lib, a, **kw: lib.norm(a, **kw),
    lambda rng: [
        Sample((U(rng, 3, 4),)),
        Sample((U(rng, 3, 4),), {"dim": 1}),
        Sample((U(rng, 3, 4),), {"p": 1, "dim": 0}),
        Sample((U(rng, 3, 4),), {"p": 3, "dim": 1, "keepdim": True}),
        Sample((U(rng, 3, 4),), {"p": float("inf"), "dim": 1}),
    ],
)
# The zero vector: the gradient is 0 in both libraries; its derivative is undefined there
# (torch: nan, minidl: 0), so second order is not compared.
op(
    "norm_zero",
    lambda lib, a: lib.norm(a, dim=1),
    lambda rng: [Sample((np.array([[0.0, 0.0], [3.0, 4.0]]),))],
    gradcheck=False,
    second_order=False,
)
op(
    "all_any",
    lambda lib, a: (a.all(), a.any(), a.all(1), a.any(0, keepdim=True)),
    lambda rng: [
        Sample((rng.random((3, 4)) > 0.3,)),
    ],
    differentiable=False,
)
op("cumsum", lambda lib, a, d: a.cumsum(d), lambda rng: [Sample((U(rng, 3, 4), 1)), Sample((U(rng, 3, 4), 0))])
op(
    "cumsum_int",
    lambda lib, a: a.cumsum(0),
    lambda rng: [Sample((rng.integers(0, 5, (4,)).astype(np.int32),))],
    differentiable=False,
)

# ---- shape -----------------------------------------------------------------------------------------

op("reshape", lambda lib, a: a.reshape(4, -1), lambda rng: [Sample((U(rng, 2, 3, 4),))])
op("view", lambda lib, a: a.view(3, 2, 4), lambda rng: [Sample((U(rng, 2, 3, 4),))], noncontiguous=False)
op("flatten", lambda lib, a: (a.flatten(), a.flatten(1), a.flatten(0, 1)), lambda rng: [Sample((U(rng, 2, 3, 4),))])
op("squeeze", lambda lib, a: (a.squeeze(), a.squeeze(1), a.squeeze(0)), lambda rng: [Sample((U(rng, 2, 1, 3, 1),))])
op("unsqueeze", lambda lib, a: (a.unsqueeze(0), a.unsqueeze(-1), a.unsqueeze(1)), lambda rng: [Sample((U(rng, 2, 3),))])
op("transpose", lambda lib, a: a.transpose(0, 2), lambda rng: [Sample((U(rng, 2, 3, 4),))])
op("permute", lambda lib, a: a.permute(2, 0, 1), lambda rng: [Sample((U(rng, 2, 3, 4),))])
op("T", lambda lib, a: a.T, lambda rng: [Sample((U(rng, 3, 4),))])
op("mT", lambda lib, a: a.mT, lambda rng: [Sample((U(rng, 2, 3, 4),))])
op("expand", lambda lib, a: a.expand(2, 3, 4), lambda rng: [Sample((U(rng, 3, 1),))])
op("expand_minus1", lambda lib, a: a.expand(-1, 4), lambda rng: [Sample((U(rng, 3, 1),))])
op("broadcast_to", lambda lib, a: lib.broadcast_to(a, (2, 3, 4)), lambda rng: [Sample((U(rng, 4),))])
op("repeat", lambda lib, a: a.repeat(2, 1, 3), lambda rng: [Sample((U(rng, 3, 2),))])
op("flip", lambda lib, a: (a.flip(0), a.flip((0, 1))), lambda rng: [Sample((U(rng, 3, 4),))])
op("contiguous", lambda lib, a: a.T.contiguous(), lambda rng: [Sample((U(rng, 3, 4),))])
op("clone", lambda lib, a: a.clone(), lambda rng: [Sample((U(rng, 3, 4),))])
op(
    "tril_triu",
    lambda lib, a: (a.tril(), a.triu(1), lib.tril(a, -1)),
    lambda rng: [Sample((U(rng, 4, 5),)), Sample((U(rng, 2, 3, 3),))],
)
op("cat", lambda lib, a, b, c: lib.cat([a, b, c], 1), lambda rng: [Sample((U(rng, 2, 3), U(rng, 2, 1), U(rng, 2, 4)))])
op("cat_dim0", lambda lib, a, b: lib.cat([a, b]), lambda rng: [Sample((U(rng, 2, 3), U(rng, 0, 3)))])
op(
    "stack",
    lambda lib, a, b: (lib.stack([a, b]), lib.stack([a, b], dim=-1)),
    lambda rng: [Sample((U(rng, 2, 3), U(rng, 2, 3)))],
)
op("split", lambda lib, a: (a.split(2, 1), a.split([1, 3], 1)), lambda rng: [Sample((U(rng, 3, 4),))])
op("chunk", lambda lib, a: a.chunk(3, 1), lambda rng: [Sample((U(rng, 3, 7),))])
op("unbind", lambda lib, a: a.unbind(1), lambda rng: [Sample((U(rng, 3, 4),))])
op("narrow", lambda lib, a: a.narrow(1, 1, 2), lambda rng: [Sample((U(rng, 3, 4),))])
op(
    "pad",
    lambda lib, a, p, v: lib.F.pad(a, p, value=v),
    lambda rng: [
        Sample((U(rng, 2, 3, 4), (1, 2), 0.0)),
        Sample((U(rng, 2, 3, 4), (1, 0, 2, 1), 1.5)),
        Sample((U(rng, 2, 3, 4), (-1, 1, 0, -1), 0.0), name="negative crops"),
    ],
)

# ---- indexing --------------------------------------------------------------------------------------

op(
    "getitem_basic",
    lambda lib, a: (a[1], a[:, 1:3], a[..., ::2], a[None, 0, :, None], a[-1, -2]),
    lambda rng: [
        Sample((U(rng, 3, 4, 2),)),
    ],
)
op(
    "getitem_int_array",
    lambda lib, a, i: a[i],
    lambda rng: [
        Sample((U(rng, 4, 3), np.array([0, 2, 2, 3, 0]))),
        Sample((U(rng, 4, 3), np.array([[1, 1], [3, 0]])), name="2-d index with repeats"),
    ],
)
op(
    "getitem_mixed",
    lambda lib, a, i, j: a[i, :, j],
    lambda rng: [
        Sample((U(rng, 4, 3, 5), np.array([0, 3, 3]), np.array([1, 4, 1]))),
    ],
)
op(
    "getitem_bool_mask",
    lambda lib, a, m: a[m],
    lambda rng: [
        Sample((U(rng, 4, 3), rng.random((4, 3)) > 0.5)),
        Sample((U(rng, 4, 3), np.array([True, False, True, True])), name="row mask"),
    ],
)
op(
    "gather",
    lambda lib, a, d, i: a.gather(d, i),
    lambda rng: [
        Sample((U(rng, 3, 4), 1, rng.integers(0, 4, (3, 5)))),
        Sample((U(rng, 3, 4), 0, rng.integers(0, 3, (2, 4)))),
        Sample((U(rng, 3, 4), 1, rng.integers(0, 4, (2, 2))), name="smaller index"),
    ],
)
op(
    "scatter_add",
    lambda lib, a, d, i, s: a.scatter_add(d, i, s),
    lambda rng: [
        Sample((U(rng, 3, 4), 1, rng.integers(0, 4, (3, 5)), U(rng, 3, 5))),
        Sample((U(rng, 3, 4), 0, rng.integers(0, 3, (2, 4)), U(rng, 2, 4))),
    ],
)
# torch 2.13's own backward rejects a src larger than the index, so this case is checked
# against torch in the forward pass and against finite differences (test_gradcheck_extra).
op(
    "scatter_add_larger_src",
    lambda lib, a, d, i, s: a.scatter_add(d, i, s),
    lambda rng: [
        Sample((U(rng, 3, 4), 0, rng.integers(0, 3, (2, 4)), U(rng, 4, 4)), no_grad=(0, 3)),
    ],
    differentiable=False,
)
op(
    "index_select",
    lambda lib, a, d, i: a.index_select(d, i),
    lambda rng: [
        Sample((U(rng, 3, 4), 1, np.array([0, 3, 3]))),
        Sample((U(rng, 3, 4), 0, np.array([2, 0]))),
    ],
)

# ---- linear algebra ---------------------------------------------------------------------------------

op(
    "matmul",
    lambda lib, a, b: a @ b,
    lambda rng: [
        Sample((U(rng, 3, 4), U(rng, 4, 5)), name="2d@2d"),
        Sample((U(rng, 4), U(rng, 4)), name="1d@1d"),
        Sample((U(rng, 4), U(rng, 4, 5)), name="1d@2d"),
        Sample((U(rng, 3, 4), U(rng, 4)), name="2d@1d"),
        Sample((U(rng, 2, 3, 4), U(rng, 4, 5)), name="batched@2d"),
        Sample((U(rng, 2, 1, 3, 4), U(rng, 3, 4, 2)), name="broadcast batch"),
        Sample((U(rng, 2, 3, 4), U(rng, 4)), name="batched@1d"),
        Sample((U(rng, 5, 1), U(rng, 1, 6)), name="outer product (k = 1)"),
        Sample((U(rng, 0, 4), U(rng, 4, 3)), name="empty rows"),
    ],
)

# ---- nn.functional ---------------------------------------------------------------------------------

op("relu", lambda lib, a: lib.F.relu(a), unary_samples(away_from_zero))
op("leaky_relu", lambda lib, a: lib.F.leaky_relu(a, 0.2), unary_samples(away_from_zero))
op("elu", lambda lib, a: lib.F.elu(a, alpha=1.3), unary_samples(away_from_zero))
op("gelu", lambda lib, a: lib.F.gelu(a), unary_samples())
op("gelu_tanh", lambda lib, a: lib.F.gelu(a, approximate="tanh"), unary_samples())
op("silu", lambda lib, a: lib.F.silu(a), unary_samples())
op(
    "softplus",
    lambda lib, a, **kw: lib.F.softplus(a, **kw),
    lambda rng: [
        Sample((U(rng, 3, 4, lo=-3, hi=3),)),
        Sample((U(rng, 3, 4, lo=-3, hi=3),), {"beta": 2.0, "threshold": 4.0}),
        Sample((np.array([-30.0, 0.5, 25.0]),), name="past threshold"),
    ],
)
op(
    "softmax",
    lambda lib, a, d: lib.F.softmax(a, d),
    lambda rng: [
        Sample((U(rng, 3, 4), 1)),
        Sample((U(rng, 2, 3, 4), 0)),
        Sample((np.array([[1e4, -1e4, 0.0], [3.0, 1e4, 1e4]]), 1), name="large logits"),
    ],
)
op(
    "log_softmax",
    lambda lib, a, d: lib.F.log_softmax(a, d),
    lambda rng: [
        Sample((U(rng, 3, 4), 1)),
        Sample((U(rng, 2, 3, 4), -1)),
        Sample((np.array([[1e4, -1e4, 0.0], [3.0, 1e4, 1e4]]), 1), name="large logits"),
    ],
)
op(
    "linear",
    lambda lib, x, w, b: lib.F.linear(x, w, b),
    lambda rng: [
        Sample((U(rng, 5, 4), U(rng, 3, 4), U(rng, 3))),
        Sample((U(rng, 2, 5, 4), U(rng, 3, 4), U(rng, 3)), name="batched"),
        Sample((U(rng, 1, 4), U(rng, 3, 4), U(rng, 3)), name="batch 1"),
    ],
)
op("linear_nobias", lambda lib, x, w: lib.F.linear(x, w), lambda rng: [Sample((U(rng, 5, 4), U(rng, 3, 4)))])
op(
    "embedding",
    lambda lib, i, w, **kw: lib.F.embedding(i, w, **kw),
    lambda rng: [
        Sample((rng.integers(0, 5, (2, 3)), U(rng, 5, 4))),
        Sample(
            (np.array([0, 2, 2, 4, 0]), U(rng, 5, 4)), {"padding_idx": 2}, name="padding_idx", finite_differences=False
        ),
    ],
)
op(
    "one_hot",
    lambda lib, i: lib.F.one_hot(i, 5),
    lambda rng: [Sample((rng.integers(0, 5, (2, 3)),))],
    differentiable=False,
)
op(
    "layer_norm",
    lambda lib, x, w, b: lib.F.layer_norm(x, (4,), w, b),
    lambda rng: [Sample((U(rng, 3, 4), U(rng, 4), U(rng, 4)))],
)
op("layer_norm_2d", lambda lib, x: lib.F.layer_norm(x, (3, 4), eps=1e-3), lambda rng: [Sample((U(rng, 2, 3, 4),))])
op(
    "batch_norm_train",
    lambda lib, x, w, b: lib.F.batch_norm(x, None, None, w, b, training=True),
    lambda rng: [
        Sample((U(rng, 4, 3), U(rng, 3), U(rng, 3))),
        Sample((U(rng, 2, 3, 2, 2), U(rng, 3), U(rng, 3)), name="NCHW"),
    ],
)
op(
    "batch_norm_eval",
    lambda lib, x, rm, rv, w, b: lib.F.batch_norm(x, rm, rv, w, b, training=False),
    lambda rng: [Sample((U(rng, 2, 3, 2, 2), U(rng, 3), P(rng, 3), U(rng, 3), U(rng, 3)), no_grad=(1, 2))],
)


def conv_samples(rng):
    return [
        Sample((U(rng, 2, 3, 6, 5), U(rng, 4, 3, 3, 3), U(rng, 4)), {}, name="basic"),
        Sample((U(rng, 2, 3, 7, 6), U(rng, 4, 3, 3, 2), U(rng, 4)), {"stride": 2, "padding": 1}, name="stride+pad"),
        Sample((U(rng, 1, 4, 7, 7), U(rng, 6, 2, 3, 3), U(rng, 6)), {"groups": 2, "padding": (1, 2)}, name="groups"),
        Sample((U(rng, 1, 2, 8, 7), U(rng, 3, 2, 3, 3), U(rng, 3)), {"dilation": 2, "padding": 2}, name="dilation"),
        Sample((U(rng, 1, 2, 5, 6), U(rng, 3, 2, 3, 3), U(rng, 3)), {"padding": "same"}, name="same"),
        Sample((U(rng, 1, 2, 5, 6), U(rng, 3, 2, 2, 4), U(rng, 3)), {"padding": "same"}, name="same even kernel"),
        Sample(
            (U(rng, 1, 2, 5, 6), U(rng, 3, 2, 3, 3), U(rng, 3)), {"padding": "valid", "stride": (1, 2)}, name="valid"
        ),
        Sample((U(rng, 2, 5, 5), U(rng, 3, 2, 3, 3), U(rng, 3)), {}, name="unbatched"),
    ]


op("conv2d", lambda lib, x, w, b, **kw: lib.F.conv2d(x, w, b, **kw), conv_samples, tol_scale=3.0)
# Wide enough that the CPU kernels take Winograd F(2x2, 3x3) for the forward pass and the
# input gradient. Outputs are sums of 288 products and reach about 8, so a float32 result is
# only good to a few units in the last place of 8 (about 1e-6); Winograd's transforms add a few
# times the direct sum's rounding (docs/kernels.md): 5e-6 apart from torch at most, hence 10x.
op(
    "conv2d_wide",
    lambda lib, x, w, b, **kw: lib.F.conv2d(x, w, b, **kw),
    lambda rng: [Sample((U(rng, 2, 32, 10, 12), U(rng, 64, 32, 3, 3), U(rng, 64)), {"padding": 1})],
    tol_scale=10.0,
    gradcheck=False,  # too big for numerical gradients; "conv2d" checks the same function that way
)
op(
    "conv2d_nobias",
    lambda lib, x, w: lib.F.conv2d(x, w, stride=(2, 1)),
    lambda rng: [Sample((U(rng, 2, 2, 5, 5), U(rng, 3, 2, 2, 2)))],
)
op(
    "max_pool2d",
    lambda lib, x, **kw: lib.F.max_pool2d(x, **kw),
    lambda rng: [
        Sample((U(rng, 2, 3, 6, 6),), {"kernel_size": 2}),
        Sample((U(rng, 2, 3, 7, 6),), {"kernel_size": 3, "stride": 2, "padding": 1}),
        Sample((U(rng, 1, 2, 7, 7),), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
        Sample((U(rng, 1, 2, 8, 8),), {"kernel_size": 2, "stride": 1, "dilation": 2}),
        Sample((U(rng, 1, 2, 5, 5),), {"kernel_size": 3, "stride": 1}, name="overlapping windows"),
    ],
    gradcheck=False,
)
op(
    "max_pool2d_indices",
    lambda lib, x: lib.F.max_pool2d(x, 2, return_indices=True),
    lambda rng: [Sample((U(rng, 1, 2, 4, 6),))],
)
op(
    "avg_pool2d",
    lambda lib, x, **kw: lib.F.avg_pool2d(x, **kw),
    lambda rng: [
        Sample((U(rng, 2, 3, 6, 6),), {"kernel_size": 2}),
        Sample((U(rng, 2, 3, 7, 6),), {"kernel_size": 3, "stride": 2, "padding": 1}),
        Sample((U(rng, 2, 3, 7, 6),), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
        Sample((U(rng, 1, 2, 7, 7),), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
        Sample(
            (U(rng, 1, 2, 7, 7),),
            {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
        ),
        Sample((U(rng, 1, 2, 6, 6),), {"kernel_size": 2, "divisor_override": 3}),
    ],
)

# ---- losses ----------------------------------------------------------------------------------------

REDUCTIONS = ("mean", "sum", "none")


def pair_loss_samples(rng):
    return [Sample((U(rng, 4, 3), U(rng, 4, 3)), {"reduction": r}) for r in REDUCTIONS]


op("mse_loss", lambda lib, a, b, **kw: lib.F.mse_loss(a, b, **kw), pair_loss_samples)
op("l1_loss", lambda lib, a, b, **kw: lib.F.l1_loss(a, b, **kw), pair_loss_samples)
op(
    "smooth_l1_loss",
    lambda lib, a, b, **kw: lib.F.smooth_l1_loss(a, b, **kw),
    lambda rng: [
        Sample((U(rng, 4, 3, lo=-2, hi=2), U(rng, 4, 3)), {"reduction": r, "beta": beta})
        for r in REDUCTIONS
        for beta in (1.0, 0.5)
    ],
)
op(
    "nll_loss",
    lambda lib, x, t, **kw: lib.F.nll_loss(x, t, **kw),
    lambda rng: (
        [Sample((U(rng, 5, 4), rng.integers(0, 4, (5,))), {"reduction": r}) for r in REDUCTIONS]
        + [
            Sample((U(rng, 5, 4), np.array([0, -100, 3, 3, 1])), {"ignore_index": -100}, name="ignore_index"),
            Sample(
                (
                    U(rng, 5, 4),
                    np.array([0, 2, 3, 3, 1]),
                ),
                {"weight": P(rng, 4)},
                name="weight",
            ),
            Sample(
                (U(rng, 5, 4), np.array([0, 2, 1, 3, 1])), {"weight": P(rng, 4), "ignore_index": 1, "reduction": "sum"}
            ),
            Sample((U(rng, 2, 4, 3), rng.integers(0, 4, (2, 3))), name="K-dim"),
            Sample((U(rng, 4), np.array(2)), name="unbatched"),
        ]
    ),
)
op(
    "cross_entropy",
    lambda lib, x, t, **kw: lib.F.cross_entropy(x, t, **kw),
    lambda rng: (
        [Sample((U(rng, 5, 4, lo=-3, hi=3), rng.integers(0, 4, (5,))), {"reduction": r}) for r in REDUCTIONS]
        + [
            Sample((U(rng, 5, 4), np.array([0, -100, 3, 3, 1])), name="ignore_index"),
            Sample((U(rng, 5, 4), np.array([0, 2, 3, 3, 1])), {"weight": P(rng, 4)}, name="weight"),
            Sample((U(rng, 5, 4), np.array([0, 2, 3, 3, 1])), {"label_smoothing": 0.1}, name="label smoothing"),
            Sample(
                (U(rng, 5, 4), np.array([0, 2, 7, 3, 1])),
                {"label_smoothing": 0.2, "ignore_index": 7, "weight": P(rng, 4)},
            ),
            Sample(
                (U(rng, 5, 4), np.array([0, 2, 7, 3, 1])),
                {"label_smoothing": 0.2, "ignore_index": 7, "reduction": "sum"},
            ),
            Sample(
                (U(rng, 5, 4), np.array([0, 2, 7, 3, 1])),
                {"label_smoothing": 0.2, "ignore_index": 7, "reduction": "none"},
            ),
            Sample((U(rng, 2, 4, 3), rng.integers(0, 4, (2, 3))), name="K-dim"),
            Sample((U(rng, 5, 4), rng.dirichlet(np.ones(4), 5)), {}, no_grad=(1,), name="probabilities"),
            Sample(
                (U(rng, 5, 4), rng.dirichlet(np.ones(4), 5)),
                {"label_smoothing": 0.1, "weight": P(rng, 4)},
                no_grad=(1,),
            ),
            Sample((np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]]), np.array([1, 1])), name="large logits"),
        ]
    ),
)
op(
    "binary_cross_entropy",
    lambda lib, p, t, **kw: lib.F.binary_cross_entropy(p, t, **kw),
    lambda rng: (
        [
            Sample((rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))), {"reduction": r}, no_grad=(1,))
            for r in REDUCTIONS
        ]
        + [
            Sample((rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))), {"weight": P(rng, 3)}, no_grad=(1,)),
        ]
    ),
)
op(
    "bce_with_logits",
    lambda lib, x, t, **kw: lib.F.binary_cross_entropy_with_logits(x, t, **kw),
    lambda rng: (
        [Sample((U(rng, 4, 3, lo=-4, hi=4), rng.uniform(0, 1, (4, 3))), {"reduction": r}) for r in REDUCTIONS]
        + [
            Sample(
                (U(rng, 4, 3), rng.uniform(0, 1, (4, 3))),
                {"pos_weight": P(rng, 3), "weight": P(rng, 3)},
                name="weights",
            ),
            Sample((np.array([1e4, -1e4, 0.0, 50.0]), np.array([0.0, 1.0, 0.5, 1.0])), name="large logits"),
        ]
    ),
)

# ---- small samples for the numerical checks ----------------------------------------------------
# gradcheck and gradgradcheck perturb every input element in turn, so they run only on small
# samples (see test_ops.py). These ops' samples above are all larger; each gets one more.

SMALL = {
    "clamp_tensor_bounds": lambda rng: Sample((U(rng, 2, 3), U(rng, 2, 3, lo=-1, hi=-0.2), U(rng, 3, lo=0.2, hi=1))),
    "getitem_mixed": lambda rng: Sample((U(rng, 3, 2, 3), np.array([0, 2, 2]), np.array([1, 0, 1]))),
    "linear_nobias": lambda rng: Sample((U(rng, 2, 3), U(rng, 2, 3))),
    "batch_norm_eval": lambda rng: Sample(
        (U(rng, 1, 2, 2, 2), U(rng, 2), P(rng, 2), U(rng, 2), U(rng, 2)), no_grad=(1, 2)
    ),
    "conv2d": lambda rng: Sample((U(rng, 1, 1, 3, 3), U(rng, 2, 1, 2, 2), U(rng, 2)), {"padding": 1, "stride": 2}),
    "conv2d_nobias": lambda rng: Sample((U(rng, 1, 1, 4, 3), U(rng, 2, 1, 2, 2))),
    "max_pool2d_indices": lambda rng: Sample((U(rng, 1, 1, 2, 4),)),
    "avg_pool2d": lambda rng: Sample((U(rng, 1, 1, 4, 4),), {"kernel_size": 3, "stride": 1, "padding": 1}),
}

for _info in OPS:
    if _info.name in SMALL:
        _info.samples = lambda rng, base=_info.samples, extra=SMALL[_info.name]: [*base(rng), extra(rng)]
