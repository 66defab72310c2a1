"""The inference form of the operator: where nothing can differentiate a call (no_grad, inputs that
do not require grad), ``soft_pool3d_inference`` runs and stores the output alone. Checked: it gives
bitwise the output of the differentiable op on every CPU plan, layout and dtype (and the tempered
op's with a per-channel temperature), it is chosen exactly when nothing differentiates the call, and
the raw op refuses to be differentiated and checks its temperature argument."""

from __future__ import annotations

import pytest
import torch
from dispatch_recorder import RecordOps
from test_ops_fast_paths import CASES

import softpool_video as sv
from softpool_video.ops import HAVE_EXTENSION, cpu_kernel_variant

pytestmark = pytest.mark.skipif(
    not HAVE_EXTENSION, reason="the inference op comes from the compiled extension"
)


def _softpool_ops(fn) -> list[str]:
    with RecordOps() as recorder:
        fn()
    return [op for op in recorder.ops if op.startswith("softpool_video")]


@pytest.mark.parametrize("variant", ["vectorized", "scalar"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_inference_output_is_bitwise_the_differentiable_output(name, dtype, layout, variant):
    case = CASES[name]
    torch.manual_seed(5)
    x = (torch.randn(case.shape) * 3).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with cpu_kernel_variant(variant):
        with torch.no_grad():
            inference = case.pool(x)
        differentiable = case.pool(x.clone().requires_grad_(True)).detach()
    assert inference.stride() == differentiable.stride()
    assert torch.equal(inference, differentiable)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("name", list(CASES))
def test_inference_sends_special_windows_to_the_scalar_body(name, layout):
    """The vector loops of an inference forward skip the log-normaliser, so only the window max and
    delta tell them a window is special (NaN, +-inf, a range beyond exp's): the output must still be
    the scalar body's, and bitwise the differentiable op's."""
    case = CASES[name]
    torch.manual_seed(7)
    x = torch.randn(case.shape) * 3
    flat = x.view(-1)
    # every 11th element of plane 0 NaN and of plane 1 +inf: the cases with inputs between their
    # windows see some of them, and most windows hold at most one
    plane = x.shape[2] * x.shape[3] * x.shape[4]
    flat[0:plane:11] = float("nan")
    flat[plane : 2 * plane : 11] = float("inf")
    flat[-2] = float("-inf")
    x[0, min(2, x.shape[1] - 1)] *= 1e30  # weights underflow to exactly 0
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        vectorized = case.pool(x)
        with cpu_kernel_variant("scalar"):
            scalar = case.pool(x)
    differentiable = case.pool(x.clone().requires_grad_(True)).detach()
    assert torch.isnan(vectorized).any() and torch.isposinf(vectorized).any()
    # the vector exp differs from the scalar one by an ulp in ordinary windows
    torch.testing.assert_close(vectorized, scalar, rtol=2e-5, atol=2e-5, equal_nan=True)
    torch.testing.assert_close(vectorized, differentiable, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("name", ["rows_stem", "windows_global_head", "few_channels_stem"])
def test_inference_with_a_per_channel_temperature_matches_the_tempered_op(name, layout):
    case = CASES[name]
    x = torch.randn(case.shape) * 2
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    t = torch.linspace(0.4, 2.0, case.shape[1])
    pool = (
        (lambda v, temp: sv.adaptive_soft_pool3d(v, case.adaptive_output, temperature=temp))
        if case.adaptive_output is not None
        else (
            lambda v, temp: sv.soft_pool3d(
                v, case.kernel, case.stride, case.padding, case.dilation, temperature=temp
            )
        )
    )
    with torch.no_grad():
        inference = pool(x, t)
    learned = pool(x, t.clone().requires_grad_(True)).detach()
    assert torch.equal(inference, learned)


def test_the_inference_op_runs_exactly_when_nothing_differentiates():
    x = torch.randn(1, 2, 3, 8, 8)
    pool = lambda v, t=1.0: sv.soft_pool3d(v, 2, temperature=t)  # noqa: E731
    assert _softpool_ops(lambda: pool(x)) == ["softpool_video.soft_pool3d_inference.default"]
    with torch.no_grad():
        assert _softpool_ops(lambda: pool(x.requires_grad_(True))) == [
            "softpool_video.soft_pool3d_inference.default"
        ]
    assert _softpool_ops(lambda: pool(x.requires_grad_(True))) == ["softpool_video.soft_pool3d.default"]
    x.requires_grad_(False)
    t = torch.tensor(0.5, requires_grad=True)  # a learned temperature makes the call differentiable
    assert _softpool_ops(lambda: pool(x, t)) == ["softpool_video.soft_pool3d_tempered.default"]
    with torch.no_grad():
        assert _softpool_ops(lambda: pool(x, t)) == ["softpool_video.soft_pool3d_inference.default"]
    # forward-mode AD needs the statistics (the jvp reads them)
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.ones_like(x))
        tangent = fwAD.unpack_dual(pool(dual)).tangent
    assert tangent is not None and tangent.abs().sum() > 0


def test_the_raw_inference_op_cannot_be_differentiated_and_checks_its_temperature():
    x = torch.randn(1, 3, 2, 6, 6, requires_grad=True)
    geometry = ([2, 3, 3], [1, 2, 2], [1, 2, 2], [0, 0, 0], [1, 1, 1], False, 1.0)
    op = torch.ops.softpool_video.soft_pool3d_inference
    with pytest.raises(RuntimeError, match="soft_pool3d_inference has no derivatives"):
        op(x, *geometry, None)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match=r"temperature must have shape \(C,\) = \(3,\)"):
            op(x, *geometry, torch.ones(2))
        with pytest.raises(RuntimeError, match="temperature must be a finite number > 0"):
            op(x, *geometry[:-1], 0.0, None)
        torch.testing.assert_close(op(x, *geometry, None), sv.soft_pool3d(x, (1, 2, 2)))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", ["rows_stem", "windows_global_head", "few_channels_stem"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_cuda_inference_output_is_bitwise_the_differentiable_output(name, dtype):
    case = CASES[name]
    x = (torch.randn(case.shape) * 3).to(dtype).cuda()
    with torch.no_grad():
        inference = case.pool(x)
    assert torch.equal(inference, case.pool(x.clone().requires_grad_(True)).detach())
