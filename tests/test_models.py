"""minidl.models: compile / fit / evaluate / predict / summary, Keras's losses and metrics, and
the progress bar -- each checked against PyTorch run by hand from the same weights and batches."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
import torch

import minidl
import minidl.nn.functional as F
import minidl.optim
import minidl.serialization
from minidl import nn
from minidl.data import DataLoader, TensorDataset
from minidl.models import Model, Progbar, Sequential, losses, metrics
from minidl.models.callbacks import LambdaCallback

# ---- shared pieces -----------------------------------------------------------------------------


def _regression_data(n=50, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal((d, 2)) + 0.1 * rng.standard_normal((n, 2))).astype(np.float32)
    return x, y


def _classification_data(n=70, d=4, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int64)
    x[np.arange(n), y] += 1.5  # learnable
    return x, y


def _pair(torch_model, model):
    """Give the minidl model the torch model's weights (same state-dict names)."""
    model.load_state_dict({k: v.detach().numpy().copy() for k, v in torch_model.state_dict().items()})
    return model


def _mlp(d_in, hidden, d_out):
    torch_model = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, d_out))
    model = Sequential([nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out)])
    return torch_model, _pair(torch_model, model)


def _assert_same_weights(model, torch_model, rtol=1e-5, atol=1e-6):
    ours = model.state_dict()
    for k, v in torch_model.state_dict().items():
        np.testing.assert_allclose(ours[k].numpy(), v.numpy(), rtol=rtol, atol=atol, err_msg=k)


def _batches(n, batch_size):
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


# ---- fit against a hand-written torch loop -----------------------------------------------------


def test_fit_regression_matches_a_torch_loop_epoch_by_epoch():
    """SGD with momentum, mse + mae, batches of 16 over 50 samples (a last batch of 2): each
    epoch's loss and mae are torch's sample-weighted means; final weights equal torch's."""
    x, y = _regression_data()
    torch_model, model = _mlp(3, 8, 2)
    model.compile(optimizer=minidl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), loss="mse", metrics=["mae"])
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)

    opt = torch.optim.SGD(torch_model.parameters(), lr=0.05, momentum=0.9)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for epoch in range(3):
        loss_sum = mae_sum = 0.0
        for s in _batches(50, 16):
            opt.zero_grad()
            out = torch_model(xt[s])
            loss = torch.nn.functional.mse_loss(out, yt[s])
            loss.backward()
            opt.step()
            n = out.shape[0]
            loss_sum += loss.item() * n
            mae_sum += (out - yt[s]).abs().mean(-1).sum().item()
        assert history.history["loss"][epoch] == pytest.approx(loss_sum / 50, rel=1e-5)
        assert history.history["mae"][epoch] == pytest.approx(mae_sum / 50, rel=1e-5)
    assert history.epoch == [0, 1, 2]
    assert history.params == {"verbose": 0, "epochs": 3, "steps": 4, "do_validation": False}
    _assert_same_weights(model, torch_model)


def test_fit_classifier_matches_torch_with_validation_and_keras_adam_defaults():
    """compile('adam') is Adam(lr=1e-3, eps=1e-7) (Keras's defaults); loss 'cross_entropy' on
    logits; accuracy and top-2 accuracy per epoch, validation values in eval mode."""
    x, y = _classification_data()
    xv, yv = _classification_data(n=23, seed=5)
    torch_model, model = _mlp(4, 10, 3)
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy", metrics.TopKAccuracy(2)])
    history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, validation_data=(xv, yv))
    assert list(history.history) == [
        "loss",
        "accuracy",
        "top_2_accuracy",
        "val_loss",
        "val_accuracy",
        "val_top_2_accuracy",
    ]

    opt = torch.optim.Adam(torch_model.parameters(), lr=1e-3, eps=1e-7)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for epoch in range(3):
        sums = np.zeros(3)
        for s in _batches(70, 32):
            opt.zero_grad()
            out = torch_model(xt[s])
            loss = torch.nn.functional.cross_entropy(out, yt[s])
            loss.backward()
            opt.step()
            top2 = out.topk(2, dim=1).indices
            sums += [
                loss.item() * len(out),
                (out.argmax(1) == yt[s]).sum().item(),
                (top2 == yt[s][:, None]).any(1).sum().item(),
            ]
        with torch.no_grad():
            out_v = torch_model(torch.tensor(xv))
            val_loss = torch.nn.functional.cross_entropy(out_v, torch.tensor(yv)).item()
            val_acc = (out_v.argmax(1) == torch.tensor(yv)).float().mean().item()
        h = history.history
        assert h["loss"][epoch] == pytest.approx(sums[0] / 70, rel=1e-5)
        assert h["accuracy"][epoch] == pytest.approx(sums[1] / 70, rel=1e-6)
        assert h["top_2_accuracy"][epoch] == pytest.approx(sums[2] / 70, rel=1e-6)
        assert h["val_loss"][epoch] == pytest.approx(val_loss, rel=1e-5)
        assert h["val_accuracy"][epoch] == pytest.approx(val_acc, rel=1e-6)
    _assert_same_weights(model, torch_model)


