"""Python-side registrations of the compiled SoftPool ops: fake kernels, autograd in reverse and
forward mode to any order, and batching rules.

The ops themselves (schemas and CPU/CUDA kernels) come from ``softpool_video._C``, loaded by
``_extension.py``:

- ``soft_pool3d(input, ...) -> (output, log_weight_offset, output_residual)``
- ``soft_pool3d_backward(grad_output, input, output, log_weight_offset, output_residual, ...)``
- ``soft_pool3d_jvp(input_tangent, input, output, log_weight_offset, output_residual, ...)``
- ``soft_pool3d_tempered(input, temperature, ...)`` and ``soft_pool3d_tempered_backward(...)``: the
  same pooling at a tensor temperature ``(C,)`` (learned), whose backward returns the gradients of
  the input and of the temperature (``g * dy/dT`` per window, ``dy/dT = -Var_s(x) / T^2``) in one pass.

Derivatives. Each op is an ``autograd.Function`` with ``backward`` and ``jvp``, so reverse mode,
forward mode (``torch.func.jvp``, ``torch.autograd.forward_ad``) and their compositions
(double backward, ``torch.func.hessian``, ...) are exact:

- the first derivatives run the fused kernels (backward: a gather of the gradient over the windows;
  jvp: a sum over each window);
- the derivatives of those (second order) are the exact Hessian formulas written as a composite of
  standard ops (``reference.hessian_vector_product`` / ``second_directional_derivative``), which
  autograd and forward-mode AD differentiate further by themselves.

``torch.func`` transforms (grad, vjp, jvp, vmap, jacrev, ...) need the ``autograd.Function`` to be
applied directly, so :func:`soft_pool3d` and its derivative helpers call it there; everywhere else
they call the ops, whose Autograd kernels apply the same functions, so that torch.compile and
torch.export see one opaque op. The batching rules fold a vmapped dimension into the batch.

The tempered op has fused first derivatives only: a backward that builds a graph (``create_graph``)
differentiates the exact identity ``softpool_T(x) = T * softpool_1(x / T)`` around the float op
instead (:func:`tempered_composite`), and forward mode and ``torch.func`` transforms use that
identity from the start (``pooling.py``), so every order stays exact.
"""

from __future__ import annotations

import contextlib
import inspect

import torch
from torch.fx.experimental.symbolic_shapes import statically_known_true

from softpool_video.ops import reference
from softpool_video.ops._extension import EXTENSION_ERROR, HAVE_EXTENSION
from softpool_video.ops._geometry import PoolGeometry

__all__ = ["cpu_kernel_variant", "soft_pool3d", "statistic_dtype"]


@contextlib.contextmanager
def cpu_kernel_variant(variant: str):
    """Force the CPU kernels onto ``"scalar"`` (the shared body the GPU runs) or ``"vectorized"``.

    Used by the tests to check the vectorised fast path against the shared scalar body.
    """
    if variant not in ("scalar", "vectorized"):
        raise ValueError(f"variant must be 'scalar' or 'vectorized', got {variant!r}")
    if not HAVE_EXTENSION:
        raise RuntimeError(f"softpool_video._C is not available: {EXTENSION_ERROR}")
    previous = torch.ops.softpool_video._set_cpu_vectorized(variant == "vectorized")
    try:
        yield
    finally:
        torch.ops.softpool_video._set_cpu_vectorized(previous)


def set_cpu_result_pool(enabled: bool) -> bool:
    """Turn the CPU kernels' pool of large result blocks on (the default) or off; returns the
    previous setting.

    Off, every large result (output, statistics, grad_input) is a fresh allocation, as torch's own
    allocator would make, and the pooled blocks are freed at once (csrc/cpu/softpool_cpu_memory.h
    explains the pool). Without the extension there is no pool and this returns False.
    """
    if not HAVE_EXTENSION:
        return False
    return torch.ops.softpool_video._set_cpu_result_pool(bool(enabled))


@contextlib.contextmanager
def cpu_result_pool(enabled: bool):
    """``set_cpu_result_pool(enabled)`` inside the block, the previous setting after it (the memory
    benchmark measures its steps inside ``cpu_result_pool(False)``)."""
    previous = set_cpu_result_pool(enabled)
    try:
        yield
    finally:
        if HAVE_EXTENSION:
            set_cpu_result_pool(previous)


