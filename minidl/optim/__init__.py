"""``minidl.optim``: optimizers and learning-rate schedulers, with torch's names and semantics.

``Optimizer`` (``optimizer.py``) holds the parameter groups and the per-parameter state; each
optimizer file defines one update rule twice over -- as a plain function on raw arrays
(``sgd_update``, ``adam_update``, ...), which does the arithmetic in place, and as the class
that keeps the state and calls it. ``lr_scheduler`` changes the groups' learning rates (and
momenta) over training.

    opt = minidl.optim.AdamW(model.parameters(), lr=1e-3)
    sched = minidl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()
"""

from . import lr_scheduler
from .adagrad import Adagrad, adagrad_update
from .adam import Adam, AdamW, adam_update
from .optimizer import Optimizer
from .rmsprop import RMSprop, rmsprop_update
from .sgd import SGD, sgd_update

__all__ = [
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "SGD",
    "adagrad_update",
    "adam_update",
    "lr_scheduler",
    "rmsprop_update",
    "sgd_update",
]
