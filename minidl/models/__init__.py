"""``minidl.models``: Keras's training API on top of minidl's modules, optimizers and data.

    from minidl import nn
    from minidl.models import Sequential
    from minidl.models.callbacks import EarlyStopping

    model = Sequential([nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)])
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[EarlyStopping(patience=2)])

Files, one idea each: ``model.py`` (``Model``: compile, fit, evaluate, predict, summary, weights;
``Sequential``), ``training.py`` (the loops and the batching of the data), ``losses.py`` and
``metrics.py`` (Keras's losses and metrics, and how names resolve), ``callbacks.py`` (the hooks
into the loops: History, EarlyStopping, ModelCheckpoint, ...), ``progress.py`` (the progress
bar). This package sits above ``nn``, ``optim`` and ``data``; see docs/keras.md.
"""

from . import callbacks, losses, metrics
from .callbacks import (
    Callback,
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
from .model import Model, Sequential
from .progress import Progbar

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "Model",
    "ModelCheckpoint",
    "Progbar",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "Sequential",
    "TerminateOnNaN",
    "callbacks",
    "losses",
    "metrics",
]
