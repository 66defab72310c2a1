"""Repeated time-height-width pooling of a video, the anti-aliased reference, and upsampling back.

Every function takes a video ``(C, T, H, W)`` or a batch ``(N, C, T, H, W)`` of float values and
returns the same layout. Pooling windows never overlap (stride = kernel), so level ``l`` shrinks
each dimension by ``kernel ** l`` (rounding down: trailing frames/rows/columns that do not fill a
window are dropped, as ``F.max_pool3d`` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from softpool_video.constants import POOL_KINDS
from softpool_video.ops import soft_pool3d

__all__ = [
    "POOLING_METHODS",
    "REFERENCE_FILTERS",
    "as_kernel3",
    "check_levels",
    "covered_size",
    "enlarge_for_display",
    "level_factor",
    "pool_levels",
    "pool_video",
    "reference_downsample",
    "sorted_methods",
    "upsample_to",
]

# Display and table order; the side-by-side video reads original | max | avg | soft.
POOLING_METHODS = POOL_KINDS  # display order: the baselines, then SoftPool
# "box": area average over each window (the reference, equal to avg pooling by construction);
# "triangle": anti-aliased linear resize (wider, overlapping support; a reference no method equals).
REFERENCE_FILTERS = ("box", "triangle")


def _batched(video: torch.Tensor, fn: str) -> tuple[torch.Tensor, bool]:
    if not isinstance(video, torch.Tensor) or video.dim() not in (4, 5):
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"{fn}: video must be (C, T, H, W) or (N, C, T, H, W), got {shape}")
    if not video.is_floating_point():
        raise ValueError(f"{fn}: video must be a float tensor, got {video.dtype}")
    return (video, True) if video.dim() == 5 else (video.unsqueeze(0), False)


def _unbatched(video: torch.Tensor, batched: bool) -> torch.Tensor:
    return video if batched else video.squeeze(0)


def as_kernel3(kernel, fn: str = "kernel") -> tuple[int, int, int]:
    values = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"{fn} must be an int or 3 positive ints (T, H, W), got {kernel!r}")
    return values


def sorted_methods(methods: Sequence[str]) -> list[str]:
    """Validated, de-duplicated pooling method names in display order (max, avg, soft)."""
    names = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in names if m not in POOLING_METHODS]
    if unknown or not names:
        raise ValueError(f"methods must be a non-empty subset of {list(POOLING_METHODS)}, got {names!r}")
    return [m for m in POOLING_METHODS if m in names]


def level_factor(kernel, level: int) -> tuple[int, int, int]:
    """Shrink factor (T, H, W) after ``level`` poolings with ``kernel``: ``kernel ** level``."""
    return tuple(k**level for k in as_kernel3(kernel))


def covered_size(size: Sequence[int], kernel, level: int) -> tuple[int, int, int]:
    """The (T, H, W) extent of the input that level ``level`` summarises (windows that fit)."""
    return tuple((s // f) * f for s, f in zip(size, level_factor(kernel, level)))


def check_levels(size: Sequence[int], kernel, levels: int) -> None:
    """Raises ``ValueError`` (naming ``levels`` and ``kernel``) when a (T, H, W) video is too small."""
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    factor = level_factor(kernel, levels)
    if any(s < f for s, f in zip(size, factor)):
        raise ValueError(
            f"levels={levels} with kernel={as_kernel3(kernel)} needs at least {factor[0]} frames of "
            f"{factor[1]}x{factor[2]} pixels (T, H, W = {tuple(factor)}), but the video is "
            f"{tuple(size)}: use fewer levels, a smaller kernel or a longer time range"
        )


def pool_video(video: torch.Tensor, method: str, kernel, temperature: float = 1.0) -> torch.Tensor:
    """One level of non-overlapping ``method`` pooling over time, height and width.

    Args:
        video: ``(C, T, H, W)`` or ``(N, C, T, H, W)``.
        method: "max", "avg" or "soft".
        kernel: window (and stride) as an int or (T, H, W).
        temperature: SoftPool temperature (ignored by max and avg); with frames in [0, 1],
            ``temperature=1/255`` equals SoftPool on 8-bit pixel values.

    Returns:
        ``(C, T // kT, H // kH, W // kW)`` (batched input keeps N).
    """
    kernel = as_kernel3(kernel)
    x, batched = _batched(video, "pool_video")
    if method == "max":
        y = F.max_pool3d(x, kernel, stride=kernel)
    elif method == "avg":
        y = F.avg_pool3d(x, kernel, stride=kernel)
    elif method == "soft":
        y = soft_pool3d(x, kernel, stride=kernel, temperature=temperature)
    else:
        raise ValueError(f"method must be one of {list(POOLING_METHODS)}, got {method!r}")
    return _unbatched(y, batched)


def pool_levels(video: torch.Tensor, method: str, kernel, levels: int, temperature: float = 1.0):
    """``method`` pooling applied 1..``levels`` times; returns the list of the ``levels`` results.

    Level ``l`` has shape ``(C, T // kT**l, H // kH**l, W // kW**l)``.
    """
    check_levels(video.shape[-3:], kernel, levels)
    results, current = [], video
    for _ in range(levels):
        current = pool_video(current, method, kernel, temperature)
        results.append(current)
    return results


def reference_downsample(video: torch.Tensor, factor, kind: str = "box") -> torch.Tensor:
    """Anti-aliased downsampling of a video by an integer ``factor`` (T, H, W).

    ``box`` averages each non-overlapping ``factor`` window (an area resize; trailing samples that
    do not fill a window are dropped). ``triangle`` is an anti-aliased linear resize (separable,
    support of two output samples in each dimension) to the same output size, computed over the
    covered extent. Both preserve constant videos.

    Returns:
        ``(C, T // fT, H // fH, W // fW)`` (batched input keeps N).
    """
    factor = as_kernel3(factor, "factor")
    x, batched = _batched(video, "reference_downsample")
    out = tuple(s // f for s, f in zip(x.shape[-3:], factor))
    if any(o < 1 for o in out):
        raise ValueError(f"reference_downsample: video {tuple(x.shape[-3:])} is smaller than factor {factor}")
    if kind == "box":
        return _unbatched(F.avg_pool3d(x, factor, stride=factor), batched)
    if kind != "triangle":
        raise ValueError(f"reference must be one of {list(REFERENCE_FILTERS)}, got {kind!r}")
    n, c = x.shape[:2]
    x = x[..., : out[0] * factor[0], : out[1] * factor[1], : out[2] * factor[2]]
    t, h, w = x.shape[-3:]
    # space: frames as a batch of images
    frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
    frames = _antialiased_linear_resize(frames, out[1:])
    x = frames.reshape(n, t, c, out[1], out[2]).permute(0, 2, 1, 3, 4)
    # time: a 2-D resize of (T, H*W) planes that leaves the second axis unchanged
    planes = _antialiased_linear_resize(x.reshape(n, c, t, out[1] * out[2]), (out[0], out[1] * out[2]))
    return _unbatched(planes.reshape(n, c, *out), batched)


def _antialiased_linear_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(bilinear, antialias=True)`` of ``(N, C, H, W)``, safe for 1-pixel axes.

    torch's antialiased kernel returns wrong values when the last axis has a single pixel, so an
    axis of size 1 is duplicated (a 2 -> 2 resize is the identity) and the copy dropped after.
    """
    single = [
        axis for axis, (before, after) in enumerate(zip(images.shape[-2:], size)) if before == after == 1
    ]
    size = list(size)
    for axis in single:
        images = torch.cat([images, images], dim=2 + axis)
        size[axis] = 2
    resized = F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    for axis in single:
        resized = resized.narrow(2 + axis, 0, 1)
    return resized


def upsample_to(video: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear upsampling of a pooled video back to ``size`` (T, H, W).

    ``align_corners=False`` places each pooled sample at the centre of the window it summarises,
    which is where non-overlapping pooling puts it.
    """
    x, batched = _batched(video, "upsample_to")
    y = F.interpolate(x, size=tuple(size), mode="trilinear", align_corners=False)
    return _unbatched(y, batched)


def enlarge_for_display(video: torch.Tensor, time_factor: int, size: Sequence[int]) -> torch.Tensor:
    """Show a pooled video at the source frame rate: hold each frame and enlarge its pixels.

    A level-``l`` video has ``time_factor = kT ** l`` times fewer frames; repeating each frame
    ``time_factor`` times keeps it in step with the original while still showing the reduced
    frame rate (the picture changes only every ``time_factor`` frames). Pixels are enlarged with
    nearest-neighbour interpolation to ``size`` (H, W) so the pooled blocks stay visible.

    Returns:
        ``(C, T * time_factor, H', W')``.
    """
    x, batched = _batched(video, "enlarge_for_display")
    x = x.repeat_interleave(time_factor, dim=2)
    y = F.interpolate(x, size=(x.shape[2], *size), mode="nearest")
    return _unbatched(y, batched)
