"""THE op set of minidl: every primitive defined once (forward, vjp, infer), plus the
functions that call them. Importing this package also attaches the ops to ``Tensor`` as
methods and operators (see ``methods.py``).

Files, one family each: ``op.py`` (what an op is, how it is applied and recorded),
``arith.py`` and ``unary.py`` (elementwise), ``reduce.py``, ``shape.py``, ``index.py``,
``linalg.py``, ``activation.py``, ``softmax.py``, ``conv.py``, ``pool.py``, ``cast.py``,
``creation.py`` and ``inplace.py``.
"""

from . import (
    activation,
    arith,
    cast,
    conv,
    creation,
    index,
    inplace,
    linalg,
    methods,
    pool,
    reduce,
    shape,
    unary,
)
from .activation import elu, gelu, leaky_relu, relu, silu, softplus
from .arith import (
    add,
    bitwise_and,
    bitwise_or,
    bitwise_xor,
    clamp,
    div,
    eq,
    floor_divide,
    ge,
    gt,
    le,
    logical_and,
    logical_or,
    logical_xor,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    pow,
    remainder,
    sub,
    where,
)
from .cast import to
from .creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .index import gather, index_select, masked_fill, scatter_add
from .linalg import bmm, dot, matmul, mm
from .op import Op, ShapeError, Spec, apply
from .reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    broadcast_to,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    norm,
    prod,
    std,
    sum,
    var,
)
from .shape import (
    cat,
    chunk,
    clone,
    flatten,
    flip,
    narrow,
    permute,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    tril,
    triu,
    unsqueeze,
)
from .softmax import log_softmax, softmax
from .unary import (
    abs,
    ceil,
    cos,
    erf,
    exp,
    expm1,
    floor,
    log,
    log1p,
    logical_not,
    neg,
    reciprocal,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    tanh,
    trunc,
)

methods.attach()

clip = clamp
concat = cat
concatenate = cat
negative = neg
multiply = mul
subtract = sub
divide = div
true_divide = div