def test_fit_with_a_dataloader_equals_fit_with_arrays():
    x, y = _classification_data()
    _, a = _mlp(4, 6, 3)
    b = Sequential([nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)])
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        m.compile(optimizer=minidl.optim.SGD(m.parameters(), lr=0.1), loss="cross_entropy", metrics=["acc"])
    h1 = a.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    loader = DataLoader(TensorDataset(minidl.tensor(x), minidl.tensor(y)), batch_size=16, shuffle=False)
    h2 = b.fit(loader, epochs=2, verbose=0)
    for key in h1.history:
        np.testing.assert_allclose(h1.history[key], h2.history[key], rtol=1e-6)
    for k, v in a.state_dict().items():
        np.testing.assert_allclose(b.state_dict()[k].numpy(), v.numpy(), rtol=1e-6)


class _Recorder(Model):
    """A linear model that remembers the inputs of every training call and every eval call."""

    def __init__(self, d=1):
        super().__init__()
        self.fc = nn.Linear(d, 1)
        self.train_seen, self.eval_seen = [], []

    def forward(self, x):
        (self.train_seen if self.training else self.eval_seen).append(x.numpy()[:, 0].copy())
        return self.fc(x)


def test_validation_split_takes_the_tail_before_shuffling_and_shuffles_with_minidl_seed():
    x = np.arange(20, dtype=np.float32).reshape(20, 1)
    y = x * 2.0
    model = _Recorder()
    model.compile(optimizer="sgd", loss="mse")
    minidl.manual_seed(123)
    model.fit(x, y, batch_size=4, epochs=2, validation_split=0.25, verbose=0)
    # training saw a permutation of the first 15 samples each epoch, drawn from minidl's generator
    rng = np.random.default_rng(123)
    for epoch in range(2):
        seen = np.concatenate(model.train_seen[epoch * 4 : (epoch + 1) * 4])
        np.testing.assert_array_equal(seen, rng.permutation(15).astype(np.float32))
    # validation is the last 5 samples, in order, in eval mode
    np.testing.assert_array_equal(np.concatenate(model.eval_seen[:2]), np.arange(15, 20, dtype=np.float32))


def test_shuffle_is_reproducible_with_manual_seed_and_validation_split_is_checked():
    x, y = _regression_data(n=30)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        torch_model, model = _mlp(3, 4, 2)
        model.compile(optimizer="sgd", loss="mse")
        minidl.manual_seed(7)
        results.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"])
    assert results[0] == results[1]
    with pytest.raises(ValueError, match="not enough to split"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split must be in \[0, 1\)"):
        model.fit(x, y, validation_split=1.0, verbose=0)


def test_steps_per_epoch_continues_the_pass_across_epochs():
    """10 samples in batches of 4 are passes of 4, 4, 2; 2 steps per epoch walk through them
    and begin a new pass when one ends (Keras's behaviour)."""
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    model = _Recorder()
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, x, batch_size=4, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    assert [len(b) for b in model.train_seen] == [4, 4, 2, 4, 4, 2]
    assert history.params["steps"] == 2


def test_stop_training_is_honoured_after_the_batch_and_epoch():
    x, y = _regression_data(n=40)
    _, model = _mlp(3, 4, 2)
    model.compile(optimizer="sgd", loss="mse")
    seen = []

    def stop_after_two(batch, logs):
        seen.append(batch)
        if batch == 1:
            model.stop_training = True

    history = model.fit(
        x, y, batch_size=8, epochs=5, verbose=0, callbacks=[LambdaCallback(on_train_batch_end=stop_after_two)]
    )
    assert seen == [0, 1]
    assert history.epoch == [0]


def test_initial_epoch_and_mode_restored_after_fit():
    x, y = _regression_data(n=16)
    _, model = _mlp(3, 4, 2)
    model.compile(optimizer="sgd", loss="mse")
    model.eval()
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3]
    assert not model.training and not any(m.training for m in model.modules())


