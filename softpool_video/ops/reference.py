"""Pure-PyTorch SoftPool: the test oracle, and the fallback when the compiled extension is absent.

Built from ordinary differentiable tensor ops (gather every window explicitly, then a masked,
max-subtracted softmax), so it shares no code with the C++/CUDA kernels and its gradient comes from
autograd. It uses memory proportional to (output size x window size): fine for tests and as a
fallback, not for speed.
"""

from __future__ import annotations

import torch

__all__ = ["soft_pool3d_reference", "window_indices"]


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
    """Input index of every window tap along one dimension.

    Returns ``(index, valid)``, both ``(output_size, window_length)``: ``index`` is clamped into the
    input so it can be gathered, ``valid`` says which taps lie inside the input.
    """
    out = torch.arange(output_size, device=device)
    if adaptive:
        start = (out * input_size) // output_size
        end = -((-(out + 1) * input_size) // output_size)  # ceil division
        length = int((end - start).max()) if output_size else 0
        taps = torch.arange(length, device=device)
        index = start[:, None] + taps[None, :]
        valid = taps[None, :] < (end - start)[:, None]
    else:
        taps = torch.arange(kernel, device=device)
        index = out[:, None] * stride - padding + taps[None, :] * dilation
        valid = (index >= 0) & (index < input_size)
    return index.clamp(0, max(input_size - 1, 0)), valid


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
    compute_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xc = x.to(compute_dtype)
    n, c = x.shape[:2]
    windows = xc
    masks = []
    for d in range(3):
        index, ok = window_indices(
            x.shape[2 + d],
            output_size[d],
            kernel_size[d],
            stride[d],
            padding[d],
            dilation[d],
            adaptive,
            x.device,
        )
        axis = 2 + 2 * d  # the dimension being gathered; earlier dims are already split into (out, tap)
        windows = windows.index_select(axis, index.reshape(-1)).unflatten(axis, index.shape)
        masks.append(ok)
    # windows: (N, C, oT, kT, oH, kH, oW, kW) -> (N, C, oT, oH, oW, kT*kH*kW)
    windows = windows.permute(0, 1, 2, 4, 6, 3, 5, 7).flatten(-3)
    valid_t, valid_h, valid_w = masks
    valid = (
        valid_t[:, None, None, :, None, None]
        & valid_h[None, :, None, None, :, None]
        & valid_w[None, None, :, None, None, :]
    )
    valid = valid.flatten(-3).expand(n, c, *valid.shape[:3], -1)

    neg_inf = torch.tensor(float("-inf"), dtype=compute_dtype, device=x.device)
    masked = torch.where(valid, windows, neg_inf)
    window_max = masked.amax(dim=-1, keepdim=True)
    finite_max = torch.isfinite(window_max)
    shift = torch.where(finite_max, window_max, torch.zeros_like(window_max))
    usable = valid & (masked > float("-inf")) & finite_max
    # exp of a non-positive argument: never overflows; invalid and -inf taps get weight 0
    weights = torch.where(usable, torch.exp((torch.where(usable, masked, shift) - shift) / temperature), 0.0)
    values = torch.where(usable, masked, torch.zeros_like(masked))
    denominator = weights.sum(dim=-1)
    numerator = (weights * values).sum(dim=-1)
    out = numerator / torch.where(denominator > 0, denominator, torch.ones_like(denominator))

    window_max = window_max.squeeze(-1)
    has_nan = (torch.isnan(windows) & valid).any(dim=-1)
    out = torch.where(window_max == float("-inf"), window_max, out)  # all -inf, or an empty window
    out = torch.where(window_max == float("inf"), window_max, out)
    out = torch.where(has_nan, torch.full_like(out, float("nan")), out)
    return out.to(x.dtype)
