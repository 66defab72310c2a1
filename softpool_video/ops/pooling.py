"""SoftPool functional API: argument checks, output sizes and the call into the operator.

Every function accepts batched ``(N, C, *spatial)`` or unbatched ``(C, *spatial)`` input and views
it as 5-D ``(N, C, T, H, W)`` (1D and 2D pooling are 3D pooling with singleton dimensions), so the
one 3D operator serves them all. Output sizes and argument checks follow
``torch.nn.functional.max_pool{1,2,3}d`` exactly, including ``ceil_mode`` and dilation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from softpool_video.ops import _extension, _registration
from softpool_video.ops._geometry import PoolGeometry
from softpool_video.ops.reference import soft_pool3d_composite

__all__ = [
    "adaptive_soft_pool1d",
    "adaptive_soft_pool2d",
    "adaptive_soft_pool3d",
    "pool_output_size",
    "soft_pool1d",
    "soft_pool2d",
    "soft_pool3d",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _as_tuple(value, dims: int, name: str, fn: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * dims
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) == 1:
            values = values * dims
        if len(values) == dims and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return values
    raise ValueError(f"{fn}: {name} must be an int or {dims} ints, got {value!r}")


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of max_pool along one dimension (torch's ``pooling_output_shape``).

    Plain integer arithmetic without branches on the size, so a symbolic size (torch.compile with
    dynamic shapes, torch.export) gives an expression instead of a guard.
    """
    numerator = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode:  # the last window must start inside the input or the left padding
        out = torch.sym_min(out, (size + padding - 1) // stride + 1)
    return out


def _check_input(x, dims: int, fn: str) -> tuple[torch.Tensor, bool]:
    """Validates ``x`` and returns it viewed as 5-D, plus whether it had a batch dimension."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: input must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{fn}: input must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.dim() not in (dims + 1, dims + 2):
        layout = ", ".join("THW"[3 - dims :])
        raise ValueError(
            f"{fn}: input must be {dims + 2}-D (N, C, {layout}) or {dims + 1}-D (C, {layout}), "
            f"got shape {tuple(x.shape)}"
        )
    batched = x.dim() == dims + 2
    x5 = x if batched else x.unsqueeze(0)
    for _ in range(3 - dims):
        x5 = x5.unsqueeze(2)
    return x5, batched


def _restore(y5: torch.Tensor, dims: int, batched: bool) -> torch.Tensor:
    for _ in range(3 - dims):
        y5 = y5.squeeze(2)
    return y5 if batched else y5.squeeze(0)


def _lift(values: tuple[int, ...], dims: int, fill: int) -> tuple[int, int, int]:
    """Per-dimension arguments of 1D/2D pooling as 3D arguments (singleton leading dims)."""
    return (fill,) * (3 - dims) + tuple(values)


def _run(x5: torch.Tensor, geometry: PoolGeometry) -> torch.Tensor:
    if torch.onnx.is_in_onnx_export():
        # ONNX has no SoftPool: export the composite of standard ops (Gather, ReduceMax, Exp, ...;
        # the window max is subtracted, as in the kernels), which any ONNX runtime runs.
        return soft_pool3d_composite(x5, geometry)[0]
    if _extension.kernels_for(x5.device.type):
        return _registration.soft_pool3d(x5, geometry)
    _extension.warn_fallback_once(x5.device.type)
    return soft_pool3d_composite(x5, geometry)[0]


def _check_temperature(temperature, x5: torch.Tensor, fn: str) -> tuple[float, torch.Tensor | None]:
    """``(temperature of the fused op, tensor temperature or None)``.

    A number is checked here and runs in the fused op (``(float, None)``). A tensor (0-d, or one value
    per channel ``(C,)``) is checked for shape, dtype and device only: checking its values would cost a
    device sync on every call, so keeping it positive and finite is the caller's job (the modules
    parametrise it as ``log T``). It then runs in the tempered op: ``(1.0, T as 0-d or (C,))``.
    """
    if isinstance(temperature, torch.Tensor):
        return 1.0, _temperature_view(temperature, x5, fn)
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: temperature must be a positive number, got {temperature!r}") from None
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{fn}: temperature must be a finite number > 0, got {temperature!r}")
    return value, None


def _temperature_view(temperature: torch.Tensor, x5: torch.Tensor, fn: str) -> torch.Tensor:
    """A tensor temperature, checked, as a 0-d or ``(C,)`` tensor of the statistic dtype."""
    channels = x5.shape[1]
    if temperature.dim() > 1 or (temperature.dim() == 1 and temperature.shape[0] != channels):
        raise ValueError(
            f"{fn}: temperature must be a number, a 0-d tensor or a tensor of shape (C,) = ({channels},) "
            f"(one value per channel), got a tensor of shape {tuple(temperature.shape)}"
        )
    if not temperature.is_floating_point():
        raise ValueError(f"{fn}: a temperature tensor must be floating point, got {temperature.dtype}")
    if temperature.device != x5.device and not (temperature.dim() == 0 and temperature.device.type == "cpu"):
        raise ValueError(f"{fn}: temperature is on {temperature.device} but input is on {x5.device}")
    # float64 inputs take it in float64; half inputs are scaled in float32 (x / T for a small T
    # overflows float16), and the output is cast back to the input's dtype.
    return temperature.to(torch.float64 if x5.dtype == torch.float64 else torch.float32)


def _run_at_temperature(x5: torch.Tensor, geometry: PoolGeometry, temperature: torch.Tensor | None):
    """The fused op at the geometry's temperature, or at a tensor temperature T.

    A tensor temperature runs the tempered op, whose one fused backward gives dL/dx and
    dL/dT = sum_o g_o dy_o/dT (dy/dT = -Var_s(x) / T^2) from the kernels. Where that op does not
    serve -- ONNX export, forward-mode AD, torch.func transforms, no compiled kernels -- the exact
    identity softpool_T(x) = T * softpool_1(x / T) around the float op gives the same values and
    derivatives of every order.
    """
    if temperature is None:
        return _run(x5, geometry)
    fused = (
        not torch.onnx.is_in_onnx_export()
        and _extension.kernels_for(x5.device.type)
        and not torch._C._are_functorch_transforms_active()
        and torch.autograd.forward_ad._current_level < 0
    )
    if fused:
        per_channel = temperature.reshape(-1).to(x5.device).expand(x5.shape[1])
        return _registration.soft_pool3d_tempered(x5, per_channel, geometry)
    return _registration.tempered_composite(x5, temperature, geometry, pool=_run)


def _soft_pool(x, dims, kernel_size, stride, padding, dilation, ceil_mode, temperature, fn):
    x5, batched = _check_input(x, dims, fn)
    kernel = _as_tuple(kernel_size, dims, "kernel_size", fn)
    stride_ = kernel if stride is None or (isinstance(stride, Sequence) and len(stride) == 0) else stride
    strides = _as_tuple(stride_, dims, "stride", fn)
    pads = _as_tuple(padding, dims, "padding", fn)
    dils = _as_tuple(dilation, dims, "dilation", fn)
    temperature, temperature_tensor = _check_temperature(temperature, x5, fn)
    for name, values, minimum in (("kernel_size", kernel, 1), ("stride", strides, 1), ("dilation", dils, 1)):
        if any(v < minimum for v in values):
            raise ValueError(f"{fn}: {name} must be positive, got {values}")
    if any(p < 0 for p in pads):
        raise ValueError(f"{fn}: padding must be non-negative, got {pads}")
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        raise ValueError(
            f"{fn}: padding should be at most half of kernel_size, "
            f"but got padding={pads} and kernel_size={kernel}"
        )
    spatial = tuple(x.shape[-dims:])
    out = tuple(
        pool_output_size(size, k, s, p, d, bool(ceil_mode))
        for size, k, s, p, d in zip(spatial, kernel, strides, pads, dils)
    )
    if any(o < 1 for o in out):
        raise ValueError(
            f"{fn}: input spatial size {spatial} is too small for kernel_size={kernel}, dilation={dils}, "
            f"padding={pads}: the output size would be {out}"
        )
    geometry = PoolGeometry(
        _lift(out, dims, 1),
        _lift(kernel, dims, 1),
        _lift(strides, dims, 1),
        _lift(pads, dims, 0),
        _lift(dils, dims, 1),
        False,
        temperature,
    )
    return _restore(_run_at_temperature(x5, geometry, temperature_tensor), dims, batched)


def _adaptive_soft_pool(x, dims, output_size, temperature, fn):
    x5, batched = _check_input(x, dims, fn)
    if output_size is None or isinstance(output_size, int):
        requested = (output_size,) * dims
    elif isinstance(output_size, Sequence) and len(output_size) == dims:
        requested = tuple(output_size)
    else:
        raise ValueError(f"{fn}: output_size must be an int, None or {dims} entries, got {output_size!r}")
    spatial = tuple(x.shape[-dims:])
    out = tuple(s if o is None else o for o, s in zip(requested, spatial))
    if not all(isinstance(o, (int, torch.SymInt)) and not isinstance(o, bool) and o >= 1 for o in out):
        raise ValueError(f"{fn}: output_size entries must be positive ints or None, got {output_size!r}")
    if any(s < 1 for s in spatial):
        raise ValueError(f"{fn}: input has an empty spatial dimension, shape {tuple(x.shape)}")
    temperature, temperature_tensor = _check_temperature(temperature, x5, fn)
    geometry = PoolGeometry(_lift(out, dims, 1), adaptive=True, temperature=temperature)
    return _restore(_run_at_temperature(x5, geometry, temperature_tensor), dims, batched)


def soft_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, temperature=1.0):
    """SoftPool over ``(N, C, L)`` or ``(C, L)``; arguments as ``F.max_pool1d`` plus ``temperature``."""
    return _soft_pool(x, 1, kernel_size, stride, padding, dilation, ceil_mode, temperature, "soft_pool1d")


def soft_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, temperature=1.0):
    """SoftPool over ``(N, C, H, W)`` or ``(C, H, W)``; arguments as ``F.max_pool2d`` plus ``temperature``."""
    return _soft_pool(x, 2, kernel_size, stride, padding, dilation, ceil_mode, temperature, "soft_pool2d")


def soft_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, temperature=1.0):
    """SoftPool over ``(N, C, T, H, W)`` or ``(C, T, H, W)``.

    Each output is the softmax(x / temperature)-weighted sum of its window; padded positions are
    excluded from the window (never counted as zeros). Arguments and output size as
    ``F.max_pool3d``; ``temperature`` -> 0 approaches max pooling, large values approach average
    pooling of the window.

    ``temperature`` is a positive number, or a tensor to learn it: 0-d (one value) or ``(C,)`` (one
    per channel). A tensor runs in the tempered op, whose fused backward returns the gradient of T
    (``sum g * dy/dT``, ``dy/dT = -Var_s(x) / T^2``) with that of x; higher derivatives are exact too.
    Its values are not checked (that would need a device sync), so keep it positive, e.g. as
    ``log_t.exp()`` (what ``SoftPool3d(learn_temperature=True)`` does). The other functions take
    ``temperature`` the same way.
    """
    return _soft_pool(x, 3, kernel_size, stride, padding, dilation, ceil_mode, temperature, "soft_pool3d")


def adaptive_soft_pool1d(x, output_size, temperature=1.0):
    """Adaptive SoftPool to length ``output_size`` (windows as ``F.adaptive_avg_pool1d``)."""
    return _adaptive_soft_pool(x, 1, output_size, temperature, "adaptive_soft_pool1d")


def adaptive_soft_pool2d(x, output_size, temperature=1.0):
    """Adaptive SoftPool to ``output_size`` (H, W); ``None`` entries keep the input size."""
    return _adaptive_soft_pool(x, 2, output_size, temperature, "adaptive_soft_pool2d")


def adaptive_soft_pool3d(x, output_size, temperature=1.0):
    """Adaptive SoftPool to ``output_size`` (T, H, W); ``None`` entries keep the input size."""
    return _adaptive_soft_pool(x, 3, output_size, temperature, "adaptive_soft_pool3d")