# ---- evaluate / predict / on_batch -------------------------------------------------------------


def test_evaluate_and_predict_match_a_manual_computation():
    x, y = _classification_data(n=45)
    torch_model, model = _mlp(4, 8, 3)
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"])
    model.train()
    loss, acc = model.evaluate(x, y, batch_size=16, verbose=0)
    with torch.no_grad():
        out = torch_model(torch.tensor(x))
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(out, torch.tensor(y)).item(), rel=1e-5)
    assert acc == pytest.approx((out.argmax(1).numpy() == y).mean(), rel=1e-6)
    logs = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy"] and logs["loss"] == pytest.approx(loss, rel=1e-6)
    assert model.metrics_names == ["loss", "accuracy"]
    pred = model.predict(x, batch_size=16)
    assert isinstance(pred, minidl.Tensor) and not pred.requires_grad
    np.testing.assert_allclose(pred.numpy(), out.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(x).numpy(), out.numpy(), rtol=1e-5, atol=1e-6)
    assert model.training  # evaluate/predict put the caller's mode back


def test_evaluate_and_predict_run_in_eval_mode_under_no_grad():
    torch.manual_seed(0)
    model = Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1))
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 4), np.float32)
    a, b = model.predict(x), model.predict(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # dropout is off
    with minidl.no_grad():
        model.eval()
        np.testing.assert_allclose(a.numpy(), model(minidl.tensor(x)).numpy(), rtol=1e-6)


def test_train_on_batch_and_test_on_batch_are_one_step():
    x, y = _classification_data(n=12)
    torch_model, model = _mlp(4, 5, 3)
    model.compile(optimizer=minidl.optim.SGD(model.parameters(), lr=0.5), loss="cross_entropy", metrics=["accuracy"])
    before = model.test_on_batch(x, y, return_dict=True)
    loss, acc = model.train_on_batch(x, y)
    opt = torch.optim.SGD(torch_model.parameters(), lr=0.5)
    out = torch_model(torch.tensor(x))
    torch_loss = torch.nn.functional.cross_entropy(out, torch.tensor(y))
    torch_loss.backward()
    opt.step()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-5) and before["loss"] == pytest.approx(loss, rel=1e-5)
    assert acc == pytest.approx((out.argmax(1).numpy() == y).mean())
    _assert_same_weights(model, torch_model)


# ---- Model, Sequential, call, summary, weights -------------------------------------------------


def test_sequential_forms_and_children_names():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    a = Sequential(layers)
    b = Sequential(*layers)
    c = Sequential()
    for layer in layers:
        c.add(layer)
    for m in (a, b, c):
        assert [name for name, _ in m.named_children()] == ["0", "1", "2"]
        assert isinstance(m, nn.Sequential) and isinstance(m, Model) and len(m) == 3
        assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = minidl.randn(5, 3)
    np.testing.assert_array_equal(a(x).detach().numpy(), layers[2](layers[1](layers[0](x))).detach().numpy())
    with pytest.raises(TypeError, match="not an nn.Module"):
        Sequential([nn.Linear(2, 2), "relu"])


def test_keras_call_is_the_forward_and_receives_training():
    class KerasStyle(Model):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(2, 1)
            self.modes = []

        def call(self, inputs, training=None):
            self.modes.append(training)
            return self.dense(inputs)

    model = KerasStyle()
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 2), np.float32)
    model.fit(x, np.zeros((4, 1), np.float32), epochs=1, verbose=0)
    model.predict(x)
    assert model.modes == [True, False]
    assert model.name == "keras_style"


