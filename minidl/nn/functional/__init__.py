"""``minidl.nn.functional``: activations, linear and convolution layers, pooling,
normalization, dropout, embeddings and losses as functions, with torch's names and arguments.

The activations, softmax and convolution are primitives from ``minidl/ops``; the rest are
compositions of primitives defined in this package.
"""

from ...ops.activation import elu, gelu, leaky_relu, relu, relu_, silu, softplus
from ...ops.shape import pad
from ...ops.softmax import log_softmax, softmax
from ...ops.unary import sigmoid, tanh
from .attention import multi_head_attention_forward, scaled_dot_product_attention
from .basic import dropout, embedding, linear, one_hot
from .conv import avg_pool2d, conv2d, max_pool2d
from .loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from .normalization import batch_norm, layer_norm
from .pooling import adaptive_avg_pool2d, adaptive_max_pool2d

__all__ = [
    "scaled_dot_product_attention",
    "multi_head_attention_forward",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
] + [
    "relu",
    "relu_",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "softplus",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "linear",
    "dropout",
    "one_hot",
    "embedding",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "pad",
    "layer_norm",
    "batch_norm",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "nll_loss",
    "cross_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]
