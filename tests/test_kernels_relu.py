"""The ReLU kernels (kernels/cpu/relu.py, kernels/reference/relu.py) against torch: values,
NaN and infinities, both sides of the parallel threshold, any layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minidl.backend.kernel_loader import import_kernels

kernels = import_kernels()
cpu_relu = __import__(f"{kernels.__name__}.cpu.relu", fromlist=["relu"])
ref_relu = __import__(f"{kernels.__name__}.reference.relu", fromlist=["relu"])

SIZES = [(0,), (7,), (3, 5), (2, cpu_relu.PARALLEL_MIN // 2 + 3)]  # the last is above the threshold


def special_values(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    for value in (np.nan, np.inf, -np.inf, -0.0, 0.0):
        flat[rng.random(flat.size) < 0.05] = value
    return x


@pytest.mark.parametrize("impl", [cpu_relu, ref_relu], ids=["numba", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_relu_forward_and_backward_match_torch(impl, dtype, shape, layout):
    x = special_values(shape, dtype, 0)
    g = special_values(shape, dtype, 1)
    if layout == "transposed" and x.ndim == 2:
        x, g = np.ascontiguousarray(x.T).T, np.ascontiguousarray(g.T).T
    y = impl.relu_forward(x)
    tx = torch.from_numpy(np.ascontiguousarray(x))
    np.testing.assert_array_equal(y, torch.relu(tx).numpy())
    assert y.dtype == x.dtype and y.shape == x.shape
    gx = impl.relu_backward(g, y)
    want = torch.ops.aten.threshold_backward(torch.from_numpy(np.ascontiguousarray(g)), torch.relu(tx), 0).numpy()
    np.testing.assert_array_equal(gx, want)  # a NaN in g stays only where y is not <= 0
    assert not np.signbit(gx[y <= 0]).any()  # masked entries are +0.0


def test_relu_backward_of_a_scalar():
    g, y = np.array(2.0, np.float32), np.array(0.5, np.float32)
    assert ref_relu.relu_backward(g, y) == 2.0 and cpu_relu.relu_backward(g, np.array(0.0, np.float32)) == 0.0
