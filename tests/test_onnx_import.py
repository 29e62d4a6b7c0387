"""``minidl.onnx.load``: models exported by torch load and match torch (forward and gradients),
and bad input gets a clear ``OnnxError``."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import TensorProto, helper  # noqa: E402

import minidl  # noqa: E402
from minidl.onnx import OnnxError, load  # noqa: E402
from minidl.onnx.backend import MinidlBackend  # noqa: E402


class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(4 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return torch.log_softmax(self.fc(x.flatten(1)), dim=1)


def _export(model: torch.nn.Module, x: torch.Tensor, dynamic_batch: bool = True) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            buf,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None,
            dynamo=False,
        )
    return buf.getvalue()


@pytest.fixture(scope="module")
def cnn() -> tuple[torch.nn.Module, bytes]:
    torch.manual_seed(0)
    model = SmallCNN()
    with torch.no_grad():  # non-trivial running statistics, so inference batch norm is checked
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    return model, _export(model, torch.randn(2, 2, 6, 6))


def test_torch_cnn_graph_matches_torch_at_any_batch(cnn):
    model, data = cnn
    imported = load(data)
    assert imported.inputs[0].shape[0] is None  # the exported dynamic axis is a placeholder's None
    for batch in (3, 5):
        x = torch.randn(batch, 2, 6, 6)
        (y,) = imported.run([x.numpy()])
        np.testing.assert_allclose(y, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_torch_cnn_eager_forward_and_gradients_match_torch(cnn):
    model, data = cnn
    imported = load(data)
    x = torch.randn(3, 2, 6, 6, requires_grad=True)
    xm = minidl.tensor(x.detach().numpy(), requires_grad=True)
    y = imported(xm)
    ref = model(x)
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    # The float initializers are parameters: the imported model trains like any module. (The
    # exporter folds the eval-mode batch norm into the convolution, so the convolution's
    # parameters differ from torch's; the input's and the linear layer's gradients do not.)
    y.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), x.grad.numpy(), rtol=1e-4, atol=1e-6)
    grads = {tuple(p.shape): p.grad.numpy() for p in imported.parameters()}
    assert sorted(grads) == [(4,), (4, 2, 3, 3), (5,), (5, 36)]
    for name in ("fc.weight", "fc.bias"):
        p = model.get_parameter(name)
        np.testing.assert_allclose(grads[tuple(p.shape)], p.grad.numpy(), rtol=1e-4, atol=1e-6)
    model.zero_grad()


def test_batch_norm_statistics_are_buffers_not_parameters():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    inits = [
        onnx.numpy_helper.from_array(np.full(3, v, np.float32), name)
        for name, v in (("scale", 1.5), ("bias", 0.1), ("mean", 0.2), ("var", 2.0))
    ]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3)
    imported = load(_model([node], [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])], inits))
    assert len(list(imported.parameters())) == 2 and len(list(imported.buffers())) == 2
    data = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    ref = torch.nn.functional.batch_norm(
        torch.from_numpy(data), torch.full((3,), 0.2), torch.full((3,), 2.0), torch.full((3,), 1.5),
        torch.full((3,), 0.1), eps=1e-3,
    )  # fmt: skip
    np.testing.assert_allclose(imported.run([data])[0], ref.numpy(), rtol=1e-6, atol=1e-6)


def test_trained_parameters_are_what_the_graph_reads(cnn):
    _, data = cnn
    imported = load(data)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    before = imported.run([x])[0]
    with minidl.no_grad():
        for p in imported.parameters():
            p.mul_(0.5)
    after = imported.run([x])[0]
    np.testing.assert_allclose(after, imported(x).detach().numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(before, after)


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_operator_names_op_node_and_opset():
    model = _model(
        [helper.make_node("Hardmax", ["x"], ["y"], name="the_hardmax")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    with pytest.raises(OnnxError, match=r"Hardmax.*'the_hardmax'.*opset 17"):
        load(model)


def test_truncated_and_corrupt_files_raise_onnx_error(tmp_path, cnn):
    _, data = cnn
    path = tmp_path / "cut.onnx"
    for cut in (len(data) // 2, len(data) - 7, 11):
        path.write_bytes(data[:cut])
        with pytest.raises(OnnxError, match="not a valid ONNX"):
            load(str(path))
    with pytest.raises(OnnxError, match="not a valid ONNX"):
        load(b"\xff\xfe not a protobuf at all")
    with pytest.raises(OnnxError, match="no such file"):
        load(str(tmp_path / "missing.onnx"))


def test_unsupported_dtype_is_a_clear_error():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2])],
    )
    with pytest.raises(OnnxError, match="input 'x' has element type float16"):
        load(model)


def test_static_argument_from_a_graph_input_needs_constant_inputs():
    model = _model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])],
    )
    with pytest.raises(OnnxError, match=r"Reshape.*input 1 \('shape'\) must be known"):
        load(model)
    imported = load(model, constant_inputs={"shape": np.array([3, 2])})
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(imported.run([x])[0], torch.from_numpy(x).reshape(3, 2).numpy())
    # the backend does this by itself, per distinct value of the static input
    rep = MinidlBackend.prepare(model)
    np.testing.assert_array_equal(rep.run([x, np.array([1, 6])])[0], x.reshape(1, 6))
    np.testing.assert_array_equal(rep.run([x, np.array([6, 1])])[0], x.reshape(6, 1))


def test_losses_with_weights_and_ignore_index_match_torch():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((4, 3, 2)).astype(np.float32)
    labels = np.array([[0, 2], [1, -1], [2, 2], [-1, 0]], dtype=np.int64)
    weight = np.array([0.3, 1.0, 2.0], dtype=np.float32)
    model = _model(
        [helper.make_node("SoftmaxCrossEntropyLoss", ["s", "t", "w"], ["loss", "logp"], ignore_index=-1)],
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [4, 3, 2]),
            helper.make_tensor_value_info("t", TensorProto.INT64, [4, 2]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [3]),
        ],
        [
            helper.make_tensor_value_info("loss", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("logp", TensorProto.FLOAT, [4, 3, 2]),
        ],
    )
    loss, logp = load(model).run([scores, labels, weight])
    s = torch.from_numpy(scores)
    ref = torch.nn.functional.cross_entropy(s, torch.from_numpy(labels), torch.from_numpy(weight), ignore_index=-1)
    np.testing.assert_allclose(loss, ref.numpy(), rtol=1e-6)
    np.testing.assert_allclose(logp, torch.log_softmax(s, 1).numpy(), rtol=1e-6, atol=1e-6)


def test_run_node_and_device_support():
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.5)
    a, b, c = (
        np.random.default_rng(i).standard_normal(s).astype(np.float32) for i, s in enumerate([(2, 3), (4, 3), (4,)])
    )
    (y,) = MinidlBackend.run_node(node, [a, b, c])
    ref = 0.5 * torch.from_numpy(a) @ torch.from_numpy(b).T + torch.from_numpy(c)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-6)
    assert MinidlBackend.supports_device("CPU") and not MinidlBackend.supports_device("CUDA")
