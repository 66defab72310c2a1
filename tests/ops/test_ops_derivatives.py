"""Forward-mode AD, second derivatives and torch.func transforms against independent references:
central differences in float64, gradgradcheck's finite differences, and torch autograd through the
pure-PyTorch reference (ordinary tensor ops, no shared code with the kernels)."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD

import softpool_video as sv
from softpool_video.ops import cpu_kernel_variant, soft_pool3d_reference

# (name, input shape, function of x, reference function of x) covering 1D/2D/3D, padding,
# dilation, ceil_mode, adaptive pools and temperature != 1.
GEOMETRIES = {
    "1d_pad_dilation": ((2, 3, 9), lambda t: sv.soft_pool1d(t, 3, 2, 1, 2, False, 0.6)),
    "1d_adaptive": ((2, 3, 7), lambda t: sv.adaptive_soft_pool1d(t, 3, 1.7)),
    "2d_ceil": ((1, 2, 5, 6), lambda t: sv.soft_pool2d(t, 2, 2, 0, 1, True, 1.0)),
    "2d_adaptive_unbatched": ((2, 5, 7), lambda t: sv.adaptive_soft_pool2d(t, (2, 3), 0.5)),
    "3d_all": (
        (1, 2, 3, 5, 4),
        lambda t: sv.soft_pool3d(t, (2, 3, 2), (1, 2, 2), (1, 1, 0), (1, 1, 2), True, 0.7),
    ),
    "3d_adaptive": ((1, 2, 4, 5, 3), lambda t: sv.adaptive_soft_pool3d(t, (2, None, 2), 2.5)),
    "3d_stem": ((1, 2, 2, 7, 7), lambda t: sv.soft_pool3d(t, (1, 3, 3), (1, 2, 2), (0, 1, 1))),
}


def _reference_fn(fn):
    """fn with the operator replaced by the pure-PyTorch reference (what the fallback runs)."""

    def wrapped(t):
        from softpool_video.ops import _extension

        previous = _extension.HAVE_EXTENSION
        _extension.HAVE_EXTENSION = False
        _extension._warned_fallback = True
        try:
            return fn(t)
        finally:
            _extension.HAVE_EXTENSION = previous

    return wrapped


@pytest.fixture(params=list(GEOMETRIES))
def geometry(request):
    shape, fn = GEOMETRIES[request.param]
    x = (torch.randn(shape, dtype=torch.float64) * 2).requires_grad_()
    return fn, x


def test_gradcheck_and_gradgradcheck(geometry):
    fn, x = geometry
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_jvp_matches_central_difference(geometry):
    fn, x = geometry
    x = x.detach()
    v = torch.randn_like(x)
    step = 1e-6
    numeric = (fn(x + step * v) - fn(x - step * v)) / (2 * step)
    value, tangent = torch.func.jvp(fn, (x,), (v,))
    torch.testing.assert_close(value, fn(x))
    torch.testing.assert_close(tangent, numeric, rtol=1e-6, atol=1e-7)
    with fwAD.dual_level():
        dual = fn(fwAD.make_dual(x, v))
        torch.testing.assert_close(fwAD.unpack_dual(dual).tangent, numeric, rtol=1e-6, atol=1e-7)


def test_jvp_is_vjp_transposed(geometry):
    """<J v, u> == <v, J^T u> with the fused jvp and backward kernels."""
    fn, x = geometry
    x = x.detach()
    v = torch.randn_like(x)
    _, jv = torch.func.jvp(fn, (x,), (v,))
    u = torch.randn_like(jv)
    _, vjp = torch.func.vjp(fn, x)
    (jtu,) = vjp(u)
    torch.testing.assert_close((jv * u).sum(), (v * jtu).sum())


def test_second_derivatives_match_autograd_of_the_reference(geometry):
    fn, x = geometry
    x = x.detach()
    reference = _reference_fn(fn)
    scalar = lambda f: lambda t: (f(t).sin() * torch.linspace(-1, 2, f(t).numel()).view_as(f(t))).sum()  # noqa: E731
    expected = torch.func.hessian(scalar(reference))(x)
    torch.testing.assert_close(torch.func.hessian(scalar(fn))(x), expected)  # forward over reverse
    torch.testing.assert_close(torch.func.jacrev(torch.func.jacrev(scalar(fn)))(x), expected)
    torch.testing.assert_close(torch.func.jacfwd(torch.func.jacfwd(scalar(fn)))(x), expected)


def test_double_backward_gradient_penalty(geometry):
    """create_graph=True (e.g. an R1 / WGAN-GP penalty) gives the true second derivative, not zeros."""
    fn, x = geometry
    reference = _reference_fn(fn)

    def penalty(f, t):
        (g,) = torch.autograd.grad(f(t).pow(2).sum(), t, create_graph=True)
        return g.pow(2).sum()

    (ours,) = torch.autograd.grad(penalty(fn, x), x)
    (expected,) = torch.autograd.grad(penalty(reference, x), x)
    assert expected.abs().max() > 1e-3  # the second derivative really is non-zero here
    torch.testing.assert_close(ours, expected)


def test_third_order_is_exact():
    fn = GEOMETRIES["3d_all"][1]
    x = torch.randn(GEOMETRIES["3d_all"][0], dtype=torch.float64, requires_grad=True)
    grad_fn = lambda t: torch.autograd.grad(fn(t).sin().sum(), t, create_graph=True)[0]  # noqa: E731
    assert torch.autograd.gradgradcheck(grad_fn, (x,))


def test_func_grad_and_vmap(geometry):
    fn, x = geometry
    x = x.detach()
    batch = torch.randn(3, *x.shape, dtype=torch.float64)
    loss = lambda t: fn(t).sin().sum()  # noqa: E731
    torch.testing.assert_close(torch.func.grad(loss)(x), torch.autograd.grad(loss(x.requires_grad_()), x)[0])
    x = x.detach()
    torch.testing.assert_close(torch.func.vmap(fn)(batch), torch.stack([fn(b) for b in batch]))
    torch.testing.assert_close(
        torch.func.vmap(torch.func.grad(loss))(batch), torch.stack([torch.func.grad(loss)(b) for b in batch])
    )
    # a batched tangent over an unbatched primal, and in_dims other than 0
    tangents = torch.randn(3, *x.shape, dtype=torch.float64)
    batched = torch.func.vmap(lambda v: torch.func.jvp(fn, (x,), (v,))[1])(tangents)
    torch.testing.assert_close(batched, torch.stack([torch.func.jvp(fn, (x,), (v,))[1] for v in tangents]))
    moved = torch.func.vmap(fn, in_dims=1)(batch.movedim(0, 1))
    torch.testing.assert_close(moved, torch.func.vmap(fn)(batch))


@pytest.mark.parametrize("variant", ["scalar", "vectorized"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_float32_jvp_of_both_cpu_paths(variant, layout):
    x = torch.randn(2, 16, 3, 10, 40) * 3
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    v = torch.randn_like(x)
    kwargs = dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), temperature=0.8)
    with cpu_kernel_variant(variant):
        _, tangent = torch.func.jvp(lambda t: sv.soft_pool3d(t, **kwargs), (x,), (v,))
    x64, v64 = x.double(), v.double()
    out = tuple(sv.soft_pool3d(x, **kwargs).shape[2:])
    _, expected = torch.func.jvp(
        lambda t: soft_pool3d_reference(t, out, (1, 3, 3), (1, 2, 2), (0, 1, 1), (1, 1, 1), False, 0.8),
        (x64,),
        (v64,),
    )
    torch.testing.assert_close(tangent.double(), expected, rtol=1e-5, atol=1e-5)


def test_jvp_of_special_windows():
    """Tangents follow the gradient's special values: NaN windows NaN, an infinite maximum a tie."""
    x = torch.tensor(
        [[[1.0, float("nan"), float("inf"), 2.0, float("-inf"), float("-inf"), 3.0, float("-inf")]]]
    )
    v = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 9.0]]])
    _, tangent = torch.func.jvp(lambda t: sv.soft_pool1d(t, 2), (x,), (v,))
    assert torch.isnan(tangent[..., 0])
    assert tangent[..., 1] == 3.0  # all of it from the +inf tap
    assert tangent[..., 2] == 6.0  # all -inf: the mean of the tied taps' tangents
    assert tangent[..., 3] == 8.0  # the -inf tap has weight 0


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_cuda_matches_cpu_for_statistics_jvp_and_second_derivatives(name, dtype):
    shape, fn = GEOMETRIES[name]
    x = (torch.randn(shape, dtype=torch.float64) * 2).to(dtype)
    v = torch.randn_like(x)
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    (y_cpu, t_cpu), (y_gpu, t_gpu) = (
        torch.func.jvp(fn, (a,), (b,)) for a, b in ((x, v), (x.cuda(), v.cuda()))
    )
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=tol, atol=tol)
    torch.testing.assert_close(t_gpu.cpu(), t_cpu, rtol=tol, atol=tol)
    if dtype == torch.float64:
        x_gpu = x.cuda().requires_grad_()
        assert torch.autograd.gradgradcheck(fn, (x_gpu,))
        loss = lambda t: fn(t).sin().sum()  # noqa: E731
        torch.testing.assert_close(torch.func.hessian(loss)(x.cuda()).cpu(), torch.func.hessian(loss)(x))


@cuda
@pytest.mark.cuda
def test_cuda_statistics_match_cpu_at_large_magnitude():
    x = 1e6 + 3 * torch.randn(2, 8, 2, 12, 20)
    outputs = [
        torch.ops.softpool_video.soft_pool3d(
            t, [2, 6, 10], [1, 3, 3], [1, 2, 2], [0, 1, 1], [1, 1, 1], False, 1.0
        )
        for t in (x, x.cuda())
    ]
    for cpu, gpu in zip(*outputs):
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-5)