def _summary_lines(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def test_summary_counts_parameters_like_torch_and_records_output_shapes():
    model = Sequential(
        [nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10), nn.BatchNorm1d(10)]
    )
    torch_model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(36, 10),
        torch.nn.BatchNorm1d(10),
    )
    lines = _summary_lines(model)
    assert lines[0] == 'Model: "sequential"'
    assert all(" ?" in line for line in lines if "(Conv2d)" in line)  # not run yet: unknown shapes
    lines = _summary_lines(model, input_shape=(1, 8, 8))
    text = "\n".join(lines)
    rows = {
        m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"^ (\d) \(\w+\)\s+(\(.*?\))\s+([\d,]+)$", text, re.M)
    }
    expected_shapes = [
        "(None, 4, 6, 6)",
        "(None, 4, 6, 6)",
        "(None, 4, 3, 3)",
        "(None, 36)",
        "(None, 10)",
        "(None, 10)",
    ]
    for i, (child, shape) in enumerate(zip(torch_model, expected_shapes)):
        assert rows[str(i)] == (shape, f"{sum(p.numel() for p in child.parameters()):,}")
    total = sum(p.numel() for p in torch_model.parameters())
    assert f"Total params: {total:,}" in lines
    assert f"Trainable params: {total:,}" in lines
    assert "Non-trainable params: 0" in lines
    assert "Buffers (state that is not a parameter): 21" in lines  # running mean, var, count


def test_summary_after_fit_shows_the_last_run_and_frozen_parameters():
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(5, 7)
            self.head = nn.Linear(7, 2)

        def forward(self, x):
            return self.head(F.relu(self.body(x)))

    model = Net()
    model.body.weight.requires_grad_(False)
    model.compile(optimizer=minidl.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1), loss="mse")
    model.fit(np.ones((6, 5), np.float32), np.zeros((6, 2), np.float32), verbose=0)
    text = "\n".join(_summary_lines(model))
    assert re.search(r"body \(Linear\)\s+\(None, 7\)\s+42", text) and re.search(
        r"head \(Linear\)\s+\(None, 2\)\s+16", text
    )
    assert "Total params: 58" in text and "Trainable params: 23" in text and "Non-trainable params: 35" in text


def test_save_weights_load_weights_and_checkpoint(tmp_path):
    _, a = _mlp(3, 4, 2)
    a.compile(optimizer="adam", loss="mse")
    a.fit(*_regression_data(n=8), verbose=0)
    path = str(tmp_path / "w.safetensors")
    a.save_weights(path)
    _, b = _mlp(3, 4, 2)
    b.load_weights(path)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k].numpy(), v.numpy())
    assert [w.shape for w in a.get_weights()] == [(4, 3), (4,), (2, 4), (2,)]
    ckpt = str(tmp_path / "full.safetensors")
    a.save(ckpt)
    loaded = minidl.serialization.load(ckpt)
    assert set(loaded) == {"model", "optimizer"} and "state" in loaded["optimizer"]
    with pytest.raises(FileExistsError):
        a.save_weights(path, overwrite=False)


# ---- errors ------------------------------------------------------------------------------------


def test_clear_errors():
    x, y = _regression_data(n=10)
    _, model = _mlp(3, 4, 2)
    with pytest.raises(RuntimeError, match=r"call compile\(\) before fit"):
        model.fit(x, y)
    with pytest.raises(RuntimeError, match=r"compile\(\) before evaluate"):
        model.evaluate(x, y)
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'.*sparse_categorical_crossentropy"):
        model.compile(loss="crossentropy")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'.*accuracy"):
        model.compile(loss="mse", metrics=["acuracy"])
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'.*rmsprop"):
        model.compile(optimizer="adamax", loss="mse")
    model.compile(optimizer="sgd")  # fine for predict, as in Keras; fit needs a loss
    with pytest.raises(ValueError, match="compiled without a loss"):
        model.fit(x, y)
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="x has 10, y has 9"):
        model.fit(x, y[:9])
    with pytest.raises(ValueError, match="y is required"):
        model.fit(x)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.fit(x, y, batch_size=0)
    loader = DataLoader(TensorDataset(minidl.tensor(x), minidl.tensor(y)), batch_size=4)
    with pytest.raises(ValueError, match="validation_split works with tensors or arrays only"):
        model.fit(loader, validation_split=0.2)
    with pytest.raises(ValueError, match="do not pass batch_size"):
        model.fit(loader, batch_size=4)
    model.compile(loss=lambda p, t: (p - t) ** 2)
    with pytest.raises(ValueError, match=r"returned a tensor of shape \(4, 2\); it must return a scalar"):
        model.fit(x, y, batch_size=4, verbose=0)