def output_is_channels_last(x: torch.Tensor) -> bool:
    """The layout rule of the kernels (softpool_launch.h: use_channels_last).

    With symbolic sizes (tracing) it is decided from what is statically known, without adding a
    guard: a guard raised while tracing a backward cannot be checked before the forward runs. Dynamic
    dimensions are >= 2, so the stride pattern alone tells the layouts apart there.
    """
    if not any(isinstance(v, torch.SymInt) for v in (*x.shape, *x.stride())):
        return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)
    return _known_dense_in_order(x, (1, 4, 3, 2, 0)) and not _known_dense_in_order(x, (4, 3, 2, 1, 0))


def _known_dense_in_order(x: torch.Tensor, order) -> bool:
    """Whether x is provably dense with its dimensions laid out in ``order`` (fastest first); size-1
    dimensions may have any stride, as in torch's contiguity rules."""
    expected = 1
    for dim in order:
        size = x.shape[dim]
        size_one = isinstance(size, int) and size == 1
        if not size_one and not statically_known_true(x.stride(dim) == expected):
            return False
        expected = expected * size
    return True


def _check_fake_argument(name: str, t: torch.Tensor, x: torch.Tensor, shape) -> None:
    """The device and shape checks of the kernels (softpool_launch.h) for traced calls, guard-free:
    only a provable mismatch raises."""
    if t.device != x.device:
        raise RuntimeError(f"softpool_video: {name} is on {t.device} but input is on {x.device}")
    if len(t.shape) != len(shape) or any(statically_known_true(a != b) for a, b in zip(t.shape, shape)):
        raise RuntimeError(f"softpool_video: {name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def statistic_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _functorch_active() -> bool:
    return torch._C._are_functorch_transforms_active()


# --------------------------------------------------------------------------------------------
# Entry points used by the functional API and by the derivative formulas.


def _differentiable(*tensors: torch.Tensor) -> bool:
    """Whether anything may differentiate this call: autograd (grad mode and an input that requires
    grad), forward-mode AD or a torch.func transform. Otherwise the inference op runs, which does
    not store the two statistics."""
    return (
        _functorch_active()
        or torch.autograd.forward_ad._current_level >= 0
        or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
    )


def soft_pool3d(x: torch.Tensor, geometry: PoolGeometry) -> torch.Tensor:
    """SoftPool of a validated 5-D input; the output only."""
    if _functorch_active():
        return _SoftPool3d.apply(x, geometry)[0]
    if not _differentiable(x):
        return torch.ops.softpool_video.soft_pool3d_inference(x, *geometry.forward_args(), None)
    return torch.ops.softpool_video.soft_pool3d(x, *geometry.forward_args())[0]


def _backward(grad_output, x, output, offset, residual, geometry: PoolGeometry) -> torch.Tensor:
    if _functorch_active():
        return _SoftPool3dBackward.apply(grad_output, x, output, offset, residual, geometry)
    return torch.ops.softpool_video.soft_pool3d_backward(
        grad_output, x, output, offset, residual, *geometry.derivative_args()
    )


def _jvp(tangent, x, output, offset, residual, geometry: PoolGeometry) -> torch.Tensor:
    if _functorch_active():
        return _SoftPool3dJvp.apply(tangent, x, output, offset, residual, geometry)
    return torch.ops.softpool_video.soft_pool3d_jvp(
        tangent, x, output, offset, residual, *geometry.derivative_args()
    )


def soft_pool3d_tempered(x: torch.Tensor, temperature: torch.Tensor, geometry: PoolGeometry) -> torch.Tensor:
    """SoftPool of a validated 5-D input at a tensor temperature: ``(C,)`` values of the statistic
    dtype on the input's device (any stride; a 0-d temperature expanded to ``(C,)``). The geometry's
    own temperature is unused (1)."""
    if not _differentiable(x, temperature):
        return torch.ops.softpool_video.soft_pool3d_inference(x, *geometry.forward_args(), temperature)
    return torch.ops.softpool_video.soft_pool3d_tempered(x, temperature, *geometry.forward_args()[:-1])[0]


def tempered_composite(x: torch.Tensor, temperature: torch.Tensor, geometry: PoolGeometry, pool=None):
    """``T * softpool_1(x / T)`` with the float op at temperature 1 (``pool``, default
    :func:`soft_pool3d`): the same value as the tempered op (both are ``sum_i softmax(x / T)_i x_i``)
    with derivatives of every order in x and T. ``temperature`` is 0-d or ``(C,)`` of the statistic
    dtype; half inputs are scaled in float32 (``x / T`` for a small T overflows float16) and the
    result cast back."""
    view = temperature.view(1, -1, 1, 1, 1) if temperature.dim() == 1 else temperature
    return (view * (pool or soft_pool3d)(x.to(view.dtype) / view, geometry)).to(x.dtype)


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


# --------------------------------------------------------------------------------------------
# The autograd functions. Non-tensor arguments travel in one PoolGeometry.


def _signature_once(function_class):
    """Computes the signature of ``forward`` once. ``Function.apply`` binds the arguments of a
    ``setup_context``-style function to ``inspect.signature(forward)`` on every call, which without
    a cached ``__signature__`` rebuilds it each time (~40 us of a small forward+backward)."""
    function_class.forward.__signature__ = inspect.signature(function_class.forward)
    return function_class



@_signature_once
class _SoftPool3d(torch.autograd.Function):
    """input -> (output, log_weight_offset, output_residual); the statistics are not differentiable."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, geometry):
        with torch._C._AutoDispatchBelowAutograd():
            return torch.ops.softpool_video.soft_pool3d(x, *geometry.forward_args())

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, geometry = inputs
        pooled, offset, residual = output
        ctx.mark_non_differentiable(offset, residual)
        # The statistics' gradients are always None: without this autograd would fill two
        # output-sized tensors with zeros on every backward.
        ctx.set_materialize_grads(False)
        # Derivatives need the input, the output and two float statistics per window.
        ctx.save_for_backward(x, pooled, offset, residual)
        ctx.save_for_forward(x, pooled, offset, residual)
        ctx.geometry = geometry

    @staticmethod
    def backward(ctx, grad_output, _grad_offset, _grad_residual):
        x, pooled, offset, residual = ctx.saved_tensors
        grad_input = None
        if ctx.needs_input_grad[0] and grad_output is not None:
            grad_input = _backward(grad_output, x, pooled, offset, residual, ctx.geometry)
        return grad_input, None

    @staticmethod
    def jvp(ctx, x_tangent, _geometry_tangent):
        x, pooled, offset, residual = ctx.saved_tensors
        return _jvp(x_tangent, x, pooled, offset, residual, ctx.geometry), None, None


@_signature_once
class _SoftPool3dBackward(torch.autograd.Function):
    """(grad_output g, input x) -> J(x)^T g. The saved output and statistics are functions of x:
    they are taken as constants here and the whole dependence on x is in the Hessian term."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_output, x, pooled, offset, residual, geometry):
        with torch._C._AutoDispatchBelowAutograd():
            return torch.ops.softpool_video.soft_pool3d_backward(
                grad_output, x, pooled, offset, residual, *geometry.derivative_args()
            )

    @staticmethod
    def setup_context(ctx, inputs, output):
        grad_output, x, pooled, offset, residual, geometry = inputs
        ctx.save_for_backward(grad_output, x, pooled, offset, residual)
        ctx.save_for_forward(grad_output, x, pooled, offset, residual)
        ctx.geometry = geometry

    @staticmethod
    def backward(ctx, grad_grad_input):
        grad_output, x, pooled, offset, residual = ctx.saved_tensors
        geometry = ctx.geometry
        d_grad_output = d_x = None
        if ctx.needs_input_grad[0]:  # d<gg, J^T g>/dg = J gg
            d_grad_output = _jvp(grad_grad_input, x, pooled, offset, residual, geometry)
        if ctx.needs_input_grad[1]:  # d<gg, J^T g>/dx = sum_o g_o H_o gg
            d_x = reference.hessian_vector_product(grad_output, x, grad_grad_input, geometry)
        return d_grad_output, d_x, None, None, None, None

    @staticmethod
    def jvp(ctx, grad_output_tangent, x_tangent, *_):
        grad_output, x, pooled, offset, residual = ctx.saved_tensors
        geometry = ctx.geometry
        result = None
        if grad_output_tangent is not None:
            result = _backward(grad_output_tangent, x, pooled, offset, residual, geometry)
        if x_tangent is not None:
            result = _add(result, reference.hessian_vector_product(grad_output, x, x_tangent, geometry))
        return result if result is not None else torch.zeros_like(x)


@_signature_once
class _SoftPool3dJvp(torch.autograd.Function):
    """(input tangent t, input x) -> J(x) t, output-shaped."""

    generate_vmap_rule = True

    @staticmethod
    def forward(tangent, x, pooled, offset, residual, geometry):
        with torch._C._AutoDispatchBelowAutograd():
            return torch.ops.softpool_video.soft_pool3d_jvp(
                tangent, x, pooled, offset, residual, *geometry.derivative_args()
            )

    @staticmethod
    def setup_context(ctx, inputs, output):
        tangent, x, pooled, offset, residual, geometry = inputs
        ctx.save_for_backward(tangent, x, pooled, offset, residual)
        ctx.save_for_forward(tangent, x, pooled, offset, residual)
        ctx.geometry = geometry

    @staticmethod
    def backward(ctx, grad_output):
        tangent, x, pooled, offset, residual = ctx.saved_tensors
        geometry = ctx.geometry
        d_tangent = d_x = None
        if ctx.needs_input_grad[0]:  # d<g, J t>/dt = J^T g
            d_tangent = _backward(grad_output, x, pooled, offset, residual, geometry)
        if ctx.needs_input_grad[1]:  # d<g, J t>/dx = sum_o g_o H_o t
            d_x = reference.hessian_vector_product(grad_output, x, tangent, geometry)
        return d_tangent, d_x, None, None, None, None

    @staticmethod
    def jvp(ctx, tangent_tangent, x_tangent, *_):
        tangent, x, pooled, offset, residual = ctx.saved_tensors
        geometry = ctx.geometry
        result = None
        if tangent_tangent is not None:
            result = _jvp(tangent_tangent, x, pooled, offset, residual, geometry)
        if x_tangent is not None:
            result = _add(result, reference.second_directional_derivative(x, tangent, x_tangent, geometry))
        return result if result is not None else torch.zeros_like(pooled)


@_signature_once
class _SoftPool3dTempered(torch.autograd.Function):
    """(input, temperature (C,)) -> (output, log_weight_offset, output_residual). One fused backward
    gives both gradients; a backward that builds a graph (double backward) differentiates
    ``tempered_composite`` instead, which is exact at every order."""

    @staticmethod
    def forward(x, temperature, geometry):
        with torch._C._AutoDispatchBelowAutograd():
            return torch.ops.softpool_video.soft_pool3d_tempered(
                x, temperature, *geometry.forward_args()[:-1]
            )

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, temperature, geometry = inputs
        pooled, offset, residual = output
        ctx.mark_non_differentiable(offset, residual)
        ctx.set_materialize_grads(False)  # the statistics' gradients: None, never zero-filled
        ctx.save_for_backward(x, temperature, pooled, offset, residual)
        ctx.geometry = geometry

    @staticmethod
    def backward(ctx, grad_output, _grad_offset, _grad_residual):
        x, temperature, pooled, offset, residual = ctx.saved_tensors
        needs_x, needs_t = ctx.needs_input_grad[:2]
        if grad_output is None:  # only the (non-differentiable) statistics were used
            return None, None, None
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            inputs = [t for t, needed in ((x, needs_x), (temperature, needs_t)) if needed]
            grads = iter(
                torch.autograd.grad(
                    tempered_composite(x, temperature, ctx.geometry), inputs, grad_output, create_graph=True
                )
            )
            return (next(grads) if needs_x else None), (next(grads) if needs_t else None), None
        grad_input, grad_windows = torch.ops.softpool_video.soft_pool3d_tempered_backward(
            grad_output, x, pooled, offset, residual, temperature, *ctx.geometry.derivative_args()[:-1]
        )
        # dL/dT_c: the windows' g * dy/dT summed over the batch and the output positions
        grad_temperature = grad_windows.sum(dim=(0, 2, 3, 4)) if needs_t else None
        return (grad_input if needs_x else None), grad_temperature, None


# --------------------------------------------------------------------------------------------
# Registrations on the ops.


def _fold_batch(info, in_dims, tensors):
    """Moves each vmapped dimension to the front (expanding unbatched tensors) and merges it into N."""
    size = info.batch_size
    folded = []
    for t, dim in zip(tensors, in_dims):
        t = t.unsqueeze(0).expand(size, *t.shape) if dim is None else t.movedim(dim, 0)
        folded.append(t.reshape(size * t.shape[1], *t.shape[2:]))
    return folded


def _unfold_batch(info, t):
    return t.unflatten(0, (info.batch_size, -1))


if HAVE_EXTENSION:
    _library = torch.library.Library("softpool_video", "IMPL")

    @torch.library.register_fake("softpool_video::soft_pool3d")
    def _soft_pool3d_fake(x, output_size, kernel_size, stride, padding, dilation, adaptive, temperature):
        shape = (*x.shape[:2], *output_size)
        fmt = torch.channels_last_3d if output_is_channels_last(x) else torch.contiguous_format
        output = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
        stat = statistic_dtype(x.dtype)
        offset = torch.empty(shape, dtype=stat, device=x.device, memory_format=fmt)
        residual = torch.empty(shape, dtype=stat, device=x.device, memory_format=fmt)
        return output, offset, residual

    def _check_derivative_fake(name, first, x, output, offset, residual, first_shape):
        _check_fake_argument(name, first, x, first_shape)
        _check_fake_argument("output", output, x, output.shape)
        _check_fake_argument("log_weight_offset", offset, x, output.shape)
        _check_fake_argument("output_residual", residual, x, output.shape)

    @torch.library.register_fake("softpool_video::soft_pool3d_backward")
    def _soft_pool3d_backward_fake(grad_output, x, output, offset, residual, *geometry):
        _check_derivative_fake("grad_output", grad_output, x, output, offset, residual, output.shape)
        fmt = torch.channels_last_3d if output_is_channels_last(x) else torch.contiguous_format
        return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)

    @torch.library.register_fake("softpool_video::soft_pool3d_jvp")
    def _soft_pool3d_jvp_fake(tangent, x, output, offset, residual, *geometry):
        _check_derivative_fake("input_tangent", tangent, x, output, offset, residual, x.shape)
        fmt = torch.channels_last_3d if output_is_channels_last(x) else torch.contiguous_format
        return torch.empty(output.shape, dtype=x.dtype, device=x.device, memory_format=fmt)

    def _check_temperature_fake(temperature, x):
        _check_fake_argument("temperature", temperature, x, (x.shape[1],))

    @torch.library.register_fake("softpool_video::soft_pool3d_tempered")
    def _soft_pool3d_tempered_fake(
        x, temperature, output_size, kernel_size, stride, padding, dilation, adaptive
    ):
        _check_temperature_fake(temperature, x)
        return _soft_pool3d_fake(x, output_size, kernel_size, stride, padding, dilation, adaptive, 1.0)

    @torch.library.register_fake("softpool_video::soft_pool3d_inference")
    def _soft_pool3d_inference_fake(x, output_size, *geometry_and_temperature):
        temperature_per_channel = geometry_and_temperature[-1]
        if temperature_per_channel is not None:
            _check_temperature_fake(temperature_per_channel, x)
        shape = (*x.shape[:2], *output_size)
        fmt = torch.channels_last_3d if output_is_channels_last(x) else torch.contiguous_format
        return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)

    @torch.library.register_fake("softpool_video::soft_pool3d_tempered_backward")
    def _soft_pool3d_tempered_backward_fake(grad_output, x, output, offset, residual, temperature, *geometry):
        _check_derivative_fake("grad_output", grad_output, x, output, offset, residual, output.shape)
        _check_temperature_fake(temperature, x)
        fmt = torch.channels_last_3d if output_is_channels_last(x) else torch.contiguous_format
        grad_input = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)
        grad_temperature = torch.empty(
            output.shape, dtype=statistic_dtype(x.dtype), device=x.device, memory_format=fmt
        )
        return grad_input, grad_temperature

    def _raw_op_under_functorch(name: str):
        raise RuntimeError(
            f"softpool_video: torch.ops.softpool_video.{name} cannot be called directly under torch.func "
            "transforms; call softpool_video.soft_pool3d (or the SoftPool modules), which support them"
        )

    def _soft_pool3d_autograd(
        keyset, x, output_size, kernel_size, stride, padding, dilation, adaptive, temperature
    ):
        if _functorch_active():
            _raw_op_under_functorch("soft_pool3d")
        geometry = PoolGeometry.from_op_args(
            output_size, kernel_size, stride, padding, dilation, adaptive, temperature
        )
        return _SoftPool3d.apply(x, geometry)

    def _derivative_autograd(function, name):
        def kernel(keyset, a, x, pooled, offset, residual, *args):
            if _functorch_active():
                _raw_op_under_functorch(name)
            geometry = PoolGeometry.from_op_args(pooled.shape[2:], *args)
            return function.apply(a, x, pooled, offset, residual, geometry)

        return kernel

    def _soft_pool3d_tempered_autograd(
        keyset, x, temperature, output_size, kernel_size, stride, padding, dilation, adaptive
    ):
        if _functorch_active():
            _raw_op_under_functorch("soft_pool3d_tempered")
        geometry = PoolGeometry.from_op_args(
            output_size, kernel_size, stride, padding, dilation, adaptive, 1.0
        )
        return _SoftPool3dTempered.apply(x, temperature, geometry)

    def _soft_pool3d_tempered_backward_autograd(keyset, *args):
        if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            raise RuntimeError(
                "softpool_video: soft_pool3d_tempered_backward has first derivatives only; for higher "
                "derivatives call softpool_video.soft_pool3d with a tensor temperature (it differentiates "
                "an exact composite when a graph is built)"
            )
        with torch._C._AutoDispatchBelowAutograd():
            return torch.ops.softpool_video.soft_pool3d_tempered_backward(*args)

    def _soft_pool3d_inference_autograd(keyset, x, *args):
        if torch.is_grad_enabled() and (x.requires_grad or (args[-1] is not None and args[-1].requires_grad)):
            raise RuntimeError(
                "softpool_video: soft_pool3d_inference has no derivatives (it keeps no statistics); "
                "call softpool_video.soft_pool3d, which picks it only when nothing is differentiated"
            )
        with torch._C._AutoDispatchBelowAutograd():
            return torch.ops.softpool_video.soft_pool3d_inference(x, *args)

    _library.impl("soft_pool3d", _soft_pool3d_autograd, "Autograd", with_keyset=True)
    _library.impl("soft_pool3d_inference", _soft_pool3d_inference_autograd, "Autograd", with_keyset=True)
    _library.impl("soft_pool3d_tempered", _soft_pool3d_tempered_autograd, "Autograd", with_keyset=True)
    _library.impl(
        "soft_pool3d_tempered_backward", _soft_pool3d_tempered_backward_autograd, "Autograd", with_keyset=True
    )
    _library.impl(
        "soft_pool3d_backward",
        _derivative_autograd(_SoftPool3dBackward, "soft_pool3d_backward"),
        "Autograd",
        with_keyset=True,
    )
    _library.impl(
        "soft_pool3d_jvp",
        _derivative_autograd(_SoftPool3dJvp, "soft_pool3d_jvp"),
        "Autograd",
        with_keyset=True,
    )

    @torch.library.register_vmap("softpool_video::soft_pool3d")
    def _soft_pool3d_vmap(info, in_dims, x, *args):
        (folded,) = _fold_batch(info, in_dims[:1], (x,))
        outputs = torch.ops.softpool_video.soft_pool3d(folded, *args)
        return tuple(_unfold_batch(info, t) for t in outputs), (0, 0, 0)

    def _derivative_vmap(op):
        def rule(info, in_dims, *args):
            tensors = _fold_batch(info, in_dims[:5], args[:5])
            return _unfold_batch(info, op(*tensors, *args[5:])), 0

        return rule

    torch.library.register_vmap(
        "softpool_video::soft_pool3d_backward",
        _derivative_vmap(torch.ops.softpool_video.soft_pool3d_backward),
    )
    torch.library.register_vmap(
        "softpool_video::soft_pool3d_jvp", _derivative_vmap(torch.ops.softpool_video.soft_pool3d_jvp)
    )
