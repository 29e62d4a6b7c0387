"""NumPy reference kernels: matmul, im2col convolution and pooling, written for clarity."""

from .conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward, conv2d_output_size
from .index import index_add
from .matmul import matmul
from .pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    pool_output_size,
)
from .relu import relu_backward, relu_forward
from .softmax import log_softmax_nll

__all__ = [
    "matmul",
    "index_add",
    "log_softmax_nll",
    "relu_forward",
    "relu_backward",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_output_size",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "pool_output_size",
]
