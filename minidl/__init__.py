"""minidl: a small, readable deep-learning engine with PyTorch's eager API.

    import minidl
    x = minidl.randn(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x

Layers, bottom to top: ``dtypes`` and ``backend`` (devices, kernels), ``tensor`` and ``tape``
(the Tensor and the recorded graph), ``ops`` (every primitive, defined once), ``autograd``
(the backward engine); then ``nn`` (modules, layers, losses), ``optim`` (optimizers and
learning-rate schedules), ``data`` (datasets and loaders), ``models`` (Keras-style ``Model``
with ``compile``/``fit``), and ``save``/``load`` for checkpoints.
"""

import warnings

from . import (  # noqa: E402
    autograd,
    cuda,  # noqa: E402
    data,
    dtypes,
    graph,
    models,
    nn,
    ops,  # noqa: E402  (attaches the op methods to Tensor)
    optim,
)
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from .backend import device
from .backend.threads import get_num_threads, set_num_threads
from .dtypes import bool_, float32, float64, get_default_dtype, int32, int64, set_default_dtype
from .graph import compile, cond  # noqa: A004
from .nn.torch_weights import from_torch_state_dict
from .ops import *  # noqa: E402,F401,F403
from .ops import ShapeError, Spec  # noqa: E402
from .ops.creation import from_dlpack
from .serialization import load, save
from .tensor import Tensor

bool = bool_  # noqa: A001  (minidl.bool, as torch.bool)
float = float32  # noqa: A001
double = float64
long = int64
int = int32  # noqa: A001

# Like torch, minidl lets floating-point exceptions produce inf and nan silently (find them
# with autograd.detect_anomaly). NumPy would warn from inside minidl's own op code; only those
# warnings, attributed to minidl's modules, are silenced -- a user's NumPy code still warns.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"minidl(\.|$)")

__version__ = "0.1.0"