# ---- losses against torch ----------------------------------------------------------------------


def _probs(rng, shape):
    p = rng.random(shape).astype(np.float32) + 0.05
    return p / p.sum(-1, keepdims=True)


def test_keras_crossentropies_equal_torch_values_and_gradients(rng):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    tl, tt = torch.tensor(logits, requires_grad=True), torch.tensor(labels)
    ml = minidl.tensor(logits, requires_grad=True)
    # from_logits=True is exactly cross_entropy, gradient included
    ours = losses.SparseCategoricalCrossentropy(from_logits=True)(minidl.tensor(labels), ml)
    theirs = torch.nn.functional.cross_entropy(tl, tt)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    np.testing.assert_allclose(ml.grad.numpy(), tl.grad.numpy(), rtol=1e-5, atol=1e-7)
    # on probabilities: -log p[target]; (N, 1) targets work too
    p = _probs(rng, (6, 4))
    expected = torch.nn.functional.nll_loss(torch.tensor(p).log(), tt).item()
    assert losses.sparse_categorical_crossentropy(labels[:, None], p).mean().item() == pytest.approx(expected, rel=1e-6)
    # categorical: one-hot targets, probabilities or logits
    onehot = np.eye(4, dtype=np.float32)[labels]
    assert losses.CategoricalCrossentropy()(onehot, p).item() == pytest.approx(expected, rel=1e-6)
    cce = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(onehot, logits).item()
    assert cce == pytest.approx(torch.nn.functional.cross_entropy(tl, tt, label_smoothing=0.1).item(), rel=1e-5)
    # binary: probabilities (clipped) and logits
    z = rng.standard_normal((6, 3)).astype(np.float32)
    t = rng.integers(0, 2, (6, 3)).astype(np.float32)
    assert losses.BinaryCrossentropy(from_logits=True)(t, z).item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(t)).item(), rel=1e-5
    )
    s = 1 / (1 + np.exp(-z))
    assert losses.BinaryCrossentropy()(t, s).item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy(torch.tensor(s), torch.tensor(t)).item(), rel=1e-5
    )
    # per-sample values with reduction=None: the mean over the last axis
    per_sample = losses.BinaryCrossentropy(from_logits=True, reduction=None)(t, z).numpy()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(per_sample, expected.mean(-1).numpy(), rtol=1e-5)


def test_keras_regression_losses_equal_torch(rng):
    p = rng.random((5, 3)).astype(np.float32) * 3
    t = rng.random((5, 3)).astype(np.float32) * 3 + 0.1
    P, T = torch.tensor(p), torch.tensor(t)
    expected = {
        "mean_squared_error": torch.nn.functional.mse_loss(P, T),
        "mae": torch.nn.functional.l1_loss(P, T),
        "mape": (100 * ((T - P) / T).abs()).mean(),
        "msle": ((P.log1p() - T.log1p()) ** 2).mean(),
        "huber": torch.nn.functional.huber_loss(P, T, delta=1.0),
        "log_cosh": torch.log(torch.cosh(P - T)).mean(),
        "poisson": (P - T * torch.log(P + 1e-7)).mean(),
        "hinge": torch.clamp(1 - (2 * (T > 1.5).float() - 1) * P, min=0).mean(),
    }
    for name, value in expected.items():
        target = (t > 1.5).astype(np.float32) if name == "hinge" else t
        loss = losses.get(name)(minidl.tensor(p), minidl.tensor(target))
        assert loss.item() == pytest.approx(value.item(), rel=1e-5), name
    q, r = _probs(rng, (4, 5)), _probs(rng, (4, 5))
    kld = torch.nn.functional.kl_div(torch.tensor(q).log(), torch.tensor(r), reduction="batchmean")
    assert losses.KLDivergence()(r, q).item() == pytest.approx(kld.item(), rel=1e-5)
    assert losses.Huber(delta=0.5)(t, p).item() == pytest.approx(
        torch.nn.functional.huber_loss(P, T, delta=0.5).item(), rel=1e-5
    )


