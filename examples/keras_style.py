"""Train a digit classifier the Keras way: ``Sequential`` + ``compile`` + ``fit``.

    python examples/keras_style.py            # a small CNN on the 8 x 8 digits, about 20 seconds
    python examples/keras_style.py --small    # a few seconds

The same model in PyTorch's style would be an ``nn.Sequential`` and a hand-written loop (see
examples/quickstart.py); here ``fit`` runs that loop, reports the loss and accuracy of every
epoch with a progress bar, validates on a held-out tenth of the training set, stops early when
the validation loss stops improving (restoring the best weights), keeps the best checkpoint on
disk and logs every epoch to a CSV file. ``evaluate`` and ``predict`` then measure the test set.

The data are scikit-learn's 8 x 8 handwritten digits (``minidl.data.datasets.Digits``, bundled
offline); without scikit-learn, a synthetic ten-class problem of the same shape stands in.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import minidl
import minidl.optim
from minidl import nn
from minidl.models import Sequential
from minidl.models.callbacks import CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): images 1 x 8 x 8 in [0, 1], labels 0..9."""
    try:
        from minidl.data.datasets import Digits

        x_train, y_train = Digits(train=True).as_tensors()
        x_test, y_test = Digits(train=False).as_tensors()
        return x_train.numpy(), y_train.numpy(), x_test.numpy(), y_test.numpy()
    except (ImportError, OSError, RuntimeError):
        # Synthetic stand-in: ten noisy prototype images, one per class.
        rng = np.random.default_rng(0)
        prototypes = rng.random((10, 1, 8, 8))
        labels = rng.integers(0, 10, 1800)
        images = np.clip(prototypes[labels] + rng.normal(0, 0.25, (1800, 1, 8, 8)), 0, 1).astype(np.float32)
        return images[:1440], labels[:1440], images[1440:], labels[1440:]


def build_model(channels: int) -> Sequential:
    """A small convolutional network: conv -> pool -> conv -> dense, logits out."""
    model = Sequential(name="digits_cnn")
    model.add(nn.Conv2d(1, channels, kernel_size=3, padding=1))  # 8 x 8
    model.add(nn.ReLU())
    model.add(nn.MaxPool2d(2))  # 4 x 4
    model.add(nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1))
    model.add(nn.ReLU())
    model.add(nn.Flatten())
    model.add(nn.Dropout(0.2))
    model.add(nn.Linear(2 * channels * 16, 10))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="tiny settings: a few seconds")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.small else 30)
    channels = 4 if args.small else 16

    minidl.manual_seed(0)
    x_train, y_train, x_test, y_test = load_digits()
    if args.small:
        x_train, y_train = x_train[:400], y_train[:400]

    model = build_model(channels)
    # 'cross_entropy' is minidl's (and PyTorch's): it takes the logits the model returns.
    # The Keras spelling of the same loss is SparseCategoricalCrossentropy(from_logits=True).
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])

    with tempfile.TemporaryDirectory() as run_dir:
        best_path = os.path.join(run_dir, "best.safetensors")
        # Callbacks run in this order at each hook: the scheduler logs 'learning_rate' before
        # the CSV logger writes the row.
        callbacks = [
            LearningRateScheduler(lambda epoch, lr: lr if epoch < 10 else lr * 0.9),
            EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True, verbose=1),
            ModelCheckpoint(best_path, monitor="val_accuracy", save_best_only=True, save_weights_only=True),
            CSVLogger(os.path.join(run_dir, "log.csv")),
        ]
        history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.1, callbacks=callbacks)
        model.summary()

        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f} (after {len(history.epoch)} epochs)")
        best_val = max(history.history["val_accuracy"])
        print(f"best validation accuracy {best_val:.4f}, checkpoint at {os.path.basename(best_path)}")
        with open(os.path.join(run_dir, "log.csv")) as f:
            print("CSV log header:", f.readline().strip())

    predictions = model.predict(x_test[:10]).numpy().argmax(axis=1)
    print("first ten test digits:", y_test[:10].tolist())
    print("predicted:            ", predictions.tolist())


if __name__ == "__main__":
    main()
