"""`softpool-visualize` in one function: decode, pool per method and level, measure, write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from softpool_video.data.decoders import VideoClip, decode_video
from softpool_video.visualize.downsample import (
    REFERENCE_FILTERS,
    as_kernel3,
    check_levels,
    pool_levels,
    sorted_methods,
)
from softpool_video.visualize.render import compose_side_by_side, write_contact_sheet, write_gif, write_mp4
from softpool_video.visualize.retention import (
    RetentionRow,
    format_retention_table,
    retention_rows,
    write_retention_csv,
)

__all__ = ["VisualizeResult", "describe", "pool_all_methods", "visualize_video"]


@dataclass
class VisualizeResult:
    """What :func:`visualize_video` computed and wrote.

    Attributes:
        clip: the decoded video (frames ``(3, T, H, W)``).
        pooled: method -> [level 1, ..., level n] videos ``(3, T_l, H_l, W_l)``.
        rows: the retention table.
        files: output name -> path ("side_by_side_L1.mp4", "contact_sheet.png", "retention.csv", ...).
    """

    clip: VideoClip
    pooled: dict[str, list[torch.Tensor]]
    rows: list[RetentionRow]
    files: dict[str, Path] = field(default_factory=dict)


def pool_all_methods(video: torch.Tensor, methods, kernel, levels: int, temperature: float = 1.0):
    """method -> [level 1..levels] for each method, in display order (max, avg, soft)."""
    return {m: pool_levels(video, m, kernel, levels, temperature) for m in sorted_methods(methods)}


def visualize_video(
    video: str | Path,
    kernel=(2, 2, 2),
    levels: int = 3,
    methods=("soft", "max", "avg"),
    output: str | Path | None = None,
    start: float | None = None,
    end: float | None = None,
    max_side: int | None = 320,
    max_frames: int | None = None,
    temperature: float = 1.0,
    reference: str = "box",
    contact_frames: int = 4,
    gif: bool = True,
    gif_width: int = 480,
) -> VisualizeResult:
    """Decode ``video``, pool it ``levels`` times with each method and write the outputs.

    Writes into ``output`` (default ``outputs/visualize/<video stem>``): per level
    ``side_by_side_L{l}.mp4`` (and ``.gif``), ``contact_sheet.png`` and ``retention.csv``.
    Arguments are those of :func:`decode_video`, :func:`pool_levels` and :func:`retention_rows`.
    """
    kernel = as_kernel3(kernel)
    methods = sorted_methods(methods)
    if reference not in REFERENCE_FILTERS:
        raise ValueError(f"reference must be one of {list(REFERENCE_FILTERS)}, got {reference!r}")
    clip = decode_video(video, start=start, end=end, max_side=max_side, max_frames=max_frames)
    check_levels(clip.frames.shape[-3:], kernel, levels)
    output = Path(output) if output is not None else Path("outputs") / "visualize" / clip.path.stem
    output.mkdir(parents=True, exist_ok=True)

    pooled = pool_all_methods(clip.frames, methods, kernel, levels, temperature)
    rows = retention_rows(clip.frames, pooled, kernel, reference)
    result = VisualizeResult(clip=clip, pooled=pooled, rows=rows)
    files = result.files
    files["retention.csv"] = write_retention_csv(
        rows,
        output / "retention.csv",
        extra={"video": clip.path.name, "reference": reference, "temperature": temperature},
    )
    fps = float(clip.fps)
    for level in range(1, levels + 1):
        frames = compose_side_by_side(
            clip.frames, {m: pooled[m][level - 1] for m in methods}, kernel, level, fps
        )
        name = f"side_by_side_L{level}"
        files[f"{name}.mp4"] = write_mp4(frames, output / f"{name}.mp4", clip.fps)
        if gif:
            files[f"{name}.gif"] = write_gif(frames, output / f"{name}.gif", clip.fps, max_width=gif_width)
    files["contact_sheet.png"] = write_contact_sheet(
        clip.frames,
        pooled,
        kernel,
        output / "contact_sheet.png",
        fps,
        num_frames=contact_frames,
        start_time=clip.start_time,
    )
    return result


def describe(result: VisualizeResult, reference: str = "box") -> str:
    """Human-readable summary: the source, the retention table and the written files."""
    clip = result.clip
    lines = [
        f"{clip.path}: {clip.num_frames} frames of {clip.width}x{clip.height} at {float(clip.fps):.3f} fps "
        f"(from {clip.start_time:.2f} s)",
        "",
        format_retention_table(result.rows, reference),
        "",
        "PSNR in dB; 'vs "
        + reference
        + "': pooled vs the original downsampled with the "
        + reference
        + " filter; 'up': pooled upsampled back (trilinear) vs the original.",
        "",
    ]
    lines += [f"wrote {path}" for path in result.files.values()]
    return "\n".join(lines)
