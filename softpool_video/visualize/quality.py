"""Image-quality metrics for video tensors: PSNR and SSIM.

Both take two tensors of the same shape ``(..., H, W)`` with values in ``[0, data_range]``; for
a video that is ``(C, T, H, W)`` or ``(N, C, T, H, W)``.

- :func:`psnr` is the PSNR of the whole tensor: one mean squared error over every element (all
  channels and frames), not the mean of per-frame PSNRs. Identical inputs give ``inf``.
- :func:`ssim` is SSIM as defined by Wang et al. 2004 ("Image quality assessment: from error
  visibility to structural similarity"): an 11x11 Gaussian window with sigma 1.5, constants
  K1 = 0.01 and K2 = 0.03, statistics over "valid" window positions only (as their reference
  ``ssim_index.m``). It is computed **per channel and per frame** (each ``(H, W)`` plane is one
  grayscale image, RGB channels are not converted to luma) and the SSIM maps of all planes are
  averaged into one number. Frames smaller than the window use the largest odd window that fits,
  with the same sigma.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_window", "psnr", "ssim"]

# Planes processed at once by ssim(): bounds the intermediates on long videos.
_SSIM_CHUNK_PLANES = 256


def _check_pair(x: torch.Tensor, y: torch.Tensor, data_range: float, fn: str) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{fn}: x and y must be torch.Tensor, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"{fn}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() < 2 or x.shape[-1] == 0 or x.shape[-2] == 0 or x.numel() == 0:
        raise ValueError(
            f"{fn}: inputs must be (..., H, W) with non-empty planes, got shape {tuple(x.shape)}"
        )
    if not data_range > 0:
        raise ValueError(f"{fn}: data_range must be > 0, got {data_range!r}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``, ``inf`` when x == y.

    Args:
        x, y: tensors of the same shape ``(..., H, W)``, e.g. videos ``(C, T, H, W)``.
        data_range: the peak value (1.0 for frames in [0, 1], 255 for 8-bit values).
    """
    _check_pair(x, y, data_range, "psnr")
    # integer frames (e.g. uint8) would wrap around when subtracted
    x, y = (t.detach() if t.is_floating_point() else t.detach().double() for t in (x, y))
    difference = x - y
    mse = difference.square().sum(dtype=torch.float64).item() / difference.numel()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps; the 2-D SSIM window is its outer product."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    weights = torch.exp(-(coords**2) / (2 * sigma**2))
    return weights / weights.sum()


def _filter_valid(planes: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of ``(1, P, H, W)`` planes over valid positions only."""
    count, size = planes.shape[1], window.numel()
    # depthwise (one group per plane): several times faster on CPU than a batch of 1-channel convs
    planes = F.conv2d(planes, window.view(1, 1, size, 1).expand(count, 1, size, 1), groups=count)
    return F.conv2d(planes, window.view(1, 1, 1, size).expand(count, 1, 1, size), groups=count)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Mean structural similarity (Wang et al. 2004) over every ``(H, W)`` plane of x and y.

    Args:
        x, y: tensors of the same shape ``(..., H, W)``; every leading index (batch, channel,
            frame) is an independent grayscale plane.
        data_range: the peak value; ``C1 = (k1 * data_range)^2``, ``C2 = (k2 * data_range)^2``.
        window_size: odd side of the Gaussian window; planes smaller than it use the largest odd
            size that fits.
        sigma: standard deviation of the Gaussian window, in pixels.

    Returns:
        The mean of the SSIM map over all planes and valid window positions (1.0 when x == y).
    """
    _check_pair(x, y, data_range, "ssim")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"ssim: window_size must be a positive odd int, got {window_size!r}")
    height, width = x.shape[-2:]
    size = min(window_size, height, width)
    size -= 1 - size % 2  # largest odd size that fits
    # float32 is enough for the variances (E[x^2] - E[x]^2) of data in [0, data_range]: their
    # rounding error (~1e-7 * data_range^2) is far below C2; float64 input stays float64
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    window = gaussian_window(size, sigma, dtype=dtype)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    x_planes = x.detach().reshape(1, -1, height, width)
    y_planes = y.detach().reshape(1, -1, height, width)
    total, count = 0.0, 0
    for start in range(0, x_planes.shape[1], _SSIM_CHUNK_PLANES):
        xs = x_planes[:, start : start + _SSIM_CHUNK_PLANES].to(dtype)
        ys = y_planes[:, start : start + _SSIM_CHUNK_PLANES].to(dtype)
        mu_x, mu_y = _filter_valid(xs, window), _filter_valid(ys, window)
        var_x = _filter_valid(xs * xs, window) - mu_x**2
        var_y = _filter_valid(ys * ys, window) - mu_y**2
        cov_xy = _filter_valid(xs * ys, window) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
        denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        ssim_map = numerator / denominator
        total += ssim_map.double().sum().item()
        count += ssim_map.numel()
    return total / count