def test_loss_names_argument_order_and_rank_matching():
    pred = minidl.tensor([[0.5], [2.0], [1.0]])
    target = minidl.tensor([1.0, 1.0, 3.0])  # (N,) against (N, 1): Keras matches the ranks
    assert losses.get("mse")(pred, target).item() == pytest.approx((0.25 + 1 + 4) / 3)
    assert losses.get("mse_loss") is F.mse_loss and losses.get("nll") is F.nll_loss
    assert losses.get("cross_entropy") is F.cross_entropy
    # a Keras loss object passed to compile is called with y_true first; a plain callable is not
    probs = minidl.tensor([[0.9, 0.1], [0.2, 0.8]])
    labels = minidl.tensor([0, 1])
    wrapped = losses.get(losses.SparseCategoricalCrossentropy())
    assert wrapped(probs, labels).item() == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, rel=1e-6)
    calls = []
    plain = losses.get(lambda y_pred, y_true: calls.append((y_pred, y_true)) or y_pred.sum())
    plain(probs, labels)
    assert calls[0][0] is probs and calls[0][1] is labels
    assert set(losses.known_names()) >= {
        "cross_entropy",
        "nll_loss",
        "nll",
        "mse_loss",
        "mse",
        "l1_loss",
        "smooth_l1_loss",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "sparse_categorical_crossentropy",
        "categorical_crossentropy",
        "binary_crossentropy",
        "mean_squared_error",
        "mean_absolute_error",
    }
    with pytest.raises(ValueError, match="must be probabilities"):
        losses.sparse_categorical_crossentropy(labels, minidl.tensor([[2.0, -1.0], [0.1, 0.3]]))


def test_compile_resolves_every_functional_loss_name_and_trains():
    x = np.random.default_rng(0).random((8, 2)).astype(np.float32)
    cases = {
        "cross_entropy": np.array([0, 1] * 4),
        "nll_loss": np.array([0, 1] * 4),
        "mse_loss": x,
        "l1_loss": x,
        "smooth_l1_loss": x,
        "binary_cross_entropy": (x > 0.5).astype(np.float32),
        "binary_cross_entropy_with_logits": (x > 0.5).astype(np.float32),
    }
    for name, y in cases.items():
        layers = [nn.Linear(2, 2)]
        if name == "nll_loss":
            layers.append(nn.LogSoftmax(dim=1))
        if name == "binary_cross_entropy":
            layers.append(nn.Sigmoid())
        model = Sequential(layers)
        model.compile(optimizer="sgd", loss=name)
        out = model(minidl.tensor(x))
        expected = getattr(F, name)(out, minidl.tensor(y)).item()
        assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-6), name


# ---- metrics -----------------------------------------------------------------------------------


def test_accuracy_resolves_from_loss_and_shapes_like_keras():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]], np.float32)
    sparse = metrics.resolve_accuracy("accuracy", np.array([0, 2]), logits)
    assert isinstance(sparse, metrics.SparseCategoricalAccuracy) and sparse.name == "accuracy"
    assert sparse(np.array([0, 2]), logits) == 0.5
    assert isinstance(metrics.resolve_accuracy("acc", np.array([[0], [2]]), logits), metrics.SparseCategoricalAccuracy)
    onehot = np.eye(3, dtype=np.float32)[[0, 1]]
    categorical = metrics.resolve_accuracy("acc", onehot, logits)
    assert isinstance(categorical, metrics.CategoricalAccuracy) and categorical(onehot, logits) == 1.0
    binary = metrics.resolve_accuracy("accuracy", np.array([[1.0], [0.0]]), np.array([[0.7], [0.6]]))
    assert isinstance(binary, metrics.BinaryAccuracy) and binary.kwargs["threshold"] == 0.5
    with_logits = metrics.resolve_accuracy("accuracy", np.array([[1.0], [0.0]]), np.array([[0.2], [-0.1]]), "logits")
    assert with_logits(np.array([[1.0], [0.0]]), np.array([[0.2], [-0.1]])) == 1.0  # threshold 0 on logits


def test_binary_model_with_logits_loss_reports_binary_accuracy():
    x = np.array([[1.0], [-1.0], [2.0], [-3.0]], np.float32)
    y = np.array([[1.0], [0.0], [0.0], [0.0]], np.float32)
    model = Sequential([nn.Linear(1, 1)])
    model.load_state_dict({"0.weight": np.array([[1.0]], np.float32), "0.bias": np.array([0.0], np.float32)})
    model.compile(optimizer="sgd", loss="binary_cross_entropy_with_logits", metrics=["accuracy"])
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == 0.75


