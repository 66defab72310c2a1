"""Gradients exact at every scale: float32 at any |x| / T, half precision within an ulp or two of
the exactly rounded result, tied windows, and no overflow in the vectorised path. The reference
is autograd through the pure-PyTorch reference in float64 (exact on these inputs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import softpool_video as sv
from softpool_video.ops import cpu_kernel_variant, soft_pool3d_reference

STEM = dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
VARIANTS = ["scalar", "vectorized"]
LAYOUTS = ["contiguous", "channels_last"]


def _exact_gradient(x: torch.Tensor, grad: torch.Tensor, temperature: float) -> torch.Tensor:
    x64 = x.double().requires_grad_()
    out = tuple(F.max_pool3d(x.float(), **STEM).shape[2:])
    y = soft_pool3d_reference(x64, out, (1, 3, 3), (1, 2, 2), (0, 1, 1), (1, 1, 1), False, temperature)
    return torch.autograd.grad(y, x64, grad.double())[0]


def _gradient(x, grad, temperature, variant, layout):
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x = x.clone().requires_grad_()
    with cpu_kernel_variant(variant):
        y = sv.soft_pool3d(x, **STEM, temperature=temperature)
        return torch.autograd.grad(y, x, grad)[0]


def _input(center, temperature, dtype, channels=16):
    # a spread of a few temperatures around a large offset: the weights are far from one-hot, so
    # every term of the gradient matters, and |x| / T is as large as the test asks
    x = center + temperature * 3 * torch.randn(2, channels, 2, 12, 40, dtype=torch.float64)
    return x.to(dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "center,temperature",
    [(0.0, 1.0), (1e4, 1.0), (1e6, 1.0), (3e7, 1.0), (1e6, 0.01), (1e30, 1e24), (-2e37, 1e31)],
)
def test_float32_gradient_at_every_scale(center, temperature, variant, layout):
    x = _input(center, temperature, torch.float32)
    grad = torch.randn(F.max_pool3d(x, **STEM).shape)
    expected = _exact_gradient(x, grad, temperature)
    got = _gradient(x, grad, temperature, variant, layout).double()
    assert torch.isfinite(got).all()
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "dtype,center,temperature",
    [
        (torch.float16, 0.0, 1.0),
        (torch.float16, 3e4, 0.1),
        (torch.float16, -6e4, 5.0),
        (torch.bfloat16, 0.0, 1.0),
        (torch.bfloat16, 1e6, 0.01),
        (torch.bfloat16, 3e37, 1e34),
    ],
)
def test_half_precision_gradient_is_within_an_ulp_of_exact(dtype, center, temperature, variant):
    """Half-precision gradients come from float statistics, not from the output rounded to half:
    each element is the exactly rounded gradient or a neighbour."""
    x = _input(center, temperature, dtype)
    grad = torch.randn(F.max_pool3d(x.float(), **STEM).shape).to(dtype)
    expected = _exact_gradient(x, grad, temperature)
    got = _gradient(x, grad, temperature, variant, "contiguous").double()
    # one ulp of the exactly rounded value, with a floor at 1e-3 of the largest gradient (tiny
    # gradients accumulate rounding of their larger terms)
    ulp = torch.finfo(dtype).eps * expected.abs().clamp(min=1e-3 * expected.abs().max())
    assert ((got - expected).abs() <= 2 * ulp).all()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("value", [0.0, 3e7, -1e9, 1.5e38])
def test_tied_windows_share_the_gradient_at_any_magnitude(value, variant, layout):
    """A window of equal values sends g / count to each tap (the old log-sum-exp lost this above ~1e7)."""
    x = torch.full((1, 16, 1, 4, 6), value)
    grad = torch.ones(1, 16, 1, 2, 3)
    kwargs = dict(kernel_size=(1, 2, 2), stride=(1, 2, 2))
    with cpu_kernel_variant(variant):
        xg = (
            x if layout == "contiguous" else x.contiguous(memory_format=torch.channels_last_3d)
        ).requires_grad_()
        got = torch.autograd.grad(sv.soft_pool3d(xg, **kwargs), xg, grad)[0]
    torch.testing.assert_close(got, torch.full_like(x, 0.25))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vectorized_path_never_overflows(layout):
    """Windows spanning the whole float range: the gradient stays within [-1, 2] (the sum per window is
    1), where the old vectorised exp of x/T - lse reached ~1e12."""
    x = (torch.rand(2, 16, 2, 12, 40) * 2 - 1) * 3e38
    x[..., ::3] = 3.4e38
    grad = torch.ones(F.max_pool3d(x, **STEM).shape)
    for variant in VARIANTS:
        got = _gradient(x, grad, 1.0, variant, layout)
        assert torch.isfinite(got).all()
        assert got.min() >= -1e-6 and got.max() <= 2.0 + 1e-6
    expected = _exact_gradient(x, grad, 1.0)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-6)
