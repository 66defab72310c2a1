"""Writers: labelled side-by-side MP4 (PyAV) and GIF (Pillow), and a PNG contact sheet (Pillow).

Frames handed between functions here are ``uint8`` NumPy arrays ``(T, H, W, 3)`` (RGB); videos
coming from the pooling code are float tensors ``(3, T, H, W)`` in [0, 1] and are converted once
with :func:`to_uint8_frames`.

How reduced frame rates are shown side by side: every panel plays at the source frame rate.
A level-``l`` video has ``kT ** l`` times fewer frames, so each of its frames is *held* for
``kT ** l`` source frames (its picture changes only that often, which is what its lower frame
rate looks like), and its pixels are enlarged with nearest-neighbour interpolation to the area of
the original they summarise; the labels give its true size and frame rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from softpool_video.visualize.downsample import (
    covered_size,
    enlarge_for_display,
    level_factor,
    sorted_methods,
)

__all__ = [
    "compose_side_by_side",
    "label_frames",
    "to_uint8_frames",
    "write_contact_sheet",
    "write_gif",
    "write_mp4",
]

_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)
_GAP = 4  # pixels between panels


@lru_cache(maxsize=8)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """``(3, T, H, W)`` float in [0, 1] -> ``(T, H, W, 3)`` uint8."""
    if video.dim() != 4 or video.shape[0] != 3:
        raise ValueError(f"expected an RGB video (3, T, H, W), got shape {tuple(video.shape)}")
    frames = video.detach().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).contiguous().numpy()


def _format_fps(fps: float) -> str:
    return f"{fps:.2f}".rstrip("0").rstrip(".")


def _label_bar(width: int, lines: Sequence[str], font_size: int = 12) -> np.ndarray:
    """A dark ``(h, width, 3)`` header strip with one text line per entry."""
    line_height = font_size + 4
    image = Image.new("RGB", (width, line_height * len(lines) + 4), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    for index, text in enumerate(lines):
        draw.text((4, 2 + index * line_height), text, fill=_TEXT, font=_font(font_size))
    return np.asarray(image)


def label_frames(frames: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Stack a label bar on top of every frame: ``(T, H, W, 3)`` -> ``(T, H + bar, W, 3)``."""
    bar = _label_bar(frames.shape[2], lines)
    bars = np.broadcast_to(bar, (frames.shape[0], *bar.shape))
    return np.concatenate([bars, frames], axis=1)


