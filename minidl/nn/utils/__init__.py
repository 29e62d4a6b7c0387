"""``minidl.nn.utils``: helpers around training (gradient clipping)."""

from .clip_grad import *
