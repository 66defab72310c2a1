"""Dynamic shapes and deployment: torch.compile(dynamic=True, fullgraph=True) compiles one graph for
changing N/T/H/W, torch.export with dynamic dimensions runs at new sizes and survives save/load,
and torch.onnx.export(..., dynamo=True) gives standard ONNX ops that onnxruntime runs."""

from __future__ import annotations

import importlib.util
import io

import pytest
import torch
from torch._dynamo.utils import counters
from torch.export import Dim

import softpool_video as sv


def _pools_3d():
    return torch.nn.Sequential(
        sv.SoftPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1), ceil_mode=True, temperature=0.7),
        sv.SoftPool3d(2, dilation=(1, 2, 1), padding=(1, 0, 0)),
        sv.AdaptiveSoftPool3d((1, None, 2)),
    )


# Sizes >= 2 everywhere (also after pooling: torch specialises sizes 0 and 1) and distinct per
# dimension in the first call (equal sizes would be traced as one symbol and recompile later).
SHAPES = [(2, 3, 6, 22, 26), (3, 3, 8, 30, 34), (4, 3, 7, 27, 23)]


@pytest.mark.slow
def test_compile_dynamic_fullgraph_compiles_once():
    torch._dynamo.reset()
    counters.clear()
    model = _pools_3d()
    compiled = torch.compile(model, dynamic=True, fullgraph=True)
    for shape in SHAPES:
        x = torch.randn(shape, requires_grad=True)
        y, expected = compiled(x), model(x)
        torch.testing.assert_close(y, expected)
        (grad,) = torch.autograd.grad(y.square().sum(), x)
        (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
        torch.testing.assert_close(grad, expected_grad)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


def _export(model, example, dims):
    return torch.export.export(model, (example,), dynamic_shapes=({d: Dim.DYNAMIC for d in dims},))


def test_export_with_dynamic_sizes_runs_at_new_sizes_and_round_trips():
    model = _pools_3d()
    program = _export(model, torch.randn(SHAPES[0]), (0, 2, 3, 4))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    # the fused op (its inference form when nothing requires grad), not a decomposition
    assert ops & {"softpool_video.soft_pool3d.default", "softpool_video.soft_pool3d_inference.default"}
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    for shape in SHAPES[1:]:
        x = torch.randn(shape)
        torch.testing.assert_close(program.module()(x), model(x))
        torch.testing.assert_close(loaded.module()(x), model(x))


HAVE_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript"))
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX,
    reason="onnx, onnxruntime and onnxscript are not installed (pip install softpool_video[export])",
)

ONNX_CASES = {
    "1d": (lambda: sv.SoftPool1d(3, 2, 1, 2, True, 0.5), (2, 3, 17), (3, 3, 23), (0, 2)),
    "2d": (
        lambda: sv.SoftPool2d((3, 2), (2, 1), (1, 0), 1, True, 2.0),
        (2, 3, 9, 11),
        (1, 3, 12, 7),
        (0, 2, 3),
    ),
    "3d_stem": (lambda: sv.SoftPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)), SHAPES[0], SHAPES[1], (0, 2, 3, 4)),
    "3d_dilated": (
        lambda: sv.SoftPool3d(3, 2, 1, 2, False, 0.3),
        (2, 2, 7, 9, 11),
        (3, 2, 9, 12, 10),
        (0, 2, 3, 4),
    ),
    "adaptive_1d": (lambda: sv.AdaptiveSoftPool1d(4, 0.8), (2, 3, 17), (3, 3, 30), (0, 2)),
    "adaptive_2d": (lambda: sv.AdaptiveSoftPool2d((3, None)), (2, 3, 9, 11), (3, 3, 14, 6), (0, 2, 3)),
    "adaptive_3d": (
        lambda: sv.AdaptiveSoftPool3d((1, 2, 3), 1.5),
        (2, 4, 8, 7, 7),
        (3, 4, 5, 9, 11),
        (0, 2, 3, 4),
    ),
}


def _onnx_session(model, example, dims):
    import onnxruntime

    program = torch.onnx.export(
        model, (example,), dynamo=True, dynamic_shapes=({d: Dim.DYNAMIC for d in dims},), verbose=False
    )
    proto = program.model_proto
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return proto, session


@pytest.mark.slow
@needs_onnx
@pytest.mark.parametrize("name", list(ONNX_CASES))
def test_onnx_export_runs_in_onnxruntime(name):
    build, example_shape, other_shape, dims = ONNX_CASES[name]
    model = torch.nn.Sequential(build()).eval()
    proto, session = _onnx_session(model, torch.randn(example_shape), dims)
    node_types = {node.op_type for node in proto.graph.node}
    assert {node.domain for node in proto.graph.node} <= {"", "ai.onnx"}, "only standard ONNX ops"
    assert "ReduceMax" in node_types  # the window max is subtracted in the exported graph too
    for shape, scale in ((example_shape, 1.0), (other_shape, 1.0), (other_shape, 1e4)):
        x = torch.randn(shape) * scale
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        expected = model(x)
        assert got.shape == tuple(expected.shape)
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.slow
@needs_onnx
def test_onnx_export_of_a_model_with_softpool():
    model = torch.nn.Sequential(
        torch.nn.Conv3d(3, 8, 3, padding=1),
        sv.SoftPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        torch.nn.ReLU(),
        sv.AdaptiveSoftPool3d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()
    _, session = _onnx_session(model, torch.randn(2, 3, 4, 16, 18), (0, 2, 3, 4))
    x = torch.randn(3, 3, 6, 20, 14)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-4)
