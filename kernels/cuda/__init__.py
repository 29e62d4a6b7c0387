"""CUDA kernels for the GPU, written in CUDA C and loaded by CuPy's ``RawModule``.

The same plain array-in, array-out functions as ``kernels/reference`` (same signatures and
semantics), on CuPy arrays:

* ``matmul.cu`` + ``matmul.py``: a tiled, register-blocked GEMM (``matmul``); ``matmul_cublas``
  is ``cupy.matmul``, the reference path;
* ``conv.cu`` + ``conv.py``: conv2d forward and both backward passes (im2col / col2im + GEMM);
* ``pool.cu`` + ``pool.py``: max and average pooling, forward and backward;
* ``softmax.py``, ``special.py``, ``index.py``: fused log-softmax + NLL, ``erf`` and
  scatter-add (``index_add``) as CuPy array code.

Importing this package does not import CuPy; the ``.cu`` sources are compiled on first use
(``loader.py``). ``SOURCES`` names every ``.cu`` file.
"""

from .conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward
from .loader import SOURCES, source_path
from .matmul import matmul, matmul_cublas
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .softmax import log_softmax_nll
from .special import erf

__all__ = [
    "SOURCES",
    "source_path",
    "matmul",
    "matmul_cublas",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "log_softmax_nll",
    "erf",
]
