"""``minidl.nn``: neural-network building blocks with PyTorch's names.

``Module`` and ``Parameter`` (``module.py``, ``parameter.py``) are the base of every layer;
``container.py`` holds ``Sequential``, ``ModuleList`` and ``ModuleDict``; each family of
layers has its own file (``linear.py``, ``conv.py``, ``rnn.py``, ...). ``functional`` holds
the stateless functions the layers call, ``init`` the weight initializations, ``utils``
gradient clipping.
"""

from . import functional, init, utils
from .activation import *
from .attention import *
from .container import *
from .conv import *
from .dropout import *
from .flatten import *
from .linear import *
from .loss import *
from .module import *
from .normalization import *
from .parameter import *
from .pooling import *
from .rnn import *
from .sparse import *
from .transformer import *
