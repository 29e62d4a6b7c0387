"""``minidl.onnx.export``: models exported with a dynamic batch axis must compute, in
onnxruntime and in onnx's reference evaluator, at batch sizes other than the example's, what
the model computes eagerly; the transformer and the LSTM are also checked against torch
itself, with the same weights. Plus: names, the checker, plain functions, and errors."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

import minidl
import minidl.nn.functional as F
import minidl.onnx
from minidl import nn
from minidl.onnx import OnnxError

TOL = dict(rtol=1e-5, atol=2e-5)


def _export_and_run(model, example, feeds_for, *, batches=(3, 7), expected=None, **kwargs):
    """Export, then run the file in onnxruntime and the model in onnx's reference evaluator at
    each batch size; compare both with ``expected(batch)`` (default: the eager model's output).
    Returns the ModelProto."""
    path = kwargs.pop("path")
    proto = minidl.onnx.export(model, example, path, **kwargs)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(proto)
    for b in batches:
        feeds = feeds_for(b)
        if expected is None:
            with minidl.no_grad():
                out = model(*(minidl.tensor(v) for v in feeds.values()))
            want = [out] if not isinstance(out, (tuple, list)) else list(out)
            want = [w.numpy() for w in want]
        else:
            want = expected(feeds)
        for got in (session.run(None, feeds), reference.run(None, feeds)):
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype
                np.testing.assert_allclose(g, w, **TOL)
    return proto


def _rng_feeds(name, shape, seed=0):
    def feeds_for(b):
        rng = np.random.default_rng(seed + b)
        return {name: rng.standard_normal((b, *shape)).astype(np.float32)}

    return feeds_for


# ---- the four models ----------------------------------------------------------------------------


def test_mlp(tmp_path):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    proto = _export_and_run(
        model,
        minidl.randn(2, 4),
        _rng_feeds("x", (4,)),
        path=str(tmp_path / "mlp.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Relu", "Gemm"]
    assert {i.name for i in proto.graph.initializer} == {"0.weight", "0.bias", "2.weight", "2.bias"}


class _CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=1, bias=False)
        self.avg = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv1(x))))
        x = self.avg(F.relu(self.conv2(x)))
        return self.fc(self.drop(self.flat(x)))


def test_cnn_with_batch_norm_in_eval_mode(tmp_path):
    minidl.manual_seed(1)
    model = _CNN()
    for _ in range(3):  # training steps' forward passes give the running statistics real values
        model(minidl.randn(8, 2, 8, 8) * 2 + 0.5)
    model.eval()
    assert not np.allclose(model.bn.running_var.numpy(), 1.0)
    proto = _export_and_run(
        model,
        minidl.randn(2, 2, 8, 8),
        _rng_feeds("x", (2, 8, 8)),
        path=str(tmp_path / "cnn.onnx"),
        dynamic_axes={"x": {0: "batch"}, "output": {0: "batch"}},
    )
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "MaxPool", "AveragePool", "Gemm"} <= ops and "Dropout" not in ops
    names = {i.name for i in proto.graph.initializer}
    assert {"conv1.weight", "conv1.bias", "conv2.weight", "bn.running_mean", "bn.running_var", "bn.weight"} <= names


class _LSTMClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def _to_torch(module, torch_module):
    """Copy minidl's parameters into a torch module with the same parameter names."""
    state = {k: torch.tensor(v.numpy()) for k, v in module.state_dict().items()}
    torch_module.load_state_dict(state, strict=False)
    return torch_module.eval()


def test_lstm_classifier_against_torch(tmp_path):
    minidl.manual_seed(2)
    model = _LSTMClassifier().eval()
    ref = torch.nn.ModuleDict({"lstm": torch.nn.LSTM(3, 5, batch_first=True), "fc": torch.nn.Linear(5, 2)})
    _to_torch(model, ref)

    def torch_forward(feeds):
        with torch.no_grad():
            out, _ = ref["lstm"](torch.tensor(feeds["x"]))
            return [ref["fc"](out[:, -1]).numpy()]

    proto = _export_and_run(
        model,
        minidl.randn(2, 6, 3),
        _rng_feeds("x", (6, 3)),
        path=str(tmp_path / "lstm.onnx"),
        input_names=["x"],
        dynamic_axes={"x": [0], "output": [0]},
        expected=torch_forward,
    )
    # the zero initial state takes its batch size from the input when the model runs
    assert "ConstantOfShape" in {n.op_type for n in proto.graph.node}
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "x_dynamic_axes_1"


def test_transformer_encoder_layer_against_torch(tmp_path):
    minidl.manual_seed(3)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True).eval()
    ref = _to_torch(layer, torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True))

    def torch_forward(feeds):
        with torch.no_grad():
            return [ref(torch.tensor(feeds["src"])).numpy()]

    proto = _export_and_run(
        layer,
        minidl.randn(2, 5, 8),
        _rng_feeds("src", (5, 8)),
        path=str(tmp_path / "encoder.onnx"),
        dynamic_axes={"src": {0: "batch"}, "output": {0: "batch"}},
        expected=torch_forward,
    )
    assert "Softmax" in {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("opset", [17, 20])
def test_transformer_with_masks_gelu_and_norm_first(tmp_path, opset):
    """A causal mask (a constant of the model) and a key-padding mask (an input, with its own
    dynamic batch) become Where nodes; GELU is one node from opset 20 and erf's formula before."""
    from minidl.nn.transformer import generate_square_subsequent_mask

    minidl.manual_seed(4)
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", batch_first=True, norm_first=True).eval()
    causal = generate_square_subsequent_mask(5)

    def encode(src, padding):
        return layer(src, src_mask=causal, src_key_padding_mask=padding)

    def feeds_for(b):
        padding = np.zeros((b, 5), bool)
        padding[:, -1] = True
        padding[0, 2] = True
        return {"src": np.random.default_rng(b).standard_normal((b, 5, 8)).astype(np.float32), "padding": padding}

    example = (minidl.randn(2, 5, 8), minidl.tensor(np.zeros((2, 5), bool)))
    proto = _export_and_run(
        encode,
        example,
        feeds_for,
        path=str(tmp_path / "masked.onnx"),
        dynamic_axes={"src": {0: "batch"}, "padding": {0: "batch"}, "output": {0: "batch"}},
        opset_version=opset,
    )
    ops = {n.op_type for n in proto.graph.node}
    assert "Where" in ops
    assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (opset < 20)
    assert proto.opset_import[0].version == opset


# ---- a plain function over many primitives ------------------------------------------------------


def _many_ops(x, ids):
    a = x * 2.0 - 1.0
    b = minidl.where(a > 0, a.exp(), a.abs().sqrt())
    c = b.clamp(0.1, 3.0) ** 2 / (b + 1.0)
    d = F.leaky_relu(a, 0.2) + F.elu(a) + F.silu(a) + F.softplus(a, beta=2.0) + F.gelu(a, approximate="tanh")
    e = (a.tanh() + a.sigmoid() + a.abs().log1p() + (a * 0.1).expm1() + a.sin() * a.cos() + 3.0).rsqrt()
    stats = [d.sum(1, keepdim=True), d.mean(1, keepdim=True), d.amax(1, keepdim=True), d.amin(1, keepdim=True)]
    f = minidl.cat([c, e] + stats, dim=1)  # (B, 2*6 + 4)
    g = F.softmax(f, dim=1) + F.log_softmax(f, dim=1)
    h = g[:, 1:13:2] + g.flip(1)[:, :6] + F.pad(g[:, :4], (1, 1)).reshape(-1, 6)
    rows = h.unsqueeze(1).repeat(1, 2, 1).transpose(1, 2)  # (B, 6, 2)
    tri = minidl.triu(h.unsqueeze(2) * h.unsqueeze(1))  # (B, 6, 6)
    picked = tri[..., ids]  # a runtime index tensor: Gather
    return (
        rows.sum((1, 2)) + picked.sum((1, 2)) + (h.cumsum(1) > 0.5).float().sum(1) + h.argmax(1).float(),
        h.logsumexp(1),
        h.norm(3.0, dim=1) + h.norm(dim=1),
    )


def test_plain_function_over_many_ops(tmp_path):
    def feeds_for(b):
        rng = np.random.default_rng(b)
        return {"x": rng.standard_normal((b, 6)).astype(np.float32), "ids": np.array([0, 3, 5], np.int64)}

    proto = _export_and_run(
        _many_ops,
        (minidl.randn(2, 6), minidl.tensor([1, 2], dtype=minidl.int64)),
        feeds_for,
        path=str(tmp_path / "ops.onnx"),
        output_names=["score", "lse", "norm"],
        dynamic_axes={"x": {0: "batch"}, "ids": {0: "k"}, "score": {0: "batch"}},
    )
    assert [o.name for o in proto.graph.output] == ["score", "lse", "norm"]
    assert [i.name for i in proto.graph.input] == ["x", "ids"]  # the function's parameter names


def _indexing_and_more(x, tokens, table):
    return (
        x.unsqueeze(1)[:, 0, :, [1, 3]],  # an int and an array apart: NumPy moves the array's axis first
        x[..., None, 1:],
        x[:, ::-1][:, -2],
        x[:, [0, 2], 1:3],
        x[0:1, :, [1, 0]],
        x[:, 1, [3, 0]],
        (x.floor_divide(0.7) + x.remainder(0.7)).prod(1),
        (((x > 0) & (x < 1)) | ~(x == 0.5)).all(1).float().sum(1) + (x != 0.1).any(2).float().sum(1),
        x.clamp(min=minidl.zeros(4), max=0.8).to(minidl.int64).sum(2),
        table(tokens).sum(1),  # an embedding: Gather of a runtime index
        F.max_pool2d(x.unsqueeze(1), 2, ceil_mode=True),
        F.avg_pool2d(x.unsqueeze(1), 2, padding=1, count_include_pad=False),
        x.argmin(),
        x.argmax(2, keepdim=True),
        x.var(1) + x.std(),
    )


def test_indexing_pooling_modes_and_integer_results(tmp_path):
    minidl.manual_seed(6)
    table = nn.Embedding(10, 4)

    def fn(x, tokens):
        return _indexing_and_more(x, tokens, table)

    def feeds_for(b):
        rng = np.random.default_rng(b)
        return {"x": rng.standard_normal((b, 3, 4)).astype(np.float32), "tokens": rng.integers(0, 10, (b, 2))}

    _export_and_run(
        fn,
        (minidl.randn(2, 3, 4), minidl.tensor([[1, 2], [3, 4]])),
        feeds_for,
        path=str(tmp_path / "index.onnx"),
        dynamic_axes={"x": [0], "tokens": [0]},
    )


# ---- names, the checker, files ------------------------------------------------------------------


def test_names_shapes_checker_and_file(tmp_path):
    minidl.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh()).eval()
    path = tmp_path / "named.onnx"
    proto = minidl.onnx.export(
        model,
        minidl.randn(2, 3),
        path,
        input_names=["features"],
        output_names=["embedding"],
        dynamic_axes={"features": {0: "n"}, "embedding": {0: "n"}},
    )
    onnx.checker.check_model(proto, full_check=True)
    loaded = onnx.load(str(path))
    assert loaded == proto
    assert sorted(os.listdir(tmp_path)) == ["named.onnx"]  # the temporary file was renamed, not left
    (inp,), (out,) = loaded.graph.input, loaded.graph.output
    assert inp.name == "features" and out.name == "embedding"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["n", 3]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["n", 4]
    weight = next(i for i in loaded.graph.initializer if i.name == "0.weight")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(weight), model[0].weight.detach().numpy())
    assert minidl.onnx.export(model, minidl.randn(2, 3), None).graph.input[0].name == "input"  # forward's name