def _pad_to(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad ``(T, h, w, 3)`` at the bottom/right with the background colour to (height, width)."""
    t, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames
    out = np.empty((t, height, width, 3), dtype=np.uint8)
    out[:] = _BACKGROUND
    out[:, :h, :w] = frames
    return out


def compose_side_by_side(
    original: torch.Tensor,
    pooled: Mapping[str, torch.Tensor],
    kernel,
    level: int,
    fps: float,
) -> np.ndarray:
    """Frames of the labelled side-by-side video: original | max | avg | soft at one level.

    Args:
        original: ``(3, T, H, W)`` in [0, 1].
        pooled: method -> that method's level-``level`` video ``(3, T', H', W')``.
        kernel: pooling kernel (T, H, W).
        level: pooling level of the ``pooled`` videos (for sizes and labels).
        fps: source frame rate.

    Returns:
        ``(Tc, bar + H, panels * W + gaps, 3)`` uint8, where ``Tc`` is the number of source
        frames the pooling windows cover (``T'`` times ``kT ** level``).
    """
    height, width = original.shape[-2:]
    covered = covered_size(original.shape[-3:], kernel, level)
    time_factor = level_factor(kernel, level)[0]
    panels = [
        label_frames(
            to_uint8_frames(original[:, : covered[0]]),
            ["original", f"{width}x{height} px, {_format_fps(fps)} fps"],
        )
    ]
    for method in sorted_methods(list(pooled)):
        video = pooled[method]
        shown = enlarge_for_display(video, time_factor, covered[1:])
        lines = [
            f"{method} pool, level {level}",
            f"{video.shape[-1]}x{video.shape[-2]} px, {_format_fps(fps / time_factor)} fps",
        ]
        panels.append(label_frames(_pad_to(to_uint8_frames(shown), height, width), lines))
    gap = np.empty((covered[0], panels[0].shape[1], _GAP, 3), dtype=np.uint8)
    gap[:] = _BACKGROUND
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    return np.concatenate(row, axis=2)


def write_mp4(frames: np.ndarray, path: str | Path, fps: Fraction | float, crf: int = 18) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames as H.264 (yuv420p) at ``fps``.

    yuv420p needs even sizes, so an odd height or width gets one background row/column.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = _pad_to(frames, frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2)
    rate = Fraction(fps).limit_denominator(100000)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf)}
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = index, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_gif(frames: np.ndarray, path: str | Path, fps: Fraction | float, max_width: int = 640) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames as a looping GIF, shrunk to at most ``max_width``.

    GIF delays are whole centiseconds; they are rounded cumulatively so the total duration stays
    within 10 ms of ``T / fps``. Pillow merges identical consecutive frames (adding their delays),
    so the file may hold fewer frames than ``T`` for the same duration.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    size = (width, height)
    if width > max_width:
        size = (max_width, max(1, round(height * max_width / width)))
    images = [Image.fromarray(array) for array in frames]
    if size != (width, height):
        images = [image.resize(size, Image.Resampling.BOX) for image in images]
    ends = [round(100 * (index + 1) / float(fps)) * 10 for index in range(len(images))]
    durations = [end - start for start, end in zip([0] + ends[:-1], ends)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path


def write_contact_sheet(
    original: torch.Tensor,
    pooled: Mapping[str, Sequence[torch.Tensor]],
    kernel,
    path: str | Path,
    fps: float,
    num_frames: int = 4,
    cell_side: int = 160,
    start_time: float = 0.0,
) -> Path:
    """PNG grid: one row for the original and one per (level, method); ``num_frames`` columns.

    Columns are evenly spaced source times inside the extent covered by the deepest level; a
    pooled row shows the pooled frame whose window contains that time, enlarged with
    nearest-neighbour interpolation so its blocks stay visible.

    Args:
        original: ``(3, T, H, W)`` in [0, 1].
        pooled: method -> [level 1, level 2, ...] videos ``(3, T_l, H_l, W_l)``.
        kernel: pooling kernel (T, H, W).
        fps: source frame rate (for the time and frame-rate labels).
        cell_side: longest side of one cell in pixels.
        start_time: time of the first frame of ``original`` in the source, for the column labels.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    methods = sorted_methods(list(pooled))
    levels = len(pooled[methods[0]])
    height, width = original.shape[-2:]
    scale = cell_side / max(height, width)
    cell = (max(1, round(width * scale)), max(1, round(height * scale)))
    deepest = covered_size(original.shape[-3:], kernel, levels)[0]
    times = np.linspace(0, deepest - 1, num=max(1, num_frames)).round().astype(int)
    times = sorted(set(times.tolist()))

    rows: list[tuple[list[str], list[Image.Image]]] = []
    original_frames = to_uint8_frames(original[:, times])
    original_cells = [Image.fromarray(f).resize(cell, Image.Resampling.BOX) for f in original_frames]
    rows.append((["original", f"{width}x{height}", f"{_format_fps(fps)} fps"], original_cells))
    for level in range(1, levels + 1):
        time_factor = level_factor(kernel, level)[0]
        for method in methods:
            video = pooled[method][level - 1]
            frames = to_uint8_frames(video[:, [t // time_factor for t in times]])
            label = [
                f"{method} L{level}",
                f"{video.shape[-1]}x{video.shape[-2]}",
                f"{_format_fps(fps / time_factor)} fps",
            ]
            rows.append((label, [Image.fromarray(f).resize(cell, Image.Resampling.NEAREST) for f in frames]))

    label_width, header, gap = 110, 22, 4
    sheet = Image.new(
        "RGB",
        (label_width + len(times) * (cell[0] + gap), header + len(rows) * (cell[1] + gap)),
        _BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    for column, t in enumerate(times):
        draw.text(
            (label_width + column * (cell[0] + gap) + 4, 4),
            f"t = {start_time + t / fps:.2f} s",
            fill=_TEXT,
            font=_font(12),
        )
    for row_index, (label, images) in enumerate(rows):
        top = header + row_index * (cell[1] + gap)
        for line_index, text in enumerate(label):
            draw.text((6, top + 4 + 16 * line_index), text, fill=_TEXT, font=_font(12))
        for column, image in enumerate(images):
            sheet.paste(image, (label_width + column * (cell[0] + gap), top))
    sheet.save(path)
    return path
