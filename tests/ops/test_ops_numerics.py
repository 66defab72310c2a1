"""Numerical robustness, the vectorised CPU path vs the shared scalar body, autograd and errors."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn.functional as F

import softpool_video as sv
from softpool_video.ops import _extension, cpu_kernel_variant, extension_info, soft_pool3d_reference

# Shapes chosen to exercise each CPU plan of the vectorised path (see softpool_cpu_vectorized.h):
# row lanes (long interior rows), channel lanes (short rows, many channels; channels-last), and
# the scalar body (short rows, few channels).
PLAN_CASES = {
    "rows_stem": ((2, 3, 4, 40, 70), dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))),
    "rows_dilated_ceil": (
        (1, 2, 5, 9, 90),
        dict(kernel_size=(2, 2, 3), stride=(2, 1, 3), padding=(1, 0, 1), dilation=(1, 2, 2), ceil_mode=True),
    ),
    "rows_stride1": ((1, 4, 3, 6, 50), dict(kernel_size=3, stride=1, padding=1)),
    "channels_head": ((2, 40, 8, 7, 7), dict(kernel_size=(8, 7, 7), stride=1)),
    "channels_small_rows": ((1, 33, 6, 9, 5), dict(kernel_size=(3, 3, 2), stride=(2, 2, 1), padding=1)),
    "scalar_few_channels": ((2, 3, 5, 7, 9), dict(kernel_size=2, stride=2, ceil_mode=True)),
}


def _pool_both_variants(x: torch.Tensor, kwargs: dict, grad: torch.Tensor | None = None):
    results = {}
    for variant in ("scalar", "vectorized"):
        xi = x.detach().clone().requires_grad_()
        with cpu_kernel_variant(variant):
            y = sv.soft_pool3d(xi, **kwargs)
            g = torch.ones_like(y) if grad is None else grad.to(y.dtype)
            (gx,) = torch.autograd.grad(y, xi, g)
        results[variant] = (y, gx)
    return results


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(PLAN_CASES))
def test_vectorized_path_matches_shared_scalar_body(name, dtype, layout):
    """CI runs the shared scalar body (the code the GPU runs) against the fast path on every run."""
    shape, kwargs = PLAN_CASES[name]
    x = (torch.randn(shape) * 4).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    grad = torch.randn(sv.soft_pool3d(x.float(), **kwargs).shape)
    results = _pool_both_variants(x, kwargs, grad)
    (y_s, g_s), (y_v, g_v) = results["scalar"], results["vectorized"]
    assert y_v.dtype == dtype and g_v.dtype == dtype
    if dtype == torch.float32:
        torch.testing.assert_close(y_v, y_s, rtol=2e-6, atol=2e-6)
        torch.testing.assert_close(g_v, g_s, rtol=1e-5, atol=1e-5)
    else:  # both accumulate in float; only the final rounding to half/bfloat16 may differ by an ulp
        tol = 1e-2 if dtype == torch.float16 else 4e-2
        torch.testing.assert_close(y_v.float(), y_s.float(), rtol=tol, atol=tol)
        torch.testing.assert_close(g_v.float(), g_s.float(), rtol=tol, atol=tol)
    # and both against the float64 oracle
    ref = soft_pool3d_reference(x.double(), tuple(y_s.shape[2:]), *_geometry(kwargs))
    tol = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}[dtype]
    torch.testing.assert_close(y_v.double(), ref, rtol=tol, atol=tol * 4)


def _geometry(kwargs):
    triple = lambda v, d: tuple(v) if isinstance(v, tuple) else (v,) * 3  # noqa: E731
    kernel = triple(kwargs["kernel_size"], 1)
    stride = triple(kwargs.get("stride") or kernel, 1)
    return kernel, stride, triple(kwargs.get("padding", 0), 0), triple(kwargs.get("dilation", 1), 1)


@pytest.mark.parametrize("variant", ["scalar", "vectorized"])
def test_gradcheck_float64(variant):
    x = torch.randn(2, 3, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    with cpu_kernel_variant(variant):
        assert torch.autograd.gradcheck(
            lambda t: sv.soft_pool3d(t, (2, 3, 2), (1, 2, 2), (1, 1, 0), (1, 1, 2), True, 0.7), (x,)
        )
        assert torch.autograd.gradcheck(lambda t: sv.soft_pool2d(t, 3, 2, 1), (x[:, :, 0],))
        assert torch.autograd.gradcheck(lambda t: sv.soft_pool1d(t, 2, 1), (x[:, :, 0, 0],))


@pytest.mark.parametrize("name", ["rows_stem", "channels_head", "scalar_few_channels"])
def test_backward_is_deterministic(name):
    shape, kwargs = PLAN_CASES[name]
    x = torch.randn(shape, requires_grad=True)
    y = sv.soft_pool3d(x, **kwargs)
    grad = torch.randn_like(y)
    (first,) = torch.autograd.grad(y, x, grad, retain_graph=True)
    (second,) = torch.autograd.grad(y, x, grad)
    assert torch.equal(first, second)


def test_input_is_never_modified():
    x = torch.randn(2, 5, 4, 30, 40)
    for layout in (x, x.contiguous(memory_format=torch.channels_last_3d), x[..., ::2]):
        before = layout.clone()
        y = sv.soft_pool3d(layout.requires_grad_(), (1, 3, 3), (1, 2, 2), (0, 1, 1))
        y.sum().backward()
        assert torch.equal(layout.detach(), before)


@pytest.mark.parametrize("variant", ["scalar", "vectorized"])
@pytest.mark.parametrize(
    "dtype,magnitude",
    [(torch.float32, 1e4), (torch.float32, 3e38), (torch.float16, 6e4), (torch.bfloat16, 1e30)],
)
def test_extreme_inputs_give_finite_results(variant, dtype, magnitude):
    """exp is taken of x - window max, so huge inputs never overflow (the original returned inf/NaN)."""
    x = ((torch.rand(2, 8, 4, 40, 40) * 2 - 1) * magnitude).to(dtype).requires_grad_()
    with cpu_kernel_variant(variant):
        y = sv.soft_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.isfinite(y).all() and torch.isfinite(gx).all()
    # the output lies between the window's min and max
    assert (y.float() <= F.max_pool3d(x.float(), (1, 3, 3), (1, 2, 2), (0, 1, 1)) + 1e-3 * magnitude).all()
    assert (y.float() >= -F.max_pool3d(-x.float(), (1, 3, 3), (1, 2, 2), (0, 1, 1)) - 1e-3 * magnitude).all()


@pytest.mark.parametrize("variant", ["scalar", "vectorized"])
@pytest.mark.parametrize("layout", ["rows", "channels"])
def test_special_values_propagate(variant, layout):
    # 1 x C x 1 x 1 x 40 rows; windows of 2 along W (stride 2): 20 windows per row
    channels = 1 if layout == "rows" else 16
    x = torch.randn(1, channels, 1, 1, 40)
    x[..., 4] = float("nan")  # window 2 -> NaN
    x[..., 10] = float("inf")  # window 5 -> +inf
    x[..., 16] = float("-inf")  # window 8 -> weight 0 for that entry: equals its partner
    x[..., 20:22] = float("-inf")  # window 10 all -inf -> -inf
    if layout == "channels":  # channel lanes: shape W into the channels
        x = x.contiguous(memory_format=torch.channels_last_3d)
    xg = x.clone().requires_grad_()
    with cpu_kernel_variant(variant):
        y = sv.soft_pool3d(xg, (1, 1, 2))
        (gx,) = torch.autograd.grad(y, xg, torch.ones_like(y))
    y = y[..., :]
    assert torch.isnan(y[..., 2]).all()
    assert (y[..., 5] == float("inf")).all()
    torch.testing.assert_close(y[..., 8], x[..., 17])
    assert (y[..., 10] == float("-inf")).all()
    finite_windows = [w for w in range(20) if w not in (2, 5, 8, 10)]
    assert torch.isfinite(y[..., finite_windows]).all()
    # gradient: -inf entries receive 0; the lone finite partner of a -inf gets weight 1 -> gradient 1
    assert (gx[..., 16] == 0).all()
    torch.testing.assert_close(gx[..., 17], torch.ones_like(gx[..., 17]))
    # a NaN window sends NaN to all its inputs; an infinite maximum is the limit of a tie: the taps
    # equal to it share the gradient (the +inf tap gets all of it, an all -inf pair half each)
    assert torch.isnan(gx[..., 4:6]).all()
    assert (gx[..., 10] == 1).all() and (gx[..., 11] == 0).all()
    assert (gx[..., 20:22] == 0.5).all()
    # windows with only finite values have finite gradients
    finite_inputs = [i for i in range(40) if i // 2 in finite_windows]
    assert torch.isfinite(gx[..., finite_inputs]).all()


def test_empty_window_gives_minus_inf_like_max_pool():
    # k=2, dilation=4, padding=1 on length 3: taps at -1 and 3, both outside -> empty window
    x = torch.arange(3.0).reshape(1, 1, 3)
    expected = F.max_pool1d(x, 2, 1, 1, 4)
    y = sv.soft_pool1d(x, 2, 1, 1, 4)
    assert y.shape == expected.shape
    assert torch.equal(torch.isinf(y), torch.isinf(expected))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_saves_input_output_and_two_float_statistics(dtype):
    """The memory budget stated in the README: besides the input and the output, two float32
    (float64 for double input) statistics of the output's shape, nothing input-sized."""
    x = torch.randn(2, 3, 4, 10, 12, dtype=dtype, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = sv.soft_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    stat = torch.float64 if dtype == torch.float64 else torch.float32
    found = sorted((tuple(t.shape), str(t.dtype)) for t in saved)
    expected = [(tuple(x.shape), str(dtype)), (tuple(y.shape), str(dtype))] + [
        (tuple(y.shape), str(stat))
    ] * 2
    assert found == sorted(expected)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4, dtype=torch.int64), 2), "float16, bfloat16"),
        (lambda: sv.soft_pool3d(torch.ones(4, 4), 2), "5-D"),
        (lambda: sv.soft_pool2d(torch.ones(1, 1, 1, 2, 2), 2), "4-D"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 2, 2, 2), 3), "too small"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4), 2, padding=2), "padding should be at most half"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4), 0), "kernel_size must be positive"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4), 2, stride=0), "stride must be positive"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4), (2, 2)), "kernel_size must be an int or 3 ints"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4), 2, dilation=0), "dilation must be positive"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4), 2, temperature=0), "temperature"),
        (lambda: sv.soft_pool3d(torch.ones(1, 1, 4, 4, 4), 2, temperature=float("nan")), "temperature"),
        (lambda: sv.adaptive_soft_pool3d(torch.ones(1, 1, 4, 4, 4), (2, 0, 2)), "output_size"),
        (lambda: sv.adaptive_soft_pool2d(torch.ones(1, 1, 4, 4), (2, 2, 2)), "output_size"),
        (lambda: sv.soft_pool1d([1.0, 2.0], 2), "torch.Tensor"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        call()


def test_raw_op_checks_guard_memory_safety():
    x = torch.ones(1, 1, 4, 4, 4)
    with pytest.raises(RuntimeError, match="kernel_size entries must be >= 1"):
        torch.ops.softpool_video.soft_pool3d(
            x, [2, 2, 2], [0, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False, 1.0
        )
    with pytest.raises(RuntimeError, match="must be 5-D"):
        torch.ops.softpool_video.soft_pool3d(
            x[0], [2, 2, 2], [2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False, 1.0
        )


def test_modules_mirror_max_pool_repr_and_behaviour():
    module = sv.SoftPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
    expected = "kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), dilation=1, ceil_mode=False"
    assert repr(module) == f"SoftPool3d({expected})"
    assert "temperature=0.5" in repr(sv.SoftPool2d(2, temperature=0.5))
    assert sv.SoftPool1d(3).stride == 3
    assert repr(sv.AdaptiveSoftPool3d((1, None, 2))) == "AdaptiveSoftPool3d(output_size=(1, None, 2))"
    x = torch.randn(2, 3, 4, 9, 9)
    torch.testing.assert_close(module(x), sv.soft_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1)))
    torch.testing.assert_close(sv.AdaptiveSoftPool2d(3)(x[:, :, 0]), sv.adaptive_soft_pool2d(x[:, :, 0], 3))


def test_torch_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    model = torch.nn.Sequential(
        torch.nn.Conv3d(3, 8, 3, padding=1),
        sv.SoftPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        torch.nn.ReLU(),
        sv.AdaptiveSoftPool3d(1),
        torch.nn.Flatten(),
    )
    x = torch.randn(2, 3, 4, 16, 16, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True)
    y_eager, y_compiled = model(x), compiled(x)
    torch.testing.assert_close(y_compiled, y_eager)
    (g_eager,) = torch.autograd.grad(y_eager.sum(), x)
    (g_compiled,) = torch.autograd.grad(y_compiled.sum(), x)
    torch.testing.assert_close(g_compiled, g_eager)


def test_fake_kernels_agree_with_real_ones():
    x = torch.randn(2, 3, 4, 9, 9).contiguous(memory_format=torch.channels_last_3d)
    args = ([4, 5, 5], [1, 3, 3], [1, 2, 2], [0, 1, 1], [1, 1, 1], False, 1.0)
    torch.library.opcheck(torch.ops.softpool_video.soft_pool3d, (x, *args))
    torch.library.opcheck(torch.ops.softpool_video.soft_pool3d, (x.contiguous().double(), *args))


def test_pure_pytorch_fallback_warns_once_and_matches(monkeypatch):
    x = torch.randn(1, 2, 3, 8, 8, requires_grad=True)
    expected = sv.soft_pool3d(x, 2, 1, 1)
    monkeypatch.setattr(_extension, "HAVE_EXTENSION", False)
    monkeypatch.setattr(_extension, "_warned_fallback", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = sv.soft_pool3d(x, 2, 1, 1)
        sv.soft_pool3d(x, 2, 1, 1)
    assert sum("pure-PyTorch" in str(w.message) for w in caught) == 1
    torch.testing.assert_close(first, expected)
    first.sum().backward()  # autograd through the reference
    assert torch.isfinite(x.grad).all()


def test_extension_build_contains_cuda_when_expected():
    """CI builds with SOFTPOOL_CUDA=1: the CUDA kernels must have compiled and registered."""
    if os.environ.get("SOFTPOOL_EXPECT_CUDA_BUILD") == "1":
        assert extension_info()["cuda"], extension_info()
    assert extension_info()["cpu"]


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(PLAN_CASES))
def test_cuda_matches_cpu(name, dtype):
    shape, kwargs = PLAN_CASES[name]
    for x in (
        torch.randn(shape).to(dtype),
        torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last_3d),
    ):
        x_cpu = x.clone().requires_grad_()
        x_gpu = x.cuda().requires_grad_()
        y_cpu, y_gpu = sv.soft_pool3d(x_cpu, **kwargs), sv.soft_pool3d(x_gpu, **kwargs)
        grad = torch.randn(y_cpu.shape).to(dtype)
        (g_cpu,) = torch.autograd.grad(y_cpu, x_cpu, grad)
        (g_gpu,) = torch.autograd.grad(y_gpu, x_gpu, grad.cuda())
        tol = {torch.float32: 1e-5, torch.float64: 1e-10, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
        torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=tol, atol=tol)
        torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=tol, atol=tol)
        (g_again,) = torch.autograd.grad(sv.soft_pool3d(x_gpu, **kwargs), x_gpu, grad.cuda())
        assert torch.equal(g_again, g_gpu)  # deterministic gather, no atomics


