"""Pure-PyTorch SoftPool: the test oracle, the fallback without the compiled extension, the
composite behind higher-order derivatives, and the decomposition that ONNX export uses.

Built from ordinary differentiable tensor ops (gather every window explicitly, then a masked,
max-subtracted softmax), so it shares no code with the C++/CUDA kernels, autograd and forward-mode
AD differentiate it to any order, and it traces with symbolic shapes (torch.export, ONNX). It uses
memory proportional to (output size x window size): fine for tests, for second derivatives and as
a fallback, not for speed.
"""

from __future__ import annotations

import torch

from softpool_video.ops._geometry import PoolGeometry

__all__ = [
    "gather_windows",
    "hessian_vector_product",
    "scatter_windows",
    "second_directional_derivative",
    "soft_pool3d_composite",
    "soft_pool3d_reference",
    "window_indices",
]


def window_indices(
    input_size: int,
    output_size: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    adaptive: bool,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input index of every window tap along one dimension (``input_size >= 1``).

    Returns ``(index, valid)``, both ``(output_size, window_length)``: ``index`` is clamped into the
    input so it can be gathered, ``valid`` says which taps lie inside the input (and, for adaptive
    windows, inside the window: the length is a bound that holds for every window).
    """
    out = torch.arange(output_size, device=device)
    if adaptive:
        start = (out * input_size) // output_size
        end = -((-(out + 1) * input_size) // output_size)  # ceil division
        # in / out when out divides in, else at most ceil(in / out) + 1; plain integer arithmetic,
        # so it stays an expression of symbolic sizes
        length = (input_size + output_size - 1) // output_size + (
            input_size % output_size + output_size - 1
        ) // (output_size)
        taps = torch.arange(length, device=device)
        index = start[:, None] + taps[None, :]
        valid = taps[None, :] < (end - start)[:, None]
    else:
        taps = torch.arange(kernel, device=device)
        index = out[:, None] * stride - padding + taps[None, :] * dilation
        valid = (index >= 0) & (index < input_size)
    return index.clamp(0, input_size - 1), valid


def _indices(x_shape, geometry: PoolGeometry, device):
    return [
        window_indices(
            x_shape[2 + d],
            geometry.output_size[d],
            geometry.kernel_size[d],
            geometry.stride[d],
            geometry.padding[d],
            geometry.dilation[d],
            geometry.adaptive,
            device,
        )
        for d in range(3)
    ]


def gather_windows(x: torch.Tensor, geometry: PoolGeometry) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of ``x`` ``(N, C, T, H, W)`` as ``(N, C, oT, oH, oW, K)`` plus ``valid``
    ``(oT, oH, oW, K)`` (taps outside the input hold a clamped neighbour and are not valid)."""
    windows = x
    masks = []
    for d, (index, ok) in enumerate(_indices(x.shape, geometry, x.device)):
        axis = 2 + 2 * d  # the dimension being gathered; earlier dims are already split into (out, tap)
        windows = windows.index_select(axis, index.reshape(-1)).unflatten(axis, index.shape)
        masks.append(ok)
    # (N, C, oT, kT, oH, kH, oW, kW) -> (N, C, oT, oH, oW, kT*kH*kW)
    windows = windows.permute(0, 1, 2, 4, 6, 3, 5, 7).flatten(-3)
    valid_t, valid_h, valid_w = masks
    valid = (
        valid_t[:, None, None, :, None, None]
        & valid_h[None, :, None, None, :, None]
        & valid_w[None, None, :, None, None, :]
    )
    return windows, valid.flatten(-3)


def scatter_windows(values: torch.Tensor, geometry: PoolGeometry, input_shape) -> torch.Tensor:
    """The transpose of :func:`gather_windows`: sums every tap of ``values`` ``(N, C, oT, oH, oW, K)``
    into its input position, ``(N, C, T, H, W)``. Taps that are not valid must hold 0."""
    (it, _), (ih, _), (iw, _) = _indices(input_shape, geometry, values.device)
    n, c = values.shape[:2]
    out_t, out_h, out_w = values.shape[2:5]
    grid = values.unflatten(-1, (it.shape[1], ih.shape[1], iw.shape[1]))
    grid = grid.permute(0, 1, 2, 5, 3, 6, 4, 7)  # (N, C, oT, kT, oH, kH, oW, kW)
    size_t, size_h, size_w = input_shape[2:]
    grid = grid.flatten(6, 7)
    grid = grid.new_zeros((*grid.shape[:6], size_w)).index_add(6, iw.reshape(-1), grid)
    grid = grid.flatten(4, 5)
    grid = grid.new_zeros((*grid.shape[:4], size_h, size_w)).index_add(4, ih.reshape(-1), grid)
    grid = grid.flatten(2, 3)
    return grid.new_zeros((n, c, size_t, size_h, size_w)).index_add(2, it.reshape(-1), grid)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class _Windows:
    """The softmax of every window of ``x`` (computed in float32 for half inputs), differentiable.

    ``weights`` (s), ``values`` (x with 0 at unusable taps) and ``output`` (y, keepdim) are exact for
    windows with a finite maximum; ``finite``, ``has_nan`` and ``window_max`` tell the others apart.
    """

    def __init__(self, x: torch.Tensor, geometry: PoolGeometry):
        windows, valid = gather_windows(x.to(_compute_dtype(x.dtype)), geometry)
        self.geometry = geometry
        self.valid = valid
        inv_t = 1.0 / geometry.temperature
        masked = torch.where(valid, windows, float("-inf"))
        self.window_max = masked.amax(dim=-1, keepdim=True)
        self.finite = torch.isfinite(self.window_max)
        # the softmax does not depend on the shift, so it carries no gradient
        shift = torch.where(self.finite, self.window_max, torch.zeros_like(self.window_max)).detach()
        self.usable = valid & (masked > float("-inf")) & self.finite
        # exp of a non-positive argument: never overflows; invalid and -inf taps get weight 0
        exponent = torch.where(self.usable, (windows - shift) * inv_t, float("-inf"))
        unnormalised = torch.exp(exponent)
        denominator = unnormalised.sum(dim=-1, keepdim=True)
        safe_denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        self.shift = shift
        self.log_denominator = torch.log(safe_denominator)
        self.weights = unnormalised / safe_denominator
        self.values = torch.where(self.usable, windows, torch.zeros_like(windows))
        self.offset = (self.weights * (self.values - shift)).sum(dim=-1, keepdim=True)
        self.output = shift + self.offset
        self.has_nan = (torch.isnan(windows) & valid).any(dim=-1, keepdim=True)
        # d_i = (x_i - y) / T for usable taps
        self.scaled_difference = torch.where(self.usable, (self.values - self.output) * inv_t, 0.0)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """A tangent's windows, 0 at invalid taps."""
        windows, _ = gather_windows(t.to(self.weights.dtype), self.geometry)
        return torch.where(self.valid, windows, torch.zeros_like(windows))

    def special(self, value: torch.Tensor) -> torch.Tensor:
        """Second derivatives: NaN for windows with NaN, 0 for windows with an infinite maximum
        (their first derivative is constant)."""
        value = torch.where(self.finite, value, torch.zeros_like(value))
        return torch.where(self.has_nan, torch.full_like(value, float("nan")), value)

    def hessian_times(self, v_windows: torch.Tensor) -> torch.Tensor:
        """(H_o v)_j for every window o and tap j, with H_o the Hessian of y_o:
        (s_j / T) [(2 + d_j)(v_j - A) - B],  A = sum_i s_i v_i,  B = sum_i s_i d_i v_i."""
        s, d = self.weights, self.scaled_difference
        a = (s * v_windows).sum(dim=-1, keepdim=True)
        b = (s * d * v_windows).sum(dim=-1, keepdim=True)
        return self.special(s * ((2 + d) * (v_windows - a) - b) / self.geometry.temperature)


def soft_pool3d_composite(x: torch.Tensor, geometry: PoolGeometry):
    """What ``torch.ops.softpool_video.soft_pool3d`` returns, from standard ops:
    ``(output, log_weight_offset, output_residual)`` (see softpool_kernel.h for the statistics).

    Special values as the kernels: NaN -> NaN, +inf -> +inf, all -inf or empty -> -inf.
    """
    w = _Windows(x, geometry)
    inv_t = 1.0 / geometry.temperature
    out = w.output
    window_max = w.window_max
    out = torch.where(window_max == float("-inf"), window_max, out)  # all -inf, or an empty window
    out = torch.where(window_max == float("inf"), window_max, out)
    out = torch.where(w.has_nan, torch.full_like(out, float("nan")), out)
    stored = out.to(x.dtype)
    stored_c = stored.to(out.dtype)
    offset = (stored_c - w.shift) * inv_t - w.log_denominator
    residual = ((w.shift - stored_c) + w.offset) * inv_t
    # windows with an infinite maximum: the taps equal to it share the derivative equally
    ties = (w.valid & (w.gather(x) == window_max)).sum(dim=-1, keepdim=True).to(out.dtype)
    tie_offset = torch.where(ties > 0, -torch.log(ties.clamp(min=1)), torch.full_like(ties, float("-inf")))
    offset = torch.where(w.finite, offset, tie_offset)
    residual = torch.where(w.finite, residual, torch.zeros_like(residual))
    nan = torch.full_like(offset, float("nan"))
    offset = torch.where(w.has_nan, nan, offset)
    residual = torch.where(w.has_nan, nan, residual)
    return stored.squeeze(-1), offset.squeeze(-1), residual.squeeze(-1)


def soft_pool3d_reference(
    x: torch.Tensor,
    output_size: tuple[int, int, int],
    kernel_size: tuple[int, int, int] = (1, 1, 1),
    stride: tuple[int, int, int] = (1, 1, 1),
    padding: tuple[int, int, int] = (0, 0, 0),
    dilation: tuple[int, int, int] = (1, 1, 1),
    adaptive: bool = False,
    temperature: float = 1.0,
) -> torch.Tensor:
    """SoftPool of a 5-D tensor ``(N, C, T, H, W)`` with an explicit ``output_size``.

    Same contract as ``torch.ops.softpool_video.soft_pool3d`` (first output only). Half and bfloat16
    are computed in float32 and cast back.
    """
    if x.dim() != 5:
        raise ValueError(f"x must be 5-D (N, C, T, H, W), got shape {tuple(x.shape)}")
    geometry = PoolGeometry(
        tuple(output_size),
        tuple(kernel_size),
        tuple(stride),
        tuple(padding),
        tuple(dilation),
        adaptive,
        temperature,
    )
    return soft_pool3d_composite(x, geometry)[0]


def hessian_vector_product(
    g: torch.Tensor, x: torch.Tensor, v: torch.Tensor, geometry: PoolGeometry
) -> torch.Tensor:
    """sum_o g_o H_o v: the derivative of the SoftPool gradient (for grad_output g) along v,
    input-shaped. Exact for windows of finite values; differentiable again."""
    w = _Windows(x, geometry)
    hv = w.hessian_times(w.gather(v)) * g.to(w.weights.dtype).unsqueeze(-1)
    return scatter_windows(hv, geometry, x.shape).to(x.dtype)


def second_directional_derivative(
    x: torch.Tensor, t: torch.Tensor, v: torch.Tensor, geometry: PoolGeometry
) -> torch.Tensor:
    """t^T H_o v for every output o (output-shaped): the derivative of the forward-mode tangent
    J t along v. Exact for windows of finite values; differentiable again."""
    w = _Windows(x, geometry)
    return (w.gather(t) * w.hessian_times(w.gather(v))).sum(dim=-1).to(x.dtype)