def test_topk_and_other_metrics_against_torch(rng):
    scores = rng.standard_normal((20, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 20)
    in_top3 = (
        (torch.tensor(scores).topk(3, dim=1).indices == torch.tensor(labels)[:, None]).any(1).float().mean().item()
    )
    assert metrics.SparseTopKCategoricalAccuracy(k=3)(labels, scores) == pytest.approx(in_top3)
    assert metrics.TopKCategoricalAccuracy(k=3)(np.eye(6)[labels], scores) == pytest.approx(in_top3)
    assert metrics.TopKAccuracy(3)(labels, scores) == pytest.approx(in_top3)
    top5 = metrics.get("sparse_top_k_categorical_accuracy")
    in_top5 = (torch.tensor(scores).topk(5, dim=1).indices == torch.tensor(labels)[:, None]).any(1).float().mean()
    assert top5(labels, scores) == pytest.approx(in_top5.item())
    # a running mean over batches of different sizes is the mean over all samples
    acc = metrics.SparseCategoricalAccuracy()
    acc.update_state(labels[:16], scores[:16])
    acc.update_state(labels[16:], scores[16:])
    assert acc.result() == pytest.approx((scores.argmax(1) == labels).mean())
    rmse = metrics.RootMeanSquaredError()
    rmse.update_state(np.zeros((3, 2)), np.ones((3, 2)) * 2)
    rmse.update_state(np.zeros((1, 2)), np.zeros((1, 2)))
    assert rmse.result() == pytest.approx(math.sqrt(12 / 4))
    # torch-layout segmentation: (N, C, H) scores, (N, H) labels
    seg = rng.standard_normal((2, 3, 5)).astype(np.float32)
    seg_labels = rng.integers(0, 3, (2, 5))
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(seg_labels, seg), seg.argmax(1) == seg_labels)


def test_callable_metrics_take_pytorch_order_and_are_sample_weighted():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    model = Sequential([nn.Linear(1, 1)])
    model.load_state_dict({"0.weight": np.array([[1.0]], np.float32), "0.bias": np.array([0.5], np.float32)})
    model.compile(optimizer="sgd", loss="mse", metrics=[lambda y_pred, y_true: (y_pred - y_true).mean()])
    logs = model.evaluate(x, x, batch_size=4, verbose=0, return_dict=True)
    assert logs["<lambda>"] == pytest.approx(0.5)  # batch means of 0.5 weighted 4, 4, 2


# ---- progress bar ------------------------------------------------------------------------------

_FINAL = re.compile(r"^(\d+)/(\d+) \[=+\] - \d+s \d+(us|ms|s)/step(?: - [a-z_]+: -?\d\.\d{4}(e[-+]\d+)?)+$")


