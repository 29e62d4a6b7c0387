"""Devices: parsing, the CPU default, clear errors without a GPU, and -- when a GPU and CuPy
are present -- the same ops on CUDA tensors, compared with the CPU results."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F


def _gpu() -> bool:
    return minidl.cuda.is_available()


requires_gpu = pytest.mark.skipif(not _gpu(), reason="needs CuPy and a CUDA GPU")


def test_device_objects_parse_like_torch():
    assert minidl.device("cpu") == minidl.device("cpu") and str(minidl.device("cpu")) == "cpu"
    assert repr(minidl.device("cuda:1")) == "device(type='cuda', index=1)"
    assert minidl.device("cuda") == "cuda:0"
    with pytest.raises(ValueError, match="unknown device"):
        minidl.device("tpu")


def test_tensors_live_on_the_cpu_by_default():
    x = minidl.ones(2, device="cpu")
    assert x.device == minidl.device("cpu") and not x.is_cuda
    assert x.cpu() is x and x.to("cpu") is x


def test_importing_minidl_does_not_touch_cuda():
    code = "import sys, minidl; minidl.ones(2) + 1; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(_gpu(), reason="checks the error raised when no GPU is usable")
def test_moving_to_cuda_without_a_gpu_says_why():
    assert minidl.cuda.is_available() is False and minidl.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        minidl.ones(2).cuda()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        minidl.zeros(2, device="cuda")


def test_set_num_threads_round_trips_and_checks_its_argument():
    before = minidl.get_num_threads()
    minidl.set_num_threads(1)
    assert minidl.get_num_threads() == 1
    minidl.set_num_threads(before)
    with pytest.raises(ValueError, match="positive integer"):
        minidl.set_num_threads(0)


# ---- on a GPU -------------------------------------------------------------------------------

GPU_CASES = {
    "elementwise": lambda x, w: (x * 2 + 1).exp().sum(),
    "matmul": lambda x, w: (x @ w).tanh().sum(),
    "linear+ce": lambda x, w: F.cross_entropy(F.linear(x, w.T), minidl.tensor([0, 1, 2, 1]).to(x.device)),
    "softmax": lambda x, w: F.log_softmax(x, 1).sum(),
    "reductions": lambda x, w: x.amax(1).sum() + x.var() + x.norm(),
    "indexing": lambda x, w: x[[0, 0, 2]].sum() + x[:, 1:].pow(2).sum(),
}


@requires_gpu
@pytest.mark.parametrize("name", sorted(GPU_CASES))
def test_ops_on_cuda_match_cpu(name):
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        x = minidl.tensor(xs, device=device, requires_grad=True)
        w = minidl.tensor(ws, device=device, requires_grad=True)
        out = GPU_CASES[name](x, w)
        out.backward()
        assert out.device.type == device and x.grad.device.type == device
        results.append([out.cpu().item(), x.grad.cpu().numpy(), w.grad.cpu().numpy() if w.grad is not None else 0])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@requires_gpu
def test_conv_and_pool_on_cuda_match_cpu():
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w_np = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    grads = []
    for device in ("cpu", "cuda"):
        x = minidl.tensor(x_np, device=device, requires_grad=True)
        w = minidl.tensor(w_np, device=device, requires_grad=True)
        y = F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2) + F.avg_pool2d(x, 2).sum()
        y.sum().backward()
        grads.append((x.grad.cpu().numpy(), w.grad.cpu().numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@requires_gpu
def test_mixing_devices_names_both():
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        minidl.ones(2) + minidl.ones(2, device="cuda")


@requires_gpu
def test_round_trip_and_gradient_flow_across_devices():
    x = minidl.randn(3, requires_grad=True)
    y = (x.cuda() * 3).cpu().sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3.0)
