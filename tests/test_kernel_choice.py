"""The kernel registry: every CPU implementation of matmul, convolution and pooling runs the
op-level checks against torch (forward and backward), and the choice can be switched."""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from harness import check_backward, check_forward
from minidl.backend import kernel_choice, tables, use_kernel
from op_db import OPS

BY_NAME = {info.name: info for info in OPS}

# (kernel names switched together, implementation, op_db entries that exercise them)
CHOICES = [
    (("matmul",), "numba", ("matmul", "linear", "linear_nobias", "max_dim")),
    (("matmul",), "reference", ("matmul", "linear")),
    (("matmul",), "blas", ("matmul", "linear")),
    (("matmul",), "auto", ("matmul", "linear")),
    (
        ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"),
        "numba",
        ("conv2d", "conv2d_wide", "conv2d_nobias"),
    ),
    (("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"), "reference", ("conv2d", "conv2d_nobias")),
    (("conv2d_forward", "conv2d_backward_input"), "implicit", ("conv2d", "conv2d_wide", "conv2d_nobias")),
    (
        ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"),
        "numba",
        ("max_pool2d", "max_pool2d_indices", "avg_pool2d"),
    ),
    (
        ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"),
        "reference",
        ("max_pool2d", "avg_pool2d"),
    ),
]


def _choose(names, impl):
    from contextlib import ExitStack

    stack = ExitStack()
    for name in names:
        stack.enter_context(kernel_choice(name, impl))
    return stack


@pytest.mark.parametrize("names,impl,ops", CHOICES, ids=lambda v: v if isinstance(v, str) else "+".join(v)[:40])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_implementation_passes_the_op_checks(names, impl, ops, dtype):
    rng = np.random.default_rng(0)
    with _choose(names, impl):
        for name in ops:
            info = BY_NAME[name]
            for sample in info.samples(np.random.default_rng(1)):
                check_forward(info, sample, dtype)
                check_backward(info, sample, dtype, rng)


def test_kernel_choice_restores_the_previous_implementation():
    before = tables["cpu"].selected["matmul"]
    with kernel_choice("matmul", "reference"):
        assert tables["cpu"].selected["matmul"] == "reference"
    assert tables["cpu"].selected["matmul"] == before


def test_use_kernel_switches_globally_and_names_the_choices():
    before = tables["cpu"].selected["matmul"]
    try:
        use_kernel("matmul", "numba")
        a = minidl.randn(5, 7)
        np.testing.assert_allclose((a @ a.T).numpy(), a.numpy() @ a.numpy().T, rtol=1e-5, atol=1e-5)
    finally:
        use_kernel("matmul", before)
    with pytest.raises(ValueError, match="choose one of"):
        use_kernel("matmul", "magic")
    with pytest.raises(KeyError, match="no kernel named"):
        use_kernel("fft", "numba")
