"""The information-retention table: how close each pooling method's output is to the video.

For each method and level ``l`` (the video pooled ``l`` times):

- ``psnr_down`` / ``ssim_down``: the pooled video against the original downsampled by the same
  factor with an anti-aliased reference filter (box = area average by default);
- ``psnr_up`` / ``ssim_up``: the pooled video upsampled back (trilinear) against the original,
  over the extent the pooling windows cover.

Higher is better for all four. Note that non-overlapping average pooling *is* the box filter,
so with ``reference="box"`` avg pooling matches the reference up to float rounding; the
``triangle`` reference and the upsampled-back columns compare all methods on equal terms.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from softpool_video.visualize.downsample import (
    covered_size,
    level_factor,
    reference_downsample,
    sorted_methods,
    upsample_to,
)
from softpool_video.visualize.quality import psnr, ssim

__all__ = ["RetentionRow", "format_retention_table", "retention_rows", "write_retention_csv"]


@dataclass(frozen=True)
class RetentionRow:
    """One method at one level; sizes are (T, H, W) of the pooled video."""

    method: str
    level: int
    frames: int
    height: int
    width: int
    psnr_down: float
    ssim_down: float
    psnr_up: float
    ssim_up: float


def retention_rows(
    video: torch.Tensor,
    pooled: Mapping[str, Sequence[torch.Tensor]],
    kernel,
    reference: str = "box",
) -> list[RetentionRow]:
    """Retention metrics of every pooled level against ``video``.

    Args:
        video: the original ``(C, T, H, W)`` in [0, 1].
        pooled: method -> [level 1, level 2, ...] as returned by ``pool_levels``.
        kernel: the pooling kernel (T, H, W) used to build ``pooled``.
        reference: "box" or "triangle", see :func:`reference_downsample`.

    Returns:
        Rows in display order: methods (max, avg, soft), then levels.
    """
    size = tuple(video.shape[-3:])
    rows = []
    for method in sorted_methods(list(pooled)):
        for level, down in enumerate(pooled[method], start=1):
            target = reference_downsample(video, level_factor(kernel, level), reference)
            if target.shape != down.shape:
                raise ValueError(
                    f"pooled {method} level {level} has shape {tuple(down.shape)}, expected "
                    f"{tuple(target.shape)} for kernel={kernel}: was it pooled with another kernel?"
                )
            covered = covered_size(size, kernel, level)
            original = video[..., : covered[0], : covered[1], : covered[2]]
            back = upsample_to(down, covered)
            rows.append(
                RetentionRow(
                    method=method,
                    level=level,
                    frames=down.shape[-3],
                    height=down.shape[-2],
                    width=down.shape[-1],
                    psnr_down=psnr(down, target),
                    ssim_down=ssim(down, target),
                    psnr_up=psnr(back, original),
                    ssim_up=ssim(back, original),
                )
            )
    return rows


def _fmt(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def format_retention_table(rows: Iterable[RetentionRow], reference: str = "box") -> str:
    """A fixed-width text table of the rows (PSNR in dB with 2 decimals, SSIM with 4)."""
    header = (
        f"{'method':<7}{'level':>6}{'size TxHxW':>14}"
        f"{'PSNR vs ' + reference:>16}{'SSIM vs ' + reference:>16}{'PSNR up':>10}{'SSIM up':>10}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        size = f"{row.frames}x{row.height}x{row.width}"
        lines.append(
            f"{row.method:<7}{row.level:>6}{size:>14}{_fmt(row.psnr_down, 2):>16}{_fmt(row.ssim_down, 4):>16}"
            f"{_fmt(row.psnr_up, 2):>10}{_fmt(row.ssim_up, 4):>10}"
        )
    return "\n".join(lines)


def write_retention_csv(
    rows: Iterable[RetentionRow], path: str | Path, extra: Mapping[str, object] | None = None
):
    """Write the rows as CSV (one line per method and level); ``extra`` columns are prepended."""
    extra = dict(extra or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(extra) + [f.name for f in fields(RetentionRow)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({**extra, **asdict(row)})
    return path
