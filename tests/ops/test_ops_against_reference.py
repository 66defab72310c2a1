"""The compiled SoftPool kernels against the independent float64 reference and hand-computed values."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import softpool_video as sv
from softpool_video.ops import cpu_kernel_variant, soft_pool3d_reference

FUNCTIONS = {1: sv.soft_pool1d, 2: sv.soft_pool2d, 3: sv.soft_pool3d}
MAX_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


@dataclass
class Case:
    dims: int
    shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool
    temperature: float
    layout: str  # contiguous | channels_last | strided

    def kwargs(self):
        return dict(
            kernel_size=self.kernel,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            ceil_mode=self.ceil_mode,
            temperature=self.temperature,
        )


def _random_case(rng: random.Random) -> Case:
    """A random valid pooling configuration (torch's max_pool accepts it and the output is non-empty)."""
    while True:
        dims = rng.choice((1, 2, 3, 3))
        kernel = tuple(rng.randint(1, 4) for _ in range(dims))
        stride = tuple(rng.randint(1, 3) for _ in range(dims))
        padding = tuple(rng.randint(0, k // 2) for k in kernel)
        dilation = tuple(rng.choice((1, 1, 2)) for _ in range(dims))
        spatial = tuple(rng.randint(1, 9) for _ in range(dims))  # odd sizes, H != W
        batched = rng.random() < 0.8
        channels = rng.choice((1, 3, 8, 17))
        shape = ((rng.randint(1, 2),) if batched else ()) + (channels,) + spatial
        layout = rng.choice(("contiguous", "channels_last", "strided"))
        if layout == "channels_last" and not (dims == 3 and batched):
            layout = "strided"
        case = Case(
            dims,
            shape,
            kernel,
            stride,
            padding,
            dilation,
            rng.random() < 0.4,
            rng.choice((1.0, 1.0, 0.5, 2.5)),
            layout,
        )
        try:
            out = MAX_POOLS[dims](torch.zeros(shape), kernel, stride, padding, dilation, case.ceil_mode)
        except RuntimeError:
            continue
        if out.numel() > 0:
            return case


CASES = [_random_case(random.Random(seed)) for seed in range(60)]


def _make_input(case: Case, dtype=torch.float64, scale=3.0) -> torch.Tensor:
    x = torch.randn(case.shape, dtype=dtype) * scale
    if case.layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    elif case.layout == "strided":
        # a non-contiguous view: every other element along the last dim of a wider tensor
        wide = torch.randn(*case.shape[:-1], case.shape[-1] * 2, dtype=dtype) * scale
        x = wide[..., ::2]
    return x


def _reference(x: torch.Tensor, case: Case) -> torch.Tensor:
    """The float64 oracle, called with the output size torch's max_pool computes."""
    out_shape = MAX_POOLS[case.dims](
        torch.zeros(case.shape), case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode
    ).shape
    lift = lambda t, fill: (fill,) * (3 - case.dims) + tuple(t)  # noqa: E731
    x5 = x if x.dim() == case.dims + 2 else x.unsqueeze(0)
    for _ in range(3 - case.dims):
        x5 = x5.unsqueeze(2)
    y = soft_pool3d_reference(
        x5.double(),
        lift(out_shape[-case.dims :], 1),
        lift(case.kernel, 1),
        lift(case.stride, 1),
        lift(case.padding, 0),
        lift(case.dilation, 1),
        False,
        case.temperature,
    )
    for _ in range(3 - case.dims):
        y = y.squeeze(2)
    return y if x.dim() == case.dims + 2 else y.squeeze(0)


@pytest.mark.parametrize("variant", ["scalar", "vectorized"])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_forward_and_backward_match_float64_reference(case, variant):
    x = _make_input(case, torch.float32).requires_grad_()
    x_ref = x.detach().double().requires_grad_()
    with cpu_kernel_variant(variant):
        y = FUNCTIONS[case.dims](x, **case.kwargs())
        y_ref = _reference(x_ref, case)
        assert y.shape == y_ref.shape
        grad = torch.randn_like(y_ref)
        (gx,) = torch.autograd.grad(y, x, grad.float())
    (gx_ref,) = torch.autograd.grad(y_ref, x_ref, grad)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx.double(), gx_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES[:20], ids=[f"case{i}" for i in range(20)])
def test_output_shape_and_layout_follow_max_pool(case):
    x = _make_input(case, torch.float32)
    y = FUNCTIONS[case.dims](x, **case.kwargs())
    expected = MAX_POOLS[case.dims](x, case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode)
    assert y.shape == expected.shape
    if case.layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last_3d)


def test_float64_uses_exact_math_everywhere():
    """float64 has no fast path: scalar and default results are bitwise equal."""
    x = torch.randn(2, 9, 6, 20, 24, dtype=torch.float64)
    with cpu_kernel_variant("scalar"):
        scalar = sv.soft_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    assert torch.equal(sv.soft_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1)), scalar)


