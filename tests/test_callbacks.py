"""minidl.models.callbacks: every callback against an expectation derived by hand.

Monitored quantities are scripted: a ``LambdaCallback`` placed before the callback under test
overwrites ``logs['val_loss']`` (or another key) at each epoch's end with a chosen sequence,
so the epoch at which EarlyStopping stops, or the files ModelCheckpoint writes, follow from
Keras's rules applied to that sequence on paper. Weights are snapshotted every epoch to
check what ``restore_best_weights`` and checkpoints hold."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

import minidl
import minidl.optim
import minidl.serialization
from minidl import nn
from minidl.models import Sequential
from minidl.models.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgbarLogger,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


def _model(lr=0.1):
    model = Sequential([nn.Linear(2, 1)])
    model.compile(optimizer=minidl.optim.SGD(model.parameters(), lr=lr), loss="mse")
    return model


_X = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
_Y = np.random.default_rng(1).standard_normal((8, 1)).astype(np.float32)


def _script(key, values):
    """A callback that sets logs[key] = values[epoch] at each epoch's end."""
    return LambdaCallback(on_epoch_end=lambda epoch, logs: logs.__setitem__(key, values[epoch]))


class _Snapshots(Callback):
    """The model's weights at the end of each epoch (after training, before restoring)."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def _fit(model, callbacks, epochs):
    return model.fit(_X, _Y, batch_size=4, epochs=epochs, verbose=0, callbacks=callbacks)


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


# ---- EarlyStopping -----------------------------------------------------------------------------


def test_early_stopping_stops_when_patience_runs_out():
    # best 0.8 at epoch 1; epochs 2 and 3 do not improve: wait reaches 2 = patience at epoch 3
    values = [1.0, 0.8, 0.9, 0.85, 0.7, 0.6]
    stopper = EarlyStopping(patience=2)
    history = _fit(_model(), [_script("val_loss", values), stopper], epochs=6)
    assert history.epoch == [0, 1, 2, 3]
    assert stopper.stopped_epoch == 3 and stopper.best == 0.8 and stopper.best_epoch == 1


def test_early_stopping_patience_zero_stops_at_the_first_non_improvement_after_epoch_zero():
    stopper = EarlyStopping(monitor="val_loss", patience=0)
    history = _fit(_model(), [_script("val_loss", [1.0, 0.9, 0.95, 0.5])], epochs=4)
    assert history.epoch == [0, 1, 2, 3]  # not monitored: runs all epochs
    history = _fit(_model(), [_script("val_loss", [1.0, 0.9, 0.95, 0.5]), stopper], epochs=4)
    assert history.epoch == [0, 1, 2]


def test_early_stopping_min_delta_needs_a_large_enough_improvement():
    # improvements of 0.05 do not beat min_delta=0.1: no improvement after epoch 0
    stopper = EarlyStopping(patience=1, min_delta=0.1)
    history = _fit(_model(), [_script("val_loss", [1.0, 0.95, 0.9, 0.85]), stopper], epochs=4)
    assert history.epoch == [0, 1] and stopper.best == 1.0


def test_early_stopping_mode_max_and_auto_reads_the_metric_direction():
    x = _X
    y = (x[:, :1] > 0).astype(np.float32)
    model = Sequential([nn.Linear(2, 1)])
    model.compile(optimizer="sgd", loss="binary_cross_entropy_with_logits", metrics=["accuracy"])
    auto = EarlyStopping(monitor="val_accuracy", patience=1)
    scripted = _script("val_accuracy", [0.5, 0.7, 0.6, 0.9])
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[scripted, auto])
    assert history.epoch == [0, 1, 2] and auto.best == 0.7  # larger is better for accuracy
    explicit = EarlyStopping(monitor="val_accuracy", patience=1, mode="min")
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[scripted, explicit])
    assert history.epoch == [0, 1]
    with pytest.raises(ValueError, match="mode='max'"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[_script("custom", [1, 2]), EarlyStopping(monitor="custom")])


def test_early_stopping_baseline_keeps_waiting_until_it_is_beaten():
    # baseline 0.5: epoch 0 improves on inf but not on the baseline, so wait is not reset;
    # epoch 1 does not improve at all -> wait 2 >= patience 2 -> stop at epoch 1
    stopper = EarlyStopping(patience=2, baseline=0.5)
    history = _fit(_model(), [_script("val_loss", [0.9, 0.95, 0.96, 0.2]), stopper], epochs=4)
    assert history.epoch == [0, 1] and stopper.stopped_epoch == 1
    # beating the baseline resets the wait
    stopper = EarlyStopping(patience=2, baseline=0.5)
    history = _fit(_model(), [_script("val_loss", [0.4, 0.45, 0.46, 0.47, 0.48]), stopper], epochs=5)
    assert history.epoch == [0, 1, 2]


def test_early_stopping_start_from_epoch_ignores_the_warm_up():
    stopper = EarlyStopping(patience=0, start_from_epoch=2)
    history = _fit(_model(), [_script("val_loss", [0.1, 0.5, 0.6, 0.7, 0.65, 0.8]), stopper], epochs=6)
    # monitoring starts at epoch 2 (best 0.6); epoch 3 is worse -> stop
    assert history.epoch == [0, 1, 2, 3] and stopper.best == 0.6


def test_restore_best_weights_when_stopping_early():
    snaps = _Snapshots()
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    model = _model()
    history = _fit(model, [_script("val_loss", [1.0, 0.5, 0.7, 0.8, 0.1]), snaps, stopper], epochs=5)
    assert history.epoch == [0, 1, 2, 3]
    assert _same(model.get_weights(), snaps.weights[1])  # the end of the best epoch, 1
    assert not _same(snaps.weights[3], snaps.weights[1])


def test_restore_best_weights_also_at_the_end_of_a_full_run():
    """Keras restores at the end of training whenever a best epoch was recorded, even when
    training was never stopped."""
    snaps = _Snapshots()
    stopper = EarlyStopping(patience=5, restore_best_weights=True)
    model = _model()
    history = _fit(model, [_script("val_loss", [1.0, 0.3, 0.6, 0.7]), snaps, stopper], epochs=4)
    assert history.epoch == [0, 1, 2, 3] and stopper.stopped_epoch == 0
    assert _same(model.get_weights(), snaps.weights[1])


def test_early_stopping_verbose_messages(capsys):
    stopper = EarlyStopping(patience=0, restore_best_weights=True, verbose=1)
    _fit(_model(), [_script("val_loss", [1.0, 2.0, 3.0]), stopper], epochs=3)
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 2: early stopping",
        "Restoring model weights from the end of the best epoch: 1.",
    ]


def test_early_stopping_warns_when_the_monitor_is_missing():
    with pytest.warns(UserWarning, match="val_loss.*not available"):
        history = _fit(_model(), [EarlyStopping()], epochs=2)
    assert history.epoch == [0, 1]


# ---- ModelCheckpoint ---------------------------------------------------------------------------


def test_model_checkpoint_save_best_only_writes_only_improvements(tmp_path):
    snaps = _Snapshots()
    path = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.safetensors")
    ckpt = ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    model = _model()
    _fit(model, [_script("val_loss", [0.5, 0.6, 0.4, 0.45]), snaps, ckpt], epochs=4)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01-0.50.safetensors", "ckpt-03-0.40.safetensors"]
    for name, epoch in (("ckpt-01-0.50.safetensors", 0), ("ckpt-03-0.40.safetensors", 2)):
        saved = minidl.serialization.load(str(tmp_path / name))
        assert list(saved) == ["0.weight", "0.bias"]
        assert _same([t.numpy() for t in saved.values()], snaps.weights[epoch])
    assert not any(n.endswith(".tmp") or n.startswith(".") for n in os.listdir(tmp_path))  # atomic: no leftovers


def test_model_checkpoint_fixed_path_holds_the_best_and_every_epoch_mode(tmp_path):
    snaps = _Snapshots()
    best = str(tmp_path / "best.safetensors")
    every = str(tmp_path / "every-{epoch}.safetensors")
    model = _model()
    callbacks = [
        _script("val_loss", [0.5, 0.3, 0.4]),
        snaps,
        ModelCheckpoint(best, save_best_only=True, save_weights_only=True),
        ModelCheckpoint(every),
    ]
    _fit(model, callbacks, epochs=3)
    other = _model()
    other.load_weights(best)
    assert _same(other.get_weights(), snaps.weights[1])
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("every")) == [
        "every-1.safetensors",
        "every-2.safetensors",
        "every-3.safetensors",
    ]
    full = minidl.serialization.load(str(tmp_path / "every-3.safetensors"))
    assert set(full) == {"model", "optimizer"}  # a training checkpoint
    assert _same([t.numpy() for t in full["model"].values()], snaps.weights[2])


def test_model_checkpoint_messages_and_errors(tmp_path, capsys):
    path = str(tmp_path / "m.safetensors")
    ckpt = ModelCheckpoint(path, monitor="val_loss", save_best_only=True, verbose=1)
    _fit(_model(), [_script("val_loss", [0.5, 0.7])], epochs=2)
    _fit(_model(), [_script("val_loss", [0.5, 0.7]), ckpt], epochs=2)
    out = capsys.readouterr().out
    assert f"Epoch 1: val_loss improved from inf to 0.50000, saving model to {path}" in out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out
    with pytest.raises(KeyError, match="val_acc"):
        _fit(_model(), [ModelCheckpoint(str(tmp_path / "{val_acc}.safetensors"))], epochs=1)


# ---- CSVLogger ---------------------------------------------------------------------------------


def test_csv_logger_writes_sorted_columns_and_appends(tmp_path):
    filename = str(tmp_path / "log.csv")
    model = _model()
    history = model.fit(_X, _Y, epochs=2, verbose=0, validation_split=0.25, callbacks=[CSVLogger(filename)])
    with open(filename, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1]
    for i, row in enumerate(rows[1:]):
        assert float(row[1]) == history.history["loss"][i] and float(row[2]) == history.history["val_loss"][i]
    model.fit(_X, _Y, epochs=1, verbose=0, validation_split=0.25, callbacks=[CSVLogger(filename, append=True)])
    with open(filename, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 4 and rows[0][0] == "epoch" and rows[3][0] == "0"  # no second header
    model.fit(_X, _Y, epochs=1, verbose=0, callbacks=[CSVLogger(filename, separator=";")])
    with open(filename) as f:
        lines = f.read().splitlines()
    assert lines[0] == "epoch;loss" and len(lines) == 2  # overwritten


def test_csv_logger_keeps_a_column_for_skipped_validation(tmp_path):
    filename = str(tmp_path / "log.csv")
    _model().fit(_X, _Y, epochs=2, verbose=0, validation_split=0.25, validation_freq=2, callbacks=[CSVLogger(filename)])
    with open(filename, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["val_loss"] == "NA" and rows[1]["val_loss"] != "NA"


# ---- learning rate -----------------------------------------------------------------------------


def test_learning_rate_scheduler_sets_every_group_and_logs_it():
    model = Sequential([nn.Linear(2, 3), nn.Linear(3, 1)])
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[1].parameters()), "lr": 0.2}]
    model.compile(optimizer=minidl.optim.SGD(groups, lr=0.1), loss="mse")
    seen = []
    record = LambdaCallback(
        on_train_batch_begin=lambda b, logs: seen.append([g["lr"] for g in model.optimizer.param_groups])
    )
    schedule = LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5**epoch)
    history = model.fit(_X, _Y, batch_size=8, epochs=3, verbose=0, callbacks=[schedule, record])
    assert seen == [[0.1, 0.1], [0.05, 0.05], [0.025, 0.025]]
    assert history.history["learning_rate"] == [0.1, 0.05, 0.025]
    one_arg = LearningRateScheduler(lambda epoch: 1.0 / (epoch + 1))
    model.fit(_X, _Y, batch_size=8, epochs=2, verbose=0, callbacks=[one_arg])
    assert model.optimizer.param_groups[1]["lr"] == 0.5
    with pytest.raises(ValueError, match="must return a float"):
        model.fit(_X, _Y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: "fast")])


def test_scheduled_learning_rate_is_the_one_the_step_uses():
    """Two epochs of one full-batch SGD step each, at lr 0.1 then 0.01: the weights equal
    those of a hand-written loop with the same rates."""
    model = _model(lr=0.1)
    expected = _model(lr=0.1)
    expected.load_state_dict(model.state_dict())
    model.fit(
        _X, _Y, batch_size=8, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: [0.1, 0.01][e])]
    )
    w = expected.state_dict()
    x, y = minidl.tensor(_X), minidl.tensor(_Y)
    for lr in (0.1, 0.01):
        out = expected(x)
        loss = ((out - y) ** 2).mean()
        loss.backward()
        with minidl.no_grad():
            for p in expected.parameters():
                p -= lr * p.grad
                p.grad = None
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(v.numpy(), w[k].numpy(), rtol=1e-6)


def test_reduce_lr_on_plateau():
    # patience 1: every non-improving epoch halves the rate; the log holds the rate that epoch used
    model = _model(lr=0.1)
    reduce = ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.01)
    history = _fit(model, [_script("val_loss", [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]), reduce], epochs=7)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.025, 0.0125, 0.01])
    assert model.optimizer.param_groups[0]["lr"] == 0.01  # clamped at min_lr
    # cooldown 2: the epoch after a reduction is not counted, the next one counts again
    model = _model(lr=1.0)
    reduce = ReduceLROnPlateau(factor=0.1, patience=1, cooldown=2)
    history = _fit(model, [_script("val_loss", [1.0] * 6), reduce], epochs=6)
    assert history.history["learning_rate"] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.5)


# ---- the hook protocol -------------------------------------------------------------------------


def test_hooks_are_called_in_keras_order():
    calls = []

    def hook(name):
        return lambda *args: calls.append((name, *[a for a in args if isinstance(a, int)]))

    names = [
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_end",
        "on_test_batch_begin",
        "on_test_batch_end",
    ]
    recorder = LambdaCallback(**{n: hook(n) for n in names})
    _model().fit(_X, _Y, batch_size=4, epochs=2, verbose=0, validation_data=(_X[:3], _Y[:3]), callbacks=[recorder])
    epoch = lambda e: [  # noqa: E731
        ("on_epoch_begin", e),
        ("on_train_batch_begin", 0),
        ("on_train_batch_end", 0),
        ("on_train_batch_begin", 1),
        ("on_train_batch_end", 1),
        ("on_test_begin",),
        ("on_test_batch_begin", 0),
        ("on_test_batch_end", 0),
        ("on_test_end",),
        ("on_epoch_end", e),
    ]
    assert calls == [("on_train_begin",), *epoch(0), *epoch(1), ("on_train_end",)]


def test_batch_logs_are_running_means_and_epoch_logs_reach_every_callback():
    batch_logs, epoch_logs = [], []
    cb = LambdaCallback(
        on_batch_end=lambda b, logs: batch_logs.append(dict(logs)),
        on_epoch_end=lambda e, logs: epoch_logs.append(dict(logs)),
    )
    model = _model(lr=0.0)  # no learning: every batch's loss is fixed
    model.fit(_X, _Y, batch_size=3, epochs=1, verbose=0, shuffle=False, callbacks=[cb])
    out = (_X @ model[0].weight.detach().numpy().T + model[0].bias.detach().numpy() - _Y) ** 2
    per_sample = out[:, 0]
    assert [round(b["loss"], 5) for b in batch_logs] == [round(float(per_sample[:k].mean()), 5) for k in (3, 6, 8)]
    assert epoch_logs[0]["loss"] == pytest.approx(float(per_sample.mean()), rel=1e-6)


def test_evaluate_and_predict_hooks():
    calls = []
    cb = LambdaCallback(
        on_test_begin=lambda logs: calls.append("test_begin"),
        on_test_end=lambda logs: calls.append(("test_end", sorted(logs))),
        on_predict_batch_end=lambda b, logs: calls.append(("predict_batch", b, tuple(logs["outputs"].shape))),
        on_predict_end=lambda logs: calls.append("predict_end"),
    )
    model = _model()
    model.evaluate(_X, _Y, verbose=0, callbacks=[cb])
    model.predict(_X, batch_size=5, callbacks=[cb])
    assert calls == [
        "test_begin",
        ("test_end", ["loss"]),
        ("predict_batch", 0, (5, 1)),
        ("predict_batch", 1, (3, 1)),
        "predict_end",
    ]


def test_terminate_on_nan_and_history():
    model = Sequential([nn.Linear(2, 1)])
    model.compile(optimizer="sgd", loss=lambda p, t: (p - t).abs().mean() * float("nan"))
    history = model.fit(_X, _Y, batch_size=2, epochs=3, verbose=0, callbacks=[TerminateOnNaN()])
    assert history.epoch == [0] and np.isnan(history.history["loss"][0])
    assert model.history is history and isinstance(history, History) and history.model is model


def test_callback_list_only_calls_batch_hooks_that_someone_overrides(monkeypatch):
    silent = CallbackList([EarlyStopping(), CSVLogger(os.devnull)], add_history=True, add_progbar=True, verbose=1)
    assert not silent.wants_train_batch_end and not silent.wants_train_batch_begin  # not a terminal
    assert isinstance(silent.callbacks[-1], ProgbarLogger) and isinstance(silent.callbacks[-2], History)
    listening = CallbackList([TerminateOnNaN(), LambdaCallback(on_train_batch_begin=print)])
    assert listening.wants_train_batch_end and listening.wants_train_batch_begin
    assert not listening.wants_test_batch_end
    with pytest.raises(TypeError, match="not a Callback"):
        CallbackList([lambda: None])
    with pytest.raises(TypeError, match="unknown hook 'on_epoch_ending'"):
        LambdaCallback(on_epoch_ending=print)