def test_an_output_that_is_an_input_gets_an_identity(tmp_path):
    proto = minidl.onnx.export(lambda x: (x, x.relu()), minidl.randn(2, 3), tmp_path / "id.onnx")
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]
    got = ReferenceEvaluator(proto).run(None, {"x": np.array([[-1.0, 2.0, 0.5]], np.float32)})
    np.testing.assert_array_equal(got[0], [[-1.0, 2.0, 0.5]])
    np.testing.assert_array_equal(got[1], [[0.0, 2.0, 0.5]])


# ---- errors -------------------------------------------------------------------------------------


def test_dropout_in_training_mode_is_refused_naming_the_op_and_line(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))  # still in training mode
    path = tmp_path / "train.onnx"
    with pytest.raises(OnnxError, match=r"dropout_mask.*%dropout_mask.*test_onnx_export\.py:\d+.*model\.eval\(\)"):
        minidl.onnx.export(model, minidl.randn(2, 3), path)
    assert not path.exists()  # refused before anything was written


def test_an_op_without_converter_is_named(tmp_path):
    def put(x):
        y = x.clone()
        y[0, 1] = 5.0  # IndexPut: writing through an index has no converter yet
        return y

    with pytest.raises(OnnxError, match=r"'index_put' \(IndexPut\) has no ONNX converter.*test_onnx_export"):
        minidl.onnx.export(put, (minidl.randn(2, 3),), tmp_path / "put.onnx")


