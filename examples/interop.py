"""minidl among other tools: DLPack, PyTorch weights, ONNX out and back in.

    python examples/interop.py

1. **DLPack.** A torch tensor becomes a minidl tensor without a copy, and back again: the
   two libraries read and write one buffer.
2. **PyTorch weights.** A torch CNN's ``state_dict`` loads into the same CNN written in
   minidl (no torch import is needed for that step), and both give the same outputs.
3. **ONNX export.** The minidl CNN is exported with a dynamic batch axis and run by
   onnxruntime, a production runtime.
4. **ONNX import.** The file is loaded back into minidl, as a static graph and as an eager
   module.

Every step checks that the numbers agree.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

import minidl
import minidl.nn.functional as F
import minidl.onnx
from minidl import nn


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x: minidl.Tensor) -> minidl.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


class TorchCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


def main() -> None:
    # 1. DLPack: one buffer, two libraries
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    m = minidl.from_dlpack(t)
    m[0, 0] = 100.0  # written through minidl...
    print(f"DLPack: torch sees minidl's write: {t[0, 0].item()}")  # ...seen by torch
    back = torch.from_dlpack(m)
    assert back.data_ptr() == t.data_ptr()

    # 2. PyTorch weights into the same model written in minidl
    torch.manual_seed(0)
    tmodel = TorchCNN()
    tmodel.train()
    with torch.no_grad():  # give batch norm some running statistics
        tmodel(torch.randn(32, 1, 28, 28))
    tmodel.eval()
    model = CNN()
    model.load_state_dict(minidl.from_torch_state_dict(tmodel.state_dict()))
    model.eval()
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    with minidl.no_grad(), torch.no_grad():
        ours, theirs = model(minidl.tensor(x)).numpy(), tmodel(torch.from_numpy(x)).numpy()
    print(f"torch weights: max |minidl - torch| = {np.abs(ours - theirs).max():.2e}")
    assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-5)

    with tempfile.TemporaryDirectory() as tmp:
        # 3. ONNX export, run by onnxruntime at another batch size
        path = os.path.join(tmp, "cnn.onnx")
        minidl.onnx.export(
            model,
            (minidl.zeros(1, 1, 28, 28),),
            path,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (ort_out,) = session.run(None, {"x": x})
        print(
            f"ONNX export ({os.path.getsize(path)} bytes): max |onnxruntime - minidl| = {np.abs(ort_out - ours).max():.2e}"
        )
        assert np.allclose(ort_out, ours, rtol=1e-4, atol=1e-5)

        # 4. ONNX import: a static graph and an eager module
        imported = minidl.onnx.load(path)
        (graph_out,) = imported.run([x])
        with minidl.no_grad():
            eager_out = imported(minidl.tensor(x)).numpy()
        print(
            f"ONNX import: graph max diff {np.abs(graph_out - ours).max():.2e}, eager max diff {np.abs(eager_out - ours).max():.2e}"
        )
        assert np.allclose(graph_out, ours, rtol=1e-4, atol=1e-5) and np.allclose(eager_out, ours, rtol=1e-4, atol=1e-5)
    print("all four agree")


if __name__ == "__main__":
    main()
