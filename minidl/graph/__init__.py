"""Static graph mode (TensorFlow 1 style) and the bridge from eager code, ``minidl.compile``.

    import minidl
    from minidl import graph as G

    x = G.placeholder((None, 3))
    w = G.Variable(minidl.randn(3, 1))
    loss = ((x @ w) ** 2).mean()
    (gw,) = G.gradients(loss, [w])
    with G.Session() as sess:
        print(sess.run([loss, gw], feed_dict={x: np.ones((4, 3), np.float32)}))

Files, bottom up: ``symbolic.py`` (the symbolic tensor), ``ir.py`` (nodes and graphs),
``build.py`` (what the op layer does on symbols), ``variables.py``, ``gradients.py``,
``passes/`` (the optimizer), ``memory.py`` (liveness and buffer planning), ``program.py``
(code generation of the flat schedule), ``session.py``, ``inspect.py`` (listing and DOT),
``stepper.py`` (step-through execution), ``nest.py`` (nested fetches and results), ``trace.py``
and ``compile.py`` (``minidl.compile``), ``control.py`` (``cond``).
"""

from . import build as _build
from .build import constant, stop_gradient
from .compile import CompiledFunction, RetraceWarning, compile
from .control import cond
from .gradients import gradients
from .ir import Graph, GraphError, Node, Output, get_default_graph, reset_default_graph
from .session import Session
from .symbolic import SymbolicTensor, TracingError
from .variables import (
    Variable,
    assign,
    global_variables_initializer,
    placeholder,
    trainable_variables,
    variables_initializer,
)

_build.register()

__all__ = [
    "CompiledFunction",
    "RetraceWarning",
    "compile",
    "cond",
    "Graph",
    "GraphError",
    "Node",
    "Output",
    "Session",
    "SymbolicTensor",
    "TracingError",
    "Variable",
    "assign",
    "constant",
    "get_default_graph",
    "global_variables_initializer",
    "gradients",
    "placeholder",
    "reset_default_graph",
    "stop_gradient",
    "trainable_variables",
    "variables_initializer",
]
