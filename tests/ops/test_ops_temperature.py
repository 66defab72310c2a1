"""Tensor temperature in the functional ops: a 0-d or per-channel (C,) tensor runs in the tempered
op, whose fused backward returns dL/dx and g * dy/dT per window (dy/dT = -Var_s(x) / T^2). Checked
against an independent float64 loop over the windows (output and dy/dT), on every CPU fast path and
the shared scalar body, special values, gradcheck/gradgradcheck in float64 for every function, the
raw op's argument checks, the memory it saves, validation, torch.compile and ONNX export."""

from __future__ import annotations

import importlib.util
import itertools
import math

import pytest
import torch
from dispatch_recorder import RecordOps

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
        expected = sv.soft_pool3d(x[:, c : c + 1], 3, 2, 1, temperature=float(t[c].detach()))
        torch.testing.assert_close(got[:, c : c + 1], expected, rtol=1e-5, atol=1e-6)
    scalar = sv.adaptive_soft_pool3d(x, (2, 3, 3), temperature=torch.tensor(0.5))
    torch.testing.assert_close(scalar, sv.adaptive_soft_pool3d(x, (2, 3, 3), temperature=0.5))



@pytest.mark.skipif(not HAVE_EXTENSION, reason="the compiled extension is needed to see the fused op")
def test_float_and_tensor_temperatures_each_run_one_fused_op_and_one_fused_backward():
    x = torch.randn(1, 2, 4, 6, 6, requires_grad=True)
    with RecordOps() as float_path:
        sv.soft_pool3d(x, 2, temperature=0.5)
    assert [op for op in float_path.ops if "softpool" in op] == ["softpool_video.soft_pool3d.default"]
    t = torch.tensor(0.5, requires_grad=True)
    with RecordOps() as forward:
        y = sv.soft_pool3d(x, 2, temperature=t)
    with RecordOps() as backward:
        y.sum().backward()
    # no x / T or T * y around the op: the kernels take T (no input-sized temporaries)
    assert [op for op in forward.ops if "softpool" in op] == ["softpool_video.soft_pool3d_tempered.default"]
    assert not any("div" in op or "mul" in op for op in forward.ops), forward.ops
    assert [op for op in backward.ops if "softpool" in op] == [
        "softpool_video.soft_pool3d_tempered_backward.default"
    ]
    assert t.grad is not None and x.grad is not None


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


def test_second_derivative_in_temperature_matches_the_moments():
    """With b = 1/T, dy/db = Var_s(x) and d2y/db2 = E_s[(x - y)^3], so
    d2y/dT2 = 2 Var_s(x) / T^3 + E_s[(x - y)^3] / T^4 (checked window by window in float64)."""
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64) * 1.5
    t = torch.tensor([0.7, 1.6], dtype=torch.float64, requires_grad=True)
    y = sv.soft_pool2d(x, (3, 2), (2, 2), (1, 0), temperature=t)
    upstream = torch.randn_like(y)
    (grad,) = torch.autograd.grad((y * upstream).sum(), t, create_graph=True)
    second = torch.stack([torch.autograd.grad(grad[c], t, retain_graph=True)[0][c] for c in range(2)])

    expected = torch.zeros(2, dtype=torch.float64)
    out_h, out_w = y.shape[-2:]
    for c in range(2):
        temp = float(t[c].detach())
        for i in range(out_h):
            for j in range(out_w):
                rows = [r for r in range(2 * i - 1, 2 * i + 2) if 0 <= r < 5]
                cols = [q for q in range(2 * j, 2 * j + 2) if 0 <= q < 6]
                values = [float(x[0, c, r, q]) for r in rows for q in cols]
                top = max(values)
                weights = [math.exp((v - top) / temp) for v in values]
                s = [w / sum(weights) for w in weights]
                mean = sum(si * v for si, v in zip(s, values))
                variance = sum(si * (v - mean) ** 2 for si, v in zip(s, values))
                third = sum(si * (v - mean) ** 3 for si, v in zip(s, values))
                expected[c] += float(upstream[0, c, i, j]) * (2 * variance / temp**3 + third / temp**4)
    torch.testing.assert_close(second, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The fused kernels: every CPU plan and the shared scalar body against the float64 loop.

FUSED_CASES = {
    # name -> (input shape, pool keyword arguments of soft_pool3d / adaptive_soft_pool3d, expected plan)
    "rows": ((2, 3, 3, 9, 40), dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), "rows"),
    "rows_k2": ((1, 2, 4, 6, 36), dict(kernel_size=2), "rows"),
    "windows": ((2, 3, 4, 5, 5), dict(output_size=1), "windows"),
    "channels_short_rows": ((1, 9, 3, 5, 5), dict(kernel_size=3, stride=2, padding=1), "channels"),
    "scalar_dilated": ((1, 2, 5, 7, 7), dict(kernel_size=3, stride=1, dilation=2), "scalar"),
}