def test_hand_computed_values():
    # window [0, ln 3]: softmax weights 1/4, 3/4 -> y = 3/4 ln 3
    x = torch.tensor([[[0.0, math.log(3.0)]]], dtype=torch.float64)
    torch.testing.assert_close(
        sv.soft_pool1d(x, 2), torch.tensor([[[0.75 * math.log(3.0)]]], dtype=torch.float64)
    )
    # temperature 2 on [0, 2 ln 3]: weights exp(0)=1, exp(ln 3)=3 again
    x = torch.tensor([[[0.0, 2 * math.log(3.0)]]], dtype=torch.float64)
    torch.testing.assert_close(
        sv.soft_pool1d(x, 2, temperature=2.0), torch.tensor([[[1.5 * math.log(3.0)]]], dtype=torch.float64)
    )
    # padding is excluded, not counted as zero: [pad, 5, 7 | ...] with k=3, p=1 -> first window is {5, 7}
    x = torch.tensor([[[5.0, 7.0, 1.0]]], dtype=torch.float64)
    y = sv.soft_pool1d(x, 3, stride=2, padding=1)
    e5, e7, e1 = math.exp(5.0), math.exp(7.0), math.exp(1.0)
    expected = [(5 * e5 + 7 * e7) / (e5 + e7), (7 * e7 + 1 * e1) / (e7 + e1)]
    torch.testing.assert_close(y, torch.tensor([[expected]], dtype=torch.float64))
    # a constant window pools to the constant (weights are uniform)
    assert torch.equal(sv.soft_pool3d(torch.full((1, 1, 2, 2, 2), 3.5), 2), torch.full((1, 1, 1, 1, 1), 3.5))


def test_3d_frames_are_indexed_correctly():
    """Each frame pooled alone equals pooling the clip with a temporal kernel of 1 (the original
    implementation's 3D indexing d*H + y*W + x mixed frames up)."""
    x = torch.randn(2, 3, 5, 8, 6)
    y = sv.soft_pool3d(x, (1, 2, 2))
    for t in range(5):
        torch.testing.assert_close(y[:, :, t], sv.soft_pool2d(x[:, :, t], 2))


def test_temperature_limits_approach_max_and_average():
    # distinct values 0.1 apart: at T = 1e-3 the runner-up weighs exp(-100) of the max
    x = torch.randperm(2 * 4 * 6 * 8 * 8).reshape(2, 4, 6, 8, 8).double() * 0.1
    cold = sv.soft_pool3d(x, 2, temperature=1e-3)
    torch.testing.assert_close(cold, F.max_pool3d(x, 2), rtol=0, atol=1e-6)
    x = torch.randn(2, 4, 6, 8, 8, dtype=torch.float64)
    hot = sv.soft_pool3d(x, 3, stride=2, padding=1, temperature=1e6)
    # the average over the window without the padding (first-order deviation ~ variance / T)
    torch.testing.assert_close(hot, F.avg_pool3d(x, 3, 2, 1, count_include_pad=False), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_adaptive_matches_reference_and_uniform_pooling(dims):
    fn = {1: sv.adaptive_soft_pool1d, 2: sv.adaptive_soft_pool2d, 3: sv.adaptive_soft_pool3d}[dims]
    spatial = (7, 9, 11)[:dims]
    x = torch.randn(2, 10, *spatial, dtype=torch.float64, requires_grad=True)
    out = (3, 4, 5)[:dims]
    y = fn(x, out)
    assert y.shape[-dims:] == out
    x5 = x
    for _ in range(3 - dims):
        x5 = x5.unsqueeze(2)
    ref = soft_pool3d_reference(x5, (1,) * (3 - dims) + out, adaptive=True)
    for _ in range(3 - dims):
        ref = ref.squeeze(2)
    torch.testing.assert_close(y, ref)
    assert torch.autograd.gradcheck(lambda t: fn(t, out), (x[:1, :2],))
    # when the size divides evenly, adaptive windows are plain kernel = stride windows
    x_even = torch.randn(1, 3, *(2 * s for s in out), dtype=torch.float64)
    torch.testing.assert_close(fn(x_even, out), FUNCTIONS[dims](x_even, 2))


def test_adaptive_none_keeps_size_and_unbatched():
    x = torch.randn(4, 6, 10, 12)
    y = sv.adaptive_soft_pool3d(x, (None, 1, None))
    assert y.shape == (4, 6, 1, 12)
    torch.testing.assert_close(
        sv.adaptive_soft_pool3d(x, 1).flatten(), sv.adaptive_soft_pool3d(x[None], 1).flatten()
    )
