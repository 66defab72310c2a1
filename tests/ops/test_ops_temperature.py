"""Tensor temperature in the functional ops: a 0-d or per-channel (C,) tensor runs as
T * softpool_1(x / T) around the fused op. Checked against an independent float64 loop over the
windows (output and dy/dT = -Var_s(x) / T^2), gradcheck/gradgradcheck in float64 for every function,
the float path (unchanged: the fused op alone), validation, torch.compile and ONNX export."""

from __future__ import annotations

import importlib.util
import itertools
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import softpool_video as sv
from softpool_video.ops import HAVE_EXTENSION


def _adaptive_bounds(i: int, size: int, out: int) -> tuple[int, int]:
    return (i * size) // out, -((-(i + 1) * size) // out)


def _window_taps_1d(size, out, kernel, stride, padding, dilation, adaptive):
    """For each output index, the input indices of its window (padding excluded)."""
    taps = []
    for i in range(out):
        if adaptive:
            start, end = _adaptive_bounds(i, size, out)
            taps.append(list(range(start, end)))
        else:
            positions = [i * stride - padding + k * dilation for k in range(kernel)]
            taps.append([p for p in positions if 0 <= p < size])
    return taps


def reference_with_temperature_derivative(x, out_size, kernel, stride, padding, dilation, adaptive, temps):
    """Float64 loop over windows of a 5-D x: returns (y, dy/dT) per output, with T = temps[c] and
    y = sum_i s_i x_i, s = softmax(x / T) over the window, dy/dT = -Var_s(x) / T^2."""
    n, c = x.shape[:2]
    axes = [
        _window_taps_1d(x.shape[2 + d], out_size[d], kernel[d], stride[d], padding[d], dilation[d], adaptive)
        for d in range(3)
    ]
    y = torch.zeros(n, c, *out_size, dtype=torch.float64)
    dy_dt = torch.zeros_like(y)
    for b, ch in itertools.product(range(n), range(c)):
        t = float(temps[ch])
        for o in itertools.product(*(range(s) for s in out_size)):
            values = [
                float(x[b, ch, i, j, k]) for i in axes[0][o[0]] for j in axes[1][o[1]] for k in axes[2][o[2]]
            ]
            top = max(values)
            weights = [math.exp((v - top) / t) for v in values]
            total = sum(weights)
            s = [w / total for w in weights]
            mean = sum(si * v for si, v in zip(s, values))
            variance = sum(si * (v - mean) ** 2 for si, v in zip(s, values))
            y[(b, ch, *o)] = mean
            dy_dt[(b, ch, *o)] = -variance / t**2
    return y, dy_dt


