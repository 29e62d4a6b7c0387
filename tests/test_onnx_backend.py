"""onnx's own conformance suite (``onnx.backend.test``), run against minidl's importer.

The node tests are generated in memory from the installed ``onnx`` package (each one a model
with inputs and the reference outputs); the ``pytorch-converted`` and ``pytorch-operator``
models ship as files with it. A test is included when every operator in its graph has a
converter in ``minidl/onnx/ops`` -- so each operator minidl imports is checked on all of
onnx's cases for it, including the ``_expanded`` variants that spell a function op out in
primitive ones. The exclusions below are features minidl deliberately lacks, each with its
reason. CUDA variants skip (the backend runs on the CPU).
"""

from __future__ import annotations

import os
import re
import warnings

import pytest

onnx = pytest.importorskip("onnx")

with warnings.catch_warnings():  # the generators divide by zero on purpose (empty reductions)
    warnings.simplefilter("ignore")
    import onnx.backend.test  # noqa: E402
    from onnx.backend.test.loader import load_model_tests, load_node_model_tests  # noqa: E402

    from minidl.onnx.backend import MinidlBackend  # noqa: E402
    from minidl.onnx.ops import CONVERTERS  # noqa: E402

    backend_test = onnx.backend.test.BackendTest(MinidlBackend, __name__)


def _covered(graph) -> bool:
    return all(node.op_type in CONVERTERS and node.domain in ("", "ai.onnx") for node in graph.node)


def _included_names() -> list[str]:
    names = [case.name for case in load_node_model_tests() if _covered(case.model.graph)]
    for kind in ("pytorch-converted", "pytorch-operator"):
        for case in load_model_tests(kind=kind):
            path = os.path.join(case.model_dir, "model.onnx")
            if _covered(onnx.load(path, load_external_data=False).graph):
                names.append(case.name)
    return names


for _name in _included_names():
    backend_test.include(rf"^{re.escape(_name)}_(cpu|cuda)$")

EXCLUDED = {
    # dtypes minidl does not have (it computes in float32, float64, int32, int64 and bool)
    r"(?i)(b?float16|float8|float4|e8m0|_fp16)": "float16, bfloat16 and 8-/4-bit float dtypes",
    r"(?i)_u?int(2|4|8|16)(_|$)": "int8, int16, uint8, uint16 and 2-/4-bit integer dtypes",
    r"(?i)_uint(32|64)(_|$)": "uint32 and uint64 dtypes",
    r"_string(_|$)": "string tensors",
    r"^test_identity_(sequence|opt)_": "sequence and optional values (minidl imports tensors only)",
    # 3-D convolution and pooling: minidl's kernels are 2-D (1-D runs as 2-D)
    r"(Conv|AvgPool|MaxPool)3d|^test_(maxpool|averagepool)_3d_": "3-D convolution and pooling",
    r"^test_averagepool_2d_dilations_": "dilated average pooling (avg_pool2d has no dilation, as in torch)",
    # Dropout in training mode with a ratio: the expected masks come from NumPy's seeded legacy
    # generator; minidl draws its own (the zero-ratio and inference cases are included)
    r"^test_training_dropout(_default)?(_mask)?_(cpu|cuda)$": "random dropout masks cannot match NumPy's",
}
for _pattern in EXCLUDED:
    backend_test.exclude(_pattern)

globals().update(backend_test.enable_report().test_cases)
