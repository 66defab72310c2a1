"""Temporal clip sampling: which frame indices make up a clip.

A clip is ``num_frames`` frames taken every ``sampling_rate`` frames (SlowFast's ``8x8`` is
``num_frames=8, sampling_rate=8``), so it spans ``(num_frames - 1) * sampling_rate + 1`` frames.

- training: one clip at a uniformly random start;
- validation/test: ``num_clips`` clips with evenly spaced starts, first at the beginning and
  last at the end of the video (one clip: centred);
- videos shorter than the span: the clip stretches over the whole video with evenly spaced
  indices, repeating frames when the video has fewer than ``num_frames`` frames.

With ``target_fps`` set, ``sampling_rate`` counts frames at that rate, so a 60 fps video is
sampled with twice the stride of a 30 fps one and clips cover the same time everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClipSampler:
    """Frame indices of training and evaluation clips (see the module docstring)."""

    num_frames: int
    sampling_rate: int
    target_fps: float | None = None

    def __post_init__(self):
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.sampling_rate < 1:
            raise ValueError(f"sampling_rate must be >= 1, got {self.sampling_rate}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise ValueError(f"target_fps must be > 0 or None, got {self.target_fps}")

    def stride(self, fps: float) -> float:
        """Distance in source frames between consecutive clip frames."""
        if self.target_fps is None:
            return float(self.sampling_rate)
        return self.sampling_rate * fps / self.target_fps

    def span(self, fps: float) -> float:
        """Number of source frames one clip covers (first to last, inclusive)."""
        return (self.num_frames - 1) * self.stride(fps) + 1

    def _indices(self, start: float, window: tuple[int, int], fps: float) -> np.ndarray:
        first, stop = window
        length = stop - first
        span = self.span(fps)
        if span > length:  # short video: cover all of it, repeating frames if needed
            offsets = np.linspace(0, length - 1, self.num_frames)
        else:
            offsets = start + np.arange(self.num_frames) * self.stride(fps)
        # round half up, not numpy's half-to-even: 9.5 + 3k must give 10, 13, 16, ... (even stride)
        return first + np.clip(np.floor(offsets + 0.5), 0, length - 1).astype(np.int64)

    def _window(self, num_video_frames: int, window: tuple[int, int] | None) -> tuple[int, int]:
        if num_video_frames < 1:
            raise ValueError(f"num_video_frames must be >= 1, got {num_video_frames}")
        if window is None:
            return 0, num_video_frames
        first, stop = max(0, int(window[0])), min(num_video_frames, int(window[1]))
        if stop <= first:  # annotated window outside the file: fall back to the whole video
            return 0, num_video_frames
        return first, stop

    def train_indices(
        self,
        num_video_frames: int,
        fps: float,
        rng: np.random.Generator,
        window: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """int64 ``(num_frames,)`` indices of one clip starting uniformly at random.

        ``window`` = ``(first, stop)`` frame range to sample from (default the whole video).
        """
        window = self._window(num_video_frames, window)
        slack = (window[1] - window[0]) - self.span(fps)
        start = float(rng.uniform(0.0, slack)) if slack > 0 else 0.0
        return self._indices(start, window, fps)

    def test_indices(
        self,
        num_video_frames: int,
        fps: float,
        clip_index: int,
        num_clips: int,
        window: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """int64 ``(num_frames,)`` indices of clip ``clip_index`` of ``num_clips`` evenly spaced ones."""
        if not 0 <= clip_index < num_clips:
            raise ValueError(f"clip_index must be in [0, {num_clips}), got {clip_index}")
        window = self._window(num_video_frames, window)
        slack = max((window[1] - window[0]) - self.span(fps), 0.0)
        start = slack * clip_index / (num_clips - 1) if num_clips > 1 else slack / 2
        return self._indices(start, window, fps)