def test_progress_bar_prints_one_line_per_epoch_when_not_a_terminal(capsys):
    x, y = _classification_data(n=40)
    _, model = _mlp(4, 5, 3)
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for line in (lines[1], lines[3]):
        assert "\r" not in line and _FINAL.match(line), line
        assert line.startswith("4/4 [==============================]")
        assert re.search(
            r" - loss: \d\.\d{4} - accuracy: \d\.\d{4} - val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}$", line
        )
    model.fit(x, y, batch_size=8, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and re.match(
        r"^5/5 - \d+s - \d+(us|ms|s)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}$", lines[1]
    )
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, batch_size=16, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and _FINAL.match(out[0]) and out[0].startswith("3/3 [")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_in_place_on_a_terminal():
    stream = _Terminal()
    bar = Progbar(target=100, interval=0.0, stream=stream)
    bar.update(12, {"loss": 0.23456, "accuracy": 0.9123})
    bar.update(50, [("loss", 0.2)])
    bar.update(100, {"loss": 0.1, "val_loss": 1e-5}, finalize=True)
    text = stream.getvalue()
    frames = text.split("\r")[1:]
    assert frames[0].startswith(" 12/100 [==>...........................] - ETA: ")
    assert frames[0].rstrip().endswith("- loss: 0.2346 - accuracy: 0.9123")
    assert frames[1].startswith(" 50/100 [==============>...............]")
    assert len(frames[1]) >= len(frames[0])  # padded over the longer previous line
    assert re.match(
        r"^100/100 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: 0\.1000 - val_loss: 1\.0000e-05\n$", frames[2]
    )
    # throttled: with a long interval only the final frame after the first is drawn
    stream = _Terminal()
    bar = Progbar(target=10, interval=60.0, stream=stream)
    for i in range(1, 11):
        bar.update(i, {"loss": 1.0})
    assert stream.getvalue().count("\r") == 2  # the first update (after 0s) ... and the final one
    unknown = _Terminal()
    Progbar(target=None, interval=0.0, stream=unknown).update(7, {"loss": 1.0})
    assert "      7/Unknown" in unknown.getvalue()


def test_progress_logger_on_a_terminal_gets_batch_updates(monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr("sys.stdout", stream)
    x, y = _regression_data(n=32)
    _, model = _mlp(3, 4, 2)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=1)
    text = stream.getvalue()
    assert text.startswith("Epoch 1/1\n") and "\r" in text and text.endswith("\n")
    assert re.search(r"\r4/4 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: \d\.\d{4} *\n$", text)


# ---- other inputs and losses -------------------------------------------------------------------


class _Pairs(minidl.data.Dataset):
    """A map-style dataset of (x, y) samples, batched by a DataLoader inside fit."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return minidl.tensor(self.x[i]), minidl.tensor(self.y[i])


def test_fit_on_a_dataset_a_generator_and_several_inputs():
    x, y = _regression_data(n=20)
    torch.manual_seed(0)
    _, a = _mlp(3, 4, 2)
    torch.manual_seed(0)
    _, b = _mlp(3, 4, 2)
    for m in (a, b):
        m.compile(optimizer=minidl.optim.SGD(m.parameters(), lr=0.1), loss="mse")
    h1 = a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h2 = b.fit(_Pairs(x, y), batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-6)
    # a validation DataLoader keeps its own batch size while the arrays use batch_size
    val_loader = DataLoader(TensorDataset(minidl.tensor(x), minidl.tensor(y)), batch_size=6)
    h3 = a.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=val_loader)
    assert h3.history["val_loss"][0] == pytest.approx(a.evaluate(x, y, verbose=0), rel=1e-6)
    # a generator is one pass: the second epoch finds it empty and training stops, with a warning
    gen = ((minidl.tensor(x[i : i + 5]), minidl.tensor(y[i : i + 5])) for i in range(0, 20, 5))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = a.fit(gen, epochs=3, verbose=0)
    assert history.epoch == [0]

    class TwoInputs(Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(1, 2)

        def forward(self, u, v):
            return self.a(u) + self.b(v)

    model = TwoInputs()
    model.compile(optimizer="sgd", loss="mse")
    v = np.ones((20, 1), np.float32)
    model.fit((x, v), y, batch_size=8, verbose=0)
    with minidl.no_grad():
        expected = model(minidl.tensor(x), minidl.tensor(v)).numpy()
    np.testing.assert_allclose(model.predict((x, v)).numpy(), expected, rtol=1e-6)


def test_loss_objects_module_losses_and_keras_classes_train_alike():
    """nn.CrossEntropyLoss(), SparseCategoricalCrossentropy(from_logits=True) and
    'cross_entropy' are one loss: the same history and weights from the same start."""
    x, y = _classification_data(n=30)
    runs = []
    for loss in (nn.CrossEntropyLoss(), losses.SparseCategoricalCrossentropy(from_logits=True), "cross_entropy"):
        torch.manual_seed(0)
        _, model = _mlp(4, 5, 3)
        model.compile(optimizer=minidl.optim.SGD(model.parameters(), lr=0.3), loss=loss, metrics=["accuracy"])
        runs.append((model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history, model.get_weights()))
        assert model.loss is loss
    for history, weights in runs[1:]:
        for key in history:
            np.testing.assert_allclose(history[key], runs[0][0][key], rtol=1e-6)
        for w, w0 in zip(weights, runs[0][1]):
            np.testing.assert_allclose(w, w0, rtol=1e-6)
    assert "loss" not in dict(model.named_children())  # a loss module is not registered as a layer

    class OwnLoss(Model):  # a PyTorch-style model that owns a layer called `loss`
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)
            self.loss = nn.MSELoss()

        def forward(self, x):
            return self.fc(x)

    own = OwnLoss()
    own.compile(optimizer="sgd", loss="mae")
    assert isinstance(own.loss, nn.MSELoss)
