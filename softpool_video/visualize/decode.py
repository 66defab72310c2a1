"""Decode (a time range of) a video file into a float RGB tensor with PyAV."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

__all__ = ["VideoClip", "VideoDecodeError", "decode_video"]


class VideoDecodeError(RuntimeError):
    """A video file could not be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class VideoClip:
    """Decoded RGB frames of one video.

    Attributes:
        frames: ``(3, T, H, W)`` float32 RGB in [0, 1], channels first so that
            ``frames.unsqueeze(0)`` is the ``(N, C, T, H, W)`` layout of the pooling operators.
        fps: frames per second of the source stream (exact, e.g. ``Fraction(30000, 1001)``).
        path: the file it came from.
        start_time: presentation time of the first decoded frame, in seconds.
    """

    frames: torch.Tensor
    fps: Fraction
    path: Path
    start_time: float = 0.0

    @property
    def num_frames(self) -> int:
        return self.frames.shape[1]

    @property
    def height(self) -> int:
        return self.frames.shape[2]

    @property
    def width(self) -> int:
        return self.frames.shape[3]

    @property
    def duration(self) -> float:
        """Seconds covered by the frames: ``num_frames / fps``."""
        return self.num_frames / float(self.fps)


def _scaled_size(width: int, height: int, max_side: int | None, short_side: int | None) -> tuple[int, int]:
    """(width, height) shrunk so the longer side is at most ``max_side`` and the shorter at most
    ``short_side`` (never enlarged; ``None`` or 0 sets no limit)."""
    scale = 1.0
    if max_side:
        scale = min(scale, max_side / max(width, height))
    if short_side:
        scale = min(scale, short_side / min(width, height))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_range(start, end, max_side, short_side, max_frames) -> None:
    if start is not None and not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a number of seconds >= 0, got {start!r}")
    if end is not None and not (end > (start or 0.0)):
        raise ValueError(f"end must be greater than start ({start or 0.0} s), got {end!r}")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 0):
        raise ValueError(f"max_side must be a non-negative int (0 or None: keep the size), got {max_side!r}")
    if short_side is not None and (not isinstance(short_side, int) or short_side < 0):
        raise ValueError(f"short_side must be a non-negative int (0 or None: no limit), got {short_side!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")


def decode_video(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    max_side: int | None = None,
    max_frames: int | None = None,
    short_side: int | None = None,
) -> VideoClip:
    """Decode the frames of ``path`` whose presentation time lies in ``[start, end)`` seconds.

    Frames are converted to RGB and, with ``max_side`` or ``short_side``, shrunk by FFmpeg's area
    filter (an anti-aliased resize).

    Args:
        path: a video file FFmpeg can read.
        start, end: time range in seconds; ``None`` means the beginning / the end of the stream.
        max_side: longest side of the decoded frames in pixels; ``None`` or 0 keeps the size.
        max_frames: stop after this many frames.
        short_side: shortest side of the decoded frames in pixels (models' "short-side scale");
            with ``max_side`` too, the stronger shrink wins.

    Returns:
        A :class:`VideoClip` with ``frames`` of shape ``(3, T, H, W)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file is not a readable video, or the range holds no frame.
        ValueError: an argument is out of range.
    """
    path = Path(path)
    _check_range(start, end, max_side, short_side, max_frames)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    frames: list[np.ndarray] = []
    first_time = None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = stream.average_rate or stream.guessed_rate
            if not fps:
                raise VideoDecodeError(f"{path}: the video stream has no frame rate")
            fps = Fraction(fps)
            width, height = _scaled_size(
                stream.codec_context.width, stream.codec_context.height, max_side, short_side
            )
            if start and stream.time_base is not None:
                # seek lands on the keyframe at or before `start`; earlier frames are skipped below
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for index, frame in enumerate(container.decode(stream)):
                # streams without timestamps: fall back to the frame index
                time = frame.time if frame.time is not None else index / float(fps)
                if start is not None and time < start - 1e-6:
                    continue
                if end is not None and time >= end - 1e-6:
                    break
                if first_time is None:
                    first_time = time
                rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
                frames.append(rgb.to_ndarray())
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except VideoDecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(f"cannot read video {path}: {error}") from error
    if not frames:
        span = f" in [{start or 0.0}, {'end' if end is None else end}) s" if start or end else ""
        raise VideoDecodeError(f"{path}: no frames decoded{span}")
    # (T, H, W, 3) uint8 -> (3, T, H, W) float in [0, 1]
    video = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2).float().div_(255.0)
    return VideoClip(frames=video.contiguous(), fps=fps, path=path, start_time=float(first_time))