def test_cross_entropy_and_scatter_add_export(tmp_path):
    """The losses and scatter_add have ONNX forms (SoftmaxCrossEntropyLoss, ScatterElements)."""
    lin = nn.Linear(5, 4)
    weight = minidl.tensor([1.0, 2.0, 0.5, 1.5])

    def fn(x, y, index):
        logits = lin(x)
        mean = F.cross_entropy(logits, y)
        none = F.cross_entropy(logits, y, weight=weight, reduction="none", ignore_index=2)
        scattered = minidl.zeros(3, 4).scatter_add(0, index, logits)
        return mean, none, scattered

    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((6, 5)).astype(np.float32))
    y = minidl.tensor(np.array([0, 1, 2, 3, 2, 1]))
    index = minidl.tensor(rng.integers(0, 3, (4, 4)))
    path = tmp_path / "losses.onnx"
    minidl.onnx.export(fn, (x, y, index), path, input_names=["x", "y", "index"])
    feeds = {"x": x.numpy(), "y": y.numpy(), "index": index.numpy()}
    with minidl.no_grad():
        expected = [t.numpy() for t in fn(x, y, index)]
    for outputs in (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds),
        ReferenceEvaluator(str(path)).run(None, feeds),
    ):
        for got, want in zip(outputs, expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused(tmp_path):
    model = nn.Linear(3, 2)
    x = minidl.randn(2, 3)
    with pytest.raises(OnnxError, match="opset_version must be an int from 14"):
        minidl.onnx.export(model, x, None, opset_version=9)
    with pytest.raises(OnnxError, match="dynamic_axes names 'x'"):
        minidl.onnx.export(model, x, None, dynamic_axes={"x": [0]})
    with pytest.raises(OnnxError, match="dynamic axis 2 of 'input' is out of range"):
        minidl.onnx.export(model, x, None, dynamic_axes={"input": [2]})
    with pytest.raises(OnnxError, match="2 input_names for 1 tensor inputs"):
        minidl.onnx.export(model, x, None, input_names=["a", "b"])
    with pytest.raises(OnnxError, match="named both an input and an output"):
        minidl.onnx.export(model, x, None, input_names=["a"], output_names=["a"])
