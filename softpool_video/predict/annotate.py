"""``out_video=``: the input video with its prediction drawn on it.

Every frame of the input is decoded (through ``data/decoders.py``), a label box is drawn in its
top-left corner and the frame is encoded again with its own presentation time, so the output has
the same frames, size and timeline (variable frame rates included) as the input; audio is dropped.

- a :class:`Prediction`: the top-k labels with probability bars, the same on every frame;
- a :class:`Timeline`: the label of the segment playing, in that class's colour (the colours of the
  timeline plot), its probability, and the segment's time range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from softpool_video.data.decoders import open_video
from softpool_video.predict.timeline import Timeline, class_colour

__all__ = ["annotate_prediction", "annotate_timeline", "draw_label_box", "label_box_lines"]

#: Frames decoded and encoded per step (bounded memory on long or large videos).
_CHUNK = 32
_BOX = (16, 16, 16)
_TEXT = (245, 245, 245)
_BAR = (80, 170, 255)


@lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: its fixed bitmap font
        return ImageFont.load_default()


def _font_size(height: int, width: int) -> int:
    # legible on a phone-sized 240p clip and on 1080p: about 1/18 of the short side, 11 px at least
    return max(11, round(min(height, width) / 18))


def label_box_lines(topk: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """``[(label, probability)]`` -> the text lines of the box with the probability each bar shows."""
    return [
        (f"{rank}. {label}  {probability:.0%}", probability)
        for rank, (label, probability) in enumerate(topk, 1)
    ]


def draw_label_box(
    frame: np.ndarray,
    lines: Sequence[tuple[str, float | None]],
    swatch: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Draw ``lines`` (text, optional probability bar in [0, 1]) in a dark box at the top left of an
    RGB uint8 frame ``(H, W, 3)``; ``swatch`` (RGB in [0, 1]) colours a square before the first line.
    Returns a new frame of the same shape."""
    from PIL import Image, ImageDraw

    height, width = frame.shape[:2]
    size = _font_size(height, width)
    font = _font(size)
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image, "RGBA")
    pad, line_height, bar_height = max(2, size // 3), size + max(3, size // 3), max(2, size // 5)
    indent = size + pad if swatch is not None else 0
    text_width = max(draw.textlength(text, font=font) for text, _ in lines)
    box_width = min(width, int(pad * 2 + indent + max(text_width, 4 * size)))
    box_height = min(height, pad * 2 + len(lines) * (line_height + bar_height))
    draw.rectangle((0, 0, box_width, box_height), fill=(*_BOX, 200))
    if swatch is not None:
        colour = tuple(round(255 * c) for c in swatch[:3])
        draw.rectangle((pad, pad, pad + size, pad + size), fill=colour, outline=_TEXT)
    top = pad
    for text, probability in lines:
        draw.text((pad + indent, top), text, fill=_TEXT, font=font)
        if probability is not None:
            bar_top = top + line_height - max(1, size // 6)
            full = box_width - 2 * pad - indent
            draw.rectangle(
                (
                    pad + indent,
                    bar_top,
                    pad + indent + max(1, round(full * probability)),
                    bar_top + bar_height - 1,
                ),
                fill=_BAR,
            )
        top += line_height + bar_height
    return np.asarray(image)


def _write(
    source: str | Path,
    path: str | Path,
    draw: Callable[[np.ndarray, float], np.ndarray],
    decoder: str = "pyav",
    progress: bool = False,
) -> Path:
    """Decode every frame of ``source``, ``draw(frame, seconds since the first frame)`` on it, and
    encode it at its own presentation time into ``path`` (H.264 when available)."""
    import av
    from tqdm import tqdm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_video(source, backend=decoder) as video:
        info, times = video.info, video.frame_times
        width, height = info.width, info.height
        rate = Fraction(info.nominal_fps or info.fps).limit_denominator(100000)
        # pts in 1/90000 s (MPEG's clock): every real frame time survives rounding to a tick
        time_base = Fraction(1, 90000)
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        bar = tqdm(total=info.num_frames, desc=f"writing {path.name}", unit="frame", disable=not progress)
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = width, height
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            # 4:2:0 needs even sizes; odd ones keep every pixel in 4:4:4 rather than change the size
            even = width % 2 == 0 and height % 2 == 0
            stream.pix_fmt = "yuv420p" if even or codec != "libx264" else "yuv444p"
            if codec == "libx264":
                stream.options = {"crf": "18", "preset": "veryfast"}
            last_pts = -1
            for first in range(0, info.num_frames, _CHUNK):
                indices = np.arange(first, min(first + _CHUNK, info.num_frames))
                frames = video.decode(indices).frames.numpy()
                for index, array in zip(indices, frames):
                    seconds = float(times[index] - times[0])
                    frame = av.VideoFrame.from_ndarray(draw(array, seconds), format="rgb24")
                    pts = max(last_pts + 1, round(seconds / time_base))
                    frame.pts, frame.time_base, last_pts = pts, time_base, pts
                    container.mux(stream.encode(frame))
                bar.update(len(indices))
            container.mux(stream.encode(None))
        bar.close()
    return path


def annotate_prediction(
    source: str | Path, topk: Sequence[tuple[str, float]], path: str | Path, **kwargs
) -> Path:
    """Write ``source`` to ``path`` with the top-k ``[(label, probability)]`` drawn on every frame."""
    lines = label_box_lines(topk)
    return _write(source, path, lambda frame, _: draw_label_box(frame, lines), **kwargs)


def annotate_timeline(source: str | Path, timeline: Timeline, path: str | Path, **kwargs) -> Path:
    """Write ``source`` to ``path`` with, on each frame, the label of the timeline segment playing."""
    segments = timeline.segments
    if not segments:
        raise ValueError(f"{timeline.video}: the timeline has no segments ({timeline.error or 'empty'})")
    index = {name: k for k, name in enumerate(timeline.class_names)}
    starts = np.array([segment.start for segment in segments])

    def draw(frame: np.ndarray, seconds: float) -> np.ndarray:
        # the frame's segment: the last one starting at or before its time (1 ms of rounding slack)
        k = max(0, int(np.searchsorted(starts, seconds + 1e-3, side="right")) - 1)
        segment = segments[k]
        lines = [
            (f"{segment.label}  {segment.probability:.0%}", segment.probability),
            (f"{segment.start:.1f}-{segment.end:.1f} s  (segment {k + 1}/{len(segments)})", None),
        ]
        return draw_label_box(frame, lines, swatch=class_colour(index[segment.label]))

    return _write(source, path, draw, **kwargs)