def _fused_case(name):
    shape, kwargs, plan = FUSED_CASES[name]
    if "output_size" in kwargs:
        return shape, (lambda x, t: sv.adaptive_soft_pool3d(x, kwargs["output_size"], temperature=t)), plan
    return shape, (lambda x, t: sv.soft_pool3d(x, **kwargs, temperature=t)), plan


def _loop_geometry(name, shape):
    _, kwargs, _ = FUSED_CASES[name]
    if "output_size" in kwargs:
        return ((1, 1, 1), (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), True)
    triple = lambda v: v if isinstance(v, tuple) else (v,) * 3
    kernel = triple(kwargs["kernel_size"])
    stride = triple(kwargs.get("stride", kwargs["kernel_size"]))
    padding = triple(kwargs.get("padding", 0))
    dilation = triple(kwargs.get("dilation", 1))
    out = tuple(
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip(shape[2:], kernel, stride, padding, dilation)
    )
    return out, kernel, stride, padding, dilation, False


@pytest.mark.skipif(not HAVE_EXTENSION, reason="the fused kernels need the compiled extension")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["one_value", "per_channel"])
@pytest.mark.parametrize("variant", ["vectorized", "scalar"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", list(FUSED_CASES))
def test_fused_temperature_gradient_matches_the_float64_loop(name, dtype, variant, per_channel, layout):
    shape, pool, plan = _fused_case(name)
    torch.manual_seed(7)
    x = (torch.randn(shape) * 2).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    channels = shape[1]
    values = [0.3 + 0.4 * c for c in range(channels)] if per_channel else [0.6]
    t = torch.tensor(values if per_channel else values[0], requires_grad=True)
    x.requires_grad_(True)
    if layout == "contiguous" and variant == "vectorized":  # the plan under test really runs
        geometry = _loop_geometry(name, shape)
        assert torch.ops.softpool_video._cpu_plan(x, *(list(v) for v in geometry[:5]), geometry[5]) == plan
    with sv.ops.cpu_kernel_variant(variant):
        y = pool(x, t)
        upstream = torch.randn(y.shape).to(dtype)
        grad_x, grad_t = torch.autograd.grad(y, (x, t), upstream)

    temps = values if per_channel else values * channels
    x64 = x.detach().double()
    expected_y, dy_dt = reference_with_temperature_derivative(x64, *_loop_geometry(name, shape), temps)
    per_channel_sum = (upstream.double() * dy_dt).sum(dim=(0, 2, 3, 4))
    expected_t = per_channel_sum if per_channel else per_channel_sum.sum()
    # float64 composite for dL/dx (its own check is in test_ops_against_reference)
    x_ref = x64.clone().requires_grad_(True)
    t_ref = torch.tensor(values if per_channel else values[0], dtype=torch.float64)
    view = t_ref.view(1, -1, 1, 1, 1) if per_channel else t_ref
    kwargs = FUSED_CASES[name][1]
    if "output_size" in kwargs:
        y_ref = view * sv.adaptive_soft_pool3d(x_ref / view, kwargs["output_size"])
    else:
        y_ref = view * sv.soft_pool3d(x_ref / view, **kwargs)
    (expected_x,) = torch.autograd.grad(y_ref, x_ref, upstream.double())

    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y.double(), expected_y, **tol)
    torch.testing.assert_close(grad_x.double(), expected_x, **tol)
    scale = expected_t.abs().max().item()
    error = (grad_t.double() - expected_t).abs().max().item()
    assert error <= (2e-2 if dtype == torch.bfloat16 else 1e-5) * scale, (error, scale)


@pytest.mark.skipif(not HAVE_EXTENSION, reason="the fused kernels need the compiled extension")
@pytest.mark.parametrize("variant", ["vectorized", "scalar"])
def test_fused_temperature_gradient_of_special_values(variant):
    """A NaN window sends NaN to its temperature gradient; a window whose maximum is +inf does not
    move with T (0); -inf entries have weight 0 and change nothing."""
    x = torch.randn(1, 2, 1, 4, 64)
    x[0, 0, 0, 0, 0] = float("nan")  # window (0, 0) of channel 0
    x[0, 1, 0, 0, 2] = float("inf")  # window (0, 1) of channel 1
    x[0, 1, 0, 2, 4] = float("-inf")  # inside window (1, 2) of channel 1
    t = torch.tensor([0.8, 1.3], requires_grad=True)
    with sv.ops.cpu_kernel_variant(variant):
        y = sv.soft_pool3d(x, (1, 2, 2), temperature=t)
        grad_windows = torch.ops.softpool_video.soft_pool3d_tempered_backward(
            torch.ones_like(y),
            x,
            *torch.ops.softpool_video.soft_pool3d_tempered(
                x, t.detach(), [1, 2, 32], [1, 2, 2], [1, 2, 2], [0, 0, 0], [1, 1, 1], False
            ),
            t.detach(),
            [1, 2, 2],
            [1, 2, 2],
            [0, 0, 0],
            [1, 1, 1],
            False,
        )[1]
        (grad_t,) = torch.autograd.grad(y.sum(), t)
    assert torch.isnan(grad_windows[0, 0, 0, 0, 0]) and torch.isnan(grad_t[0])
    assert grad_windows[0, 1, 0, 0, 1] == 0
    finite = x[0, 1, 0, 2:4, 4:6].flatten().double()
    finite = finite[torch.isfinite(finite)]
    s = torch.softmax(finite / 1.3, 0)
    variance = (s * (finite - (s * finite).sum()) ** 2).sum()
    torch.testing.assert_close(grad_windows[0, 1, 0, 1, 2].double(), -variance / 1.3**2, rtol=1e-5, atol=1e-7)
    assert torch.isfinite(grad_t[1])


@pytest.mark.skipif(not HAVE_EXTENSION, reason="the raw ops come from the compiled extension")
def test_raw_tempered_ops_check_the_temperature_tensor():
    x = torch.randn(1, 3, 2, 6, 6)
    geometry = ([2, 3, 3], [1, 2, 2], [1, 2, 2], [0, 0, 0], [1, 1, 1], False)
    op = torch.ops.softpool_video.soft_pool3d_tempered
    for bad, message in [
        (torch.ones(2), r"temperature must have shape \(C,\) = \(3,\)"),
        (torch.ones(3, 1), "temperature must have shape"),
        (torch.ones(3, dtype=torch.float64), "temperature must be Float for Float input"),
        (torch.ones(3)[:0], "temperature must have shape"),
    ]:
        with pytest.raises(RuntimeError, match=message):
            op(x, bad, *geometry)
    output = op(x, torch.ones(3), *geometry)
    with pytest.raises(RuntimeError, match="temperature must have shape"):
        torch.ops.softpool_video.soft_pool3d_tempered_backward(
            torch.ones_like(output[0]), x, *output, torch.ones(4), *geometry[1:]
        )
    # an expanded 0-d temperature (stride 0) is accepted and equals the float op
    expanded = torch.tensor([0.5]).expand(3)
    torch.testing.assert_close(op(x, expanded, *geometry)[0], sv.soft_pool3d(x, (1, 2, 2), temperature=0.5))
    # the fused backward has first derivatives only, and says so
    g = torch.ones_like(output[0], requires_grad=True)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.ops.softpool_video.soft_pool3d_tempered_backward(g, x, *output, torch.ones(3), *geometry[1:])


@pytest.mark.skipif(not HAVE_EXTENSION, reason="the fused kernels need the compiled extension")
def test_a_learned_temperature_saves_no_input_sized_temporaries():
    """Backward keeps the input, the output, its two float statistics and T: nothing input-sized
    beyond the input itself (the identity T * softpool_1(x / T) would also keep x / T)."""
    x = torch.randn(2, 8, 4, 32, 32, requires_grad=True)
    t = torch.tensor(0.7, requires_grad=True)
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y = sv.soft_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1), temperature=t)
    saved_bytes = sum(s.numel() * s.element_size() for s in {id(s): s for s in saved}.values())
    expected = x.numel() * 4 + 3 * y.numel() * 4 + 8 * 4  # input, output + 2 statistics, T as (C,)
    assert saved_bytes == expected, (saved_bytes, expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", list(FUSED_CASES))
def test_cuda_tempered_op_matches_cpu(name, dtype, layout):
    """Forward, dL/dx and dL/dT of a per-channel temperature on CUDA against the CPU kernels; the
    CUDA backward is deterministic (a gather and one thread per window)."""
    shape, pool, _ = _fused_case(name)
    torch.manual_seed(3)
    x = (torch.randn(shape) * 2).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    t = torch.linspace(0.3, 1.7, shape[1], dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    results = []
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_(True)
        td = t.to(device).requires_grad_(True)
        y = pool(xd, td)
        upstream = (
            torch.ones_like(y) * 0.5 + torch.arange(y.numel(), device=device).view(y.shape).to(y.dtype) % 3
        )
        results.append((y, *torch.autograd.grad(y, (xd, td), upstream)))
    tol = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}.get(
        dtype, dict(rtol=5e-2, atol=5e-2)
    )
    for cpu, gpu in zip(*results):
        torch.testing.assert_close(gpu.cpu(), cpu, **tol)
    xd = x.cuda().requires_grad_(True)
    td = t.cuda().requires_grad_(True)
    again = torch.autograd.grad(pool(xd, td), (xd, td), results[1][0].new_ones(results[1][0].shape))
    twice = torch.autograd.grad(pool(xd, td), (xd, td), results[1][0].new_ones(results[1][0].shape))
    assert all(torch.equal(a, b) for a, b in zip(again, twice))
