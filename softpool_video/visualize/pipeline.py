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
from softpool_video.visualize.render import (
    compose_side_by_side,
    write_contact_sheet,
    write_gif,
    write_mp4,
    write_xt_slices,
)
from softpool_video.visualize.retention import (
    RetentionRow,
    format_retention_table,
    retention_rows,
    write_retention_csv,
)

__all__ = ["MIN_GIF_PANEL_WIDTH", "VisualizeResult", "describe", "pool_all_methods", "visualize_video"]

#: A GIF never shrinks a panel below this width: the labels above the panels keep their size
#: and stay legible, and so does the picture.
MIN_GIF_PANEL_WIDTH = 200


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


def pool_all_methods(
    video: torch.Tensor, methods, kernel, levels: int, temperature: float = 1.0, progress: bool = False
):
    """method -> [level 1..levels] for each method, in display order (max, avg, soft)."""
    from tqdm import tqdm

    methods = sorted_methods(methods)
    bar = tqdm(methods, desc="pooling", unit="method", leave=False, disable=not progress)
    return {m: pool_levels(video, m, kernel, levels, temperature) for m in bar}


def _title(clip: VideoClip, kernel, levels: int, temperature: float) -> list[str]:
    """What a sheet shows: the video, the pooling and the value range of the frames."""
    low, high = float(clip.frames.min()), float(clip.frames.max())
    return [
        f"{clip.path.name}: {clip.num_frames} frames of {clip.width}x{clip.height}, "
        f"{float(clip.fps):.2f} fps, from {clip.start_time:.2f} s",
        f"kernel = stride = {'x'.join(map(str, kernel))} (T x H x W), levels 1..{levels}, "
        f"SoftPool temperature {temperature:g}",
        f"pixel values in [{low:.2f}, {high:.2f}] (RGB scaled to [0, 1])",
    ]


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
    gif: bool = False,
    gif_width: int = 480,
    progress: bool = False,
) -> VisualizeResult:
    """Decode ``video``, pool it ``levels`` times with each method and write the outputs.

    Writes into ``output`` (default ``outputs/visualize/<video stem>``): per level
    ``side_by_side_L{l}.mp4`` (and ``.gif`` when ``gif``), ``contact_sheet.png``, ``xt_slice.png``
    (space-time slices) and ``retention.csv``. GIFs are ``gif_width`` wide, or wider when that
    would shrink a panel below :data:`MIN_GIF_PANEL_WIDTH`. ``progress`` shows bars for decoding,
    pooling and encoding. Other arguments are those of :func:`decode_video`, :func:`pool_levels`
    and :func:`retention_rows`.
    """
    from tqdm import tqdm

    kernel = as_kernel3(kernel)
    methods = sorted_methods(methods)
    if reference not in REFERENCE_FILTERS:
        raise ValueError(f"reference must be one of {list(REFERENCE_FILTERS)}, got {reference!r}")
    clip = decode_video(
        video, start=start, end=end, max_side=max_side, max_frames=max_frames, progress=progress
    )
    check_levels(clip.frames.shape[-3:], kernel, levels)
    output = Path(output) if output is not None else Path("outputs") / "visualize" / clip.path.stem
    output.mkdir(parents=True, exist_ok=True)

    pooled = pool_all_methods(clip.frames, methods, kernel, levels, temperature, progress=progress)
    rows = retention_rows(clip.frames, pooled, kernel, reference)
    result = VisualizeResult(clip=clip, pooled=pooled, rows=rows)
    files = result.files
    files["retention.csv"] = write_retention_csv(
        rows,
        output / "retention.csv",
        extra={"video": clip.path.name, "reference": reference, "temperature": temperature},
    )
    fps = float(clip.fps)
    panels = 1 + len(methods)
    # the GIF's panels: gif_width over all of them, but never narrower than MIN_GIF_PANEL_WIDTH
    gif_scale = min(1.0, max(gif_width / (panels * clip.width), MIN_GIF_PANEL_WIDTH / clip.width))
    for level in tqdm(range(1, levels + 1), desc="writing", unit="level", leave=False, disable=not progress):
        level_pooled = {m: pooled[m][level - 1] for m in methods}
        frames = compose_side_by_side(clip.frames, level_pooled, kernel, level, fps)
        name = f"side_by_side_L{level}"
        files[f"{name}.mp4"] = write_mp4(frames, output / f"{name}.mp4", clip.fps, progress=progress)
        if gif:
            small = (
                frames
                if gif_scale == 1.0
                else compose_side_by_side(clip.frames, level_pooled, kernel, level, fps, scale=gif_scale)
            )
            files[f"{name}.gif"] = write_gif(
                small, output / f"{name}.gif", clip.fps, max_width=small.shape[2]
            )
    title = _title(clip, kernel, levels, temperature)
    files["contact_sheet.png"] = write_contact_sheet(
        clip.frames,
        pooled,
        kernel,
        output / "contact_sheet.png",
        fps,
        num_frames=contact_frames,
        start_time=clip.start_time,
        title=title,
    )
    files["xt_slice.png"] = write_xt_slices(
        clip.frames, pooled, kernel, output / "xt_slice.png", fps, start_time=clip.start_time, title=title
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