@cuda
@pytest.mark.cuda
def test_cuda_gradcheck_and_compile():
    x = torch.randn(1, 2, 3, 6, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: sv.soft_pool3d(t, (2, 3, 2), (1, 2, 2), (1, 1, 0)), (x,))
    module = sv.SoftPool3d(2)
    torch.testing.assert_close(torch.compile(module, fullgraph=True)(x), module(x))


@cuda
@pytest.mark.cuda
def test_cuda_index_near_int32_limit():
    """2^31 - 2^27 input elements: below INT32_MAX, but within one grid stride (2^20 blocks x 256
    threads) of it, so a 32-bit grid-stride loop would wrap its index to a negative value that still
    compares below the total. Such sizes take 64-bit indices; every gradient must be right, the last
    window's included. k = s = 2 along W: each window's gradient depends on its own two inputs only."""
    free, _ = torch.cuda.mem_get_info()
    if free < 24 * 2**30:  # 4 GB input, 2 GB output, 8 GB statistics, 2 + 4 GB gradients
        pytest.skip(f"needs 24 GB of free GPU memory, {free / 2**30:.1f} GB free")
    width = 2**31 - 2**27
    x = torch.randn(1, 1, 1, 1, width, dtype=torch.float16, device="cuda")
    x[..., -4:] = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float16)
    x.requires_grad_()
    y = sv.soft_pool3d(x, (1, 1, 2))
    grad = torch.ones_like(y)
    (grad_x,) = torch.autograd.grad(y, x, grad)
    del y, grad
    tail = x.detach()[..., -64:].float().cpu().requires_grad_()
    (grad_tail,) = torch.autograd.grad(sv.soft_pool3d(tail, (1, 1, 2)).sum(), tail)
    torch.testing.assert_close(grad_x[..., -64:].float().cpu(), grad_tail, rtol=1e-2, atol=1e-2)
    head = x.detach()[..., :64].float().cpu().requires_grad_()
    (grad_head,) = torch.autograd.grad(sv.soft_pool3d(head, (1, 1, 2)).sum(), head)
    torch.testing.assert_close(grad_x[..., :64].float().cpu(), grad_head, rtol=1e-2, atol=1e-2)
    assert torch.isfinite(grad_x).all()
