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
    "write_xt_slices",
    "xt_row",
]

_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)
_GAP = 4  # pixels between panels


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def _scaled(frames: np.ndarray, scale: float, height: int, width: int) -> np.ndarray:
    """``(T, h, w, 3)`` uint8 resized (box filter) to ``(T, height, width, 3)`` when ``scale != 1``."""
    if scale == 1.0:
        return frames
    size = (width, height)
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BOX)) for f in frames])


def compose_side_by_side(
    original: torch.Tensor,
    pooled: Mapping[str, torch.Tensor],
    kernel,
    level: int,
    fps: float,
    scale: float = 1.0,
) -> np.ndarray:
    """Frames of the labelled side-by-side video: original | max | avg | soft at one level.

    Args:
        original: ``(3, T, H, W)`` in [0, 1].
        pooled: method -> that method's level-``level`` video ``(3, T', H', W')``.
        kernel: pooling kernel (T, H, W).
        level: pooling level of the ``pooled`` videos (for sizes and labels).
        fps: source frame rate.
        scale: panel size relative to the original (a GIF's smaller frames); the labels keep
            their size, so they stay legible in small panels.

    Returns:
        ``(Tc, bar + H, panels * W + gaps, 3)`` uint8, where ``Tc`` is the number of source
        frames the pooling windows cover (``T'`` times ``kT ** level``).
    """
    height, width = original.shape[-2:]
    shown_height, shown_width = max(1, round(height * scale)), max(1, round(width * scale))
    covered = covered_size(original.shape[-3:], kernel, level)
    time_factor = level_factor(kernel, level)[0]
    panels = [
        label_frames(
            _scaled(to_uint8_frames(original[:, : covered[0]]), scale, shown_height, shown_width),
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
        frames = _pad_to(to_uint8_frames(shown), height, width)
        panels.append(label_frames(_scaled(frames, scale, shown_height, shown_width), lines))
    gap = np.empty((covered[0], panels[0].shape[1], _GAP, 3), dtype=np.uint8)
    gap[:] = _BACKGROUND
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    return np.concatenate(row, axis=2)


def write_mp4(
    frames: np.ndarray, path: str | Path, fps: Fraction | float, crf: int = 18, progress: bool = False
) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames as H.264 (yuv420p) at ``fps``.

    yuv420p needs even sizes, so an odd height or width gets one background row/column.
    ``progress`` shows a bar over the frames.
    """
    from tqdm import tqdm

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
        bar = tqdm(frames, desc=f"encoding {path.name}", unit="frame", leave=False, disable=not progress)
        for index, array in enumerate(bar):
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
    title: Sequence[str] = (),
) -> Path:
    """PNG grid: one row for the original and one per (level, method); ``num_frames`` columns.

    ``title``: lines written above the grid (what was pooled, and how).

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

    label_width, gap, title_line = 110, 4, 20
    top_margin = 8 + title_line * len(title)
    header = top_margin + 22
    sheet_width = label_width + len(times) * (cell[0] + gap)
    title_font = _font(14)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sheet_width = max(
        sheet_width, 12 + max((int(probe.textlength(t, font=title_font)) for t in title), default=0)
    )
    sheet = Image.new("RGB", (sheet_width, header + len(rows) * (cell[1] + gap)), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, text in enumerate(title):
        draw.text((6, 6 + index * title_line), text, fill=_TEXT, font=title_font)
    for column, t in enumerate(times):
        draw.text(
            (label_width + column * (cell[0] + gap) + 4, top_margin + 4),
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


def xt_row(video: torch.Tensor) -> int:
    """The row whose pixels change most over time in a ``(3, T, H, W)`` video (its x-t slice
    shows the most motion), by the mean absolute frame-to-frame difference along it."""
    if video.shape[1] < 2:
        return video.shape[2] // 2
    change = (video[:, 1:] - video[:, :-1]).abs().mean(dim=(0, 1, 3))  # (H,)
    return int(change.argmax())


def write_xt_slices(
    original: torch.Tensor,
    pooled: Mapping[str, Sequence[torch.Tensor]],
    kernel,
    path: str | Path,
    fps: float,
    row: int | None = None,
    start_time: float = 0.0,
    title: Sequence[str] = (),
    min_panel_height: int = 240,
) -> Path:
    """PNG of space-time (x-t) slices: one row of pixels of every frame, stacked downwards in time.

    One panel for the original and one per (level, method), levels as rows and methods as columns;
    a pooled panel takes the pooled video's row covering source row ``row`` and shows each pooled
    frame as tall as the source frames it summarises, so temporal downsampling is seen directly
    as horizontal bands (``kT ** level`` source frames each), and max/avg/SoftPool as how sharp
    the moving edges stay within them. Panels are enlarged (nearest neighbour) to at least
    ``min_panel_height`` pixels; a time axis in seconds runs down the left.

    Args:
        original: ``(3, T, H, W)`` in [0, 1].
        pooled: method -> [level 1, level 2, ...] videos ``(3, T_l, H_l, W_l)``.
        row: source row to slice (default :func:`xt_row`: the one with the most motion).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    methods = sorted_methods(list(pooled))
    levels = len(pooled[methods[0]])
    height, width = original.shape[-2:]
    row = xt_row(original) if row is None else int(row)
    deepest = covered_size(original.shape[-3:], kernel, levels)
    frames = deepest[0]
    stretch = max(1, -(-min_panel_height // frames))  # pixel rows per source frame
    grow = max(1, -(-160 // width))  # narrow videos: wider panels

    def panel(video: torch.Tensor, level: int) -> Image.Image:
        time_factor, row_factor, _ = level_factor(kernel, level) if level else (1, 1, 1)
        line = video[:, : frames // time_factor, min(row // row_factor, video.shape[2] - 1)]  # (3, T_l, W_l)
        image = to_uint8_frames(line.unsqueeze(1))[0]  # (3, 1, T_l, W_l) -> (T_l, W_l, 3)
        return Image.fromarray(np.ascontiguousarray(image)).resize(
            (width * grow, frames * stretch), Image.Resampling.NEAREST
        )

    cells = [[("original", f"row {row} of {height}", panel(original, 0))]]
    for level in range(1, levels + 1):
        time_factor = level_factor(kernel, level)[0]
        cells.append(
            [
                (
                    f"{method} L{level}",
                    f"{_format_fps(fps / time_factor)} fps",
                    panel(pooled[method][level - 1], level),
                )
                for method in methods
            ]
        )
    panel_width, panel_height = width * grow, frames * stretch
    axis, gap, label_height = 64, 8, 40
    top_margin = 8 + 20 * len(title)
    columns = max(len(row_cells) for row_cells in cells)
    sheet = Image.new(
        "RGB",
        (
            max(axis + columns * (panel_width + gap), 12 + 8 * max((len(t) for t in title), default=0)),
            top_margin + len(cells) * (label_height + panel_height + gap),
        ),
        _BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    for index, text in enumerate(title):
        draw.text((6, 6 + index * 20), text, fill=_TEXT, font=_font(14))
    ticks = np.linspace(0, frames - 1, num=min(5, frames)).round().astype(int)
    for grid_row, row_cells in enumerate(cells):
        top = top_margin + grid_row * (label_height + panel_height + gap)
        for column, (name, detail, image) in enumerate(row_cells):
            left = axis + column * (panel_width + gap)
            draw.text((left + 2, top + 2), name, fill=_TEXT, font=_font(13))
            draw.text((left + 2, top + 20), detail, fill=_TEXT, font=_font(12))
            sheet.paste(image, (left, top + label_height))
        for tick in ticks:  # time runs down the panels
            y = top + label_height + tick * stretch + stretch // 2
            draw.line((axis - 6, y, axis - 2, y), fill=_TEXT)
            draw.text((4, y - 7), f"{start_time + tick / fps:.2f} s", fill=_TEXT, font=_font(11))
    sheet.save(path)
    return path