# name -> (function, dims, keyword arguments after x)
CASES = {
    "1d": (sv.soft_pool1d, 1, dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    "2d": (sv.soft_pool2d, 2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    "3d": (sv.soft_pool3d, 3, dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(0, 1, 1))),
    "adaptive_1d": (sv.adaptive_soft_pool1d, 1, dict(output_size=3)),
    "adaptive_2d": (sv.adaptive_soft_pool2d, 2, dict(output_size=(3, None))),
    "adaptive_3d": (sv.adaptive_soft_pool3d, 3, dict(output_size=(2, 3, 2))),
}
SPATIAL = {1: (7,), 2: (5, 6), 3: (4, 5, 6)}
GRADCHECK_SPATIAL = {1: (6,), 2: (4, 5), 3: (3, 4, 4)}


def _geometry_3d(name, dims, kwargs, spatial):
    """The 3-D window geometry of a case, computed independently of the package."""
    lift = lambda v, fill: (fill,) * (3 - dims) + (tuple(v) if isinstance(v, tuple) else (v,) * dims)
    sizes = (1,) * (3 - dims) + spatial
    if name.startswith("adaptive"):
        requested = kwargs["output_size"]
        requested = requested if isinstance(requested, tuple) else (requested,) * dims
        out = (1,) * (3 - dims) + tuple(s if r is None else r for r, s in zip(requested, spatial))
        return out, (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), True
    kernel = lift(kwargs["kernel_size"], 1)
    stride = lift(kwargs.get("stride", kwargs["kernel_size"]), 1)
    padding = lift(kwargs.get("padding", 0), 0)
    dilation = lift(kwargs.get("dilation", 1), 1)
    ceil = kwargs.get("ceil_mode", False)
    out = []
    for size, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        o = (-(-span // s) if ceil else span // s) + 1
        if ceil and (o - 1) * s >= size + p:
            o -= 1
        out.append(o)
    return tuple(out), kernel, stride, padding, dilation, False


def _to_5d(t, dims):
    for _ in range(3 - dims):
        t = t.unsqueeze(2)
    return t


@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar", "per_channel"])
@pytest.mark.parametrize("name", list(CASES))
def test_output_and_temperature_gradient_match_a_float64_loop(name, per_channel):
    fn, dims, kwargs = CASES[name]
    channels = 3
    x = (torch.randn(2, channels, *SPATIAL[dims], dtype=torch.float64) * 2).requires_grad_(False)
    values = [0.4, 1.0, 2.5] if per_channel else [0.7]
    temperature = torch.tensor(values if per_channel else values[0], dtype=torch.float64, requires_grad=True)
    y = fn(x, **kwargs, temperature=temperature)
    upstream = torch.randn_like(y)
    (grad_t,) = torch.autograd.grad((y * upstream).sum(), temperature)

    geometry = _geometry_3d(name, dims, kwargs, SPATIAL[dims])
    temps = values if per_channel else values * channels
    expected_y, dy_dt = reference_with_temperature_derivative(_to_5d(x, dims), *geometry, temps)
    torch.testing.assert_close(_to_5d(y, dims), expected_y, rtol=1e-12, atol=1e-12)
    # dL/dT = sum_w g_w dy_w/dT, summed per channel (or over everything for one temperature)
    per_channel_sum = (_to_5d(upstream, dims) * dy_dt).sum(dim=(0, 2, 3, 4))
    expected_grad = per_channel_sum if per_channel else per_channel_sum.sum()
    torch.testing.assert_close(grad_t, expected_grad, rtol=1e-10, atol=1e-12)


def test_temperature_derivative_by_hand():
    """Window [0, 1] at T = 1: s = (1, e) / (1 + e), Var_s = e / (1 + e)^2, so dy/dT = -e / (1 + e)^2."""
    x = torch.tensor([[[0.0, 1.0]]], dtype=torch.float64)
    t = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    y = sv.soft_pool1d(x, 2, temperature=t)
    (grad,) = torch.autograd.grad(y.sum(), t)
    e = math.e
    assert y.item() == pytest.approx(e / (1 + e), rel=1e-14)
    assert grad.item() == pytest.approx(-e / (1 + e) ** 2, rel=1e-12)


@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar", "per_channel"])
@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_and_gradgradcheck_in_float64(name, per_channel):
    fn, dims, kwargs = CASES[name]
    x = torch.randn(1, 3, *GRADCHECK_SPATIAL[dims], dtype=torch.float64, requires_grad=True)
    values = [0.6, 1.3, 2.0] if per_channel else 0.8
    t = torch.tensor(values, dtype=torch.float64, requires_grad=True)

    def pool(x, t):
        return fn(x, **kwargs, temperature=t)

    assert torch.autograd.gradcheck(pool, (x, t))
    # fast mode: the second derivatives checked along random directions (full Jacobians are slow)
    assert torch.autograd.gradgradcheck(pool, (x, t), fast_mode=True)


def test_tensor_temperature_equals_the_float_path():
    x = torch.randn(2, 4, 6, 8, 8)
    t = torch.tensor([0.3, 0.9, 1.0, 4.0])
    got = sv.soft_pool3d(x, 3, 2, 1, temperature=t)
    for c in range(4):
        expected = sv.soft_pool3d(x[:, c : c + 1], 3, 2, 1, temperature=float(t[c]))
        torch.testing.assert_close(got[:, c : c + 1], expected, rtol=1e-5, atol=1e-6)
    scalar = sv.adaptive_soft_pool3d(x, (2, 3, 3), temperature=torch.tensor(0.5))
    torch.testing.assert_close(scalar, sv.adaptive_soft_pool3d(x, (2, 3, 3), temperature=0.5))


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(not HAVE_EXTENSION, reason="the compiled extension is needed to see the fused op")
def test_a_float_temperature_runs_the_fused_op_alone():
    x = torch.randn(1, 2, 4, 6, 6)
    with _RecordOps() as float_path:
        sv.soft_pool3d(x, 2, temperature=0.5)
    assert float_path.ops == ["softpool_video.soft_pool3d.default"], float_path.ops
    with _RecordOps() as tensor_path:
        sv.soft_pool3d(x, 2, temperature=torch.tensor(0.5))
    assert "softpool_video.soft_pool3d.default" in tensor_path.ops
    assert any("div" in op for op in tensor_path.ops) and any("mul" in op for op in tensor_path.ops)


def test_half_input_keeps_its_dtype_with_a_float32_temperature():
    x = torch.randn(1, 2, 4, 6, 6).to(torch.bfloat16)
    t = torch.tensor([0.5, 2.0], requires_grad=True)
    y = sv.soft_pool3d(x, 2, temperature=t)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert t.grad is not None and t.grad.dtype == torch.float32


@pytest.mark.parametrize(
    "temperature, message",
    [
        (torch.ones(2), r"temperature must be .*shape \(C,\) = \(3,\)"),
        (torch.ones(3, 1), r"temperature must be .*got a tensor of shape \(3, 1\)"),
        (torch.ones(1), r"temperature must be .*\(C,\) = \(3,\)"),
        (torch.tensor(2), "temperature tensor must be floating point"),
        (0.0, "temperature must be a finite number > 0"),
        (-1.0, "temperature must be a finite number > 0"),
        (float("inf"), "temperature must be a finite number > 0"),
        ("warm", "temperature must be a positive number"),
    ],
)
def test_bad_temperatures_name_the_argument(temperature, message):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=message):
        sv.soft_pool2d(x, 2, temperature=temperature)
    with pytest.raises(ValueError, match=message):
        sv.adaptive_soft_pool2d(x, 2, temperature=temperature)


def test_unbatched_input_takes_a_per_channel_temperature():
    x = torch.randn(3, 9)
    t = torch.tensor([0.5, 1.0, 2.0])
    torch.testing.assert_close(
        sv.soft_pool1d(x, 3, temperature=t), sv.soft_pool1d(x[None], 3, temperature=t)[0]
    )


@pytest.mark.slow
def test_compile_fullgraph_with_a_learned_temperature_matches_eager():
    torch._dynamo.reset()
    model = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 1),
        sv.SoftPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1), learn_temperature=True, num_channels=4),
        sv.AdaptiveSoftPool3d(1, temperature=0.5, learn_temperature=True),
    )
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 2, 3, 9, 9)
    y, expected = compiled(x), model(x)
    torch.testing.assert_close(y, expected)
    params = [model[1].log_temperature, model[2].log_temperature]
    got = torch.autograd.grad(y.square().sum(), params)
    want = torch.autograd.grad(expected.square().sum(), params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
        assert g.abs().sum() > 0


HAVE_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript"))


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ONNX, reason="onnx, onnxruntime and onnxscript are not installed")
def test_onnx_export_with_learned_temperatures_runs_in_onnxruntime():
    import onnxruntime
    from torch.export import Dim

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 1),
        sv.SoftPool2d(3, 2, 1, learn_temperature=True, num_channels=4),
        sv.AdaptiveSoftPool2d(2, temperature=2.0, learn_temperature=True),
    ).eval()
    with torch.no_grad():  # learned values, not the initial ones
        model[1].log_temperature.copy_(torch.tensor([-1.0, 0.0, 0.5, 1.5]))
    program = torch.onnx.export(
        model,
        (torch.randn(2, 3, 11, 13),),
        dynamo=True,
        dynamic_shapes=({0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC},),
        verbose=False,
    )
    proto = program.model_proto
    assert {node.domain for node in proto.graph.node} <= {"", "ai.onnx"}
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 14, 10)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4)
