"""Temporal clip sampling: which frames make up a clip, in one of two modes.

**Frame-index mode** (``target_fps`` unset, the default): a clip is ``num_frames`` frames taken
every ``sampling_rate`` frames (SlowFast's ``8x8`` is ``num_frames=8, sampling_rate=8``), so it
spans ``(num_frames - 1) * sampling_rate + 1`` consecutive frames whatever their timestamps.
This is what published recipes do on constant-rate datasets (Kinetics, UCF-101, HMDB-51).

**Time-based mode** (``target_fps`` set): clips are laid on the presentation timeline. A clip is
``num_frames`` instants ``sampling_rate / target_fps`` seconds apart, and each instant takes the
frame on screen at that moment (the last frame whose presentation time is not later). Clips
therefore cover the same number of seconds in every video, whatever its frame rate, and
variable-frame-rate videos give evenly spaced times instead of evenly spaced frame numbers
(which bunch up where the rate is high and stretch where it drops).

Placement, in both modes:

- training: one clip at a uniformly random start;
- validation/test: ``num_clips`` clips with evenly spaced starts, first at the beginning and
  last at the end of the video (one clip: centred);
- videos shorter than a clip: the clip stretches over the whole video with evenly spaced
  frames (or instants), repeating frames when the video has fewer than ``num_frames``.

Both take the video's frame times (``VideoSource.frame_times``, float64 seconds, sorted); the
frame-index mode only uses their count.
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

    @property
    def time_based(self) -> bool:
        return self.target_fps is not None

    @property
    def step_seconds(self) -> float | None:
        """Time-based mode: seconds between consecutive clip frames (``None`` in frame mode)."""
        return None if self.target_fps is None else self.sampling_rate / self.target_fps

    @property
    def span_frames(self) -> int:
        """Frame-index mode: frames one clip covers, first to last inclusive."""
        return (self.num_frames - 1) * self.sampling_rate + 1

    # ---- placement --------------------------------------------------------------------------

    def _slack(self, times: np.ndarray) -> float:
        """How far the clip's start can move inside ``times`` (negative: the video is shorter)."""
        if self.time_based:
            return float(times[-1] - times[0]) - (self.num_frames - 1) * self.step_seconds
        return float(times.size - self.span_frames)

    def _indices(self, times: np.ndarray, offset: float | None) -> np.ndarray:
        """Indices into ``times`` of a clip starting ``offset`` (seconds or frames) in; ``None``:
        stretch over all of it."""
        steps = np.arange(self.num_frames)
        if self.time_based:
            if offset is None:
                instants = np.linspace(times[0], times[-1], self.num_frames)
            else:
                instants = times[0] + offset + steps * self.step_seconds
            # the frame on screen at each instant; a microsecond absorbs float rounding
            positions = np.searchsorted(times, instants + 1e-6, side="right") - 1
            return np.clip(positions, 0, times.size - 1).astype(np.int64)
        if offset is None:
            offsets = np.linspace(0, times.size - 1, self.num_frames)
        else:
            offsets = offset + steps * self.sampling_rate
        # round half up, not numpy's half-to-even: 9.5 + 3k must give 10, 13, 16, ... (even stride)
        return np.clip(np.floor(offsets + 0.5), 0, times.size - 1).astype(np.int64)

    @staticmethod
    def _window(frame_times, window: tuple[int, int] | None) -> tuple[np.ndarray, int]:
        times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
        if times.size < 1:
            raise ValueError("frame_times is empty: the video has no frame")
        if window is None:
            return times, 0
        first, stop = max(0, int(window[0])), min(times.size, int(window[1]))
        if stop <= first:  # annotated window outside the file: fall back to the whole video
            return times, 0
        return times[first:stop], first

    def train_indices(
        self, frame_times, rng: np.random.Generator, window: tuple[int, int] | None = None
    ) -> np.ndarray:
        """int64 ``(num_frames,)`` indices of one clip starting uniformly at random.

        ``frame_times``: presentation time of every frame of the video (seconds, sorted).
        ``window`` = ``(first, stop)`` frame range to sample from (default the whole video).
        """
        times, first = self._window(frame_times, window)
        slack = self._slack(times)
        offset = float(rng.uniform(0.0, slack)) if slack > 0 else (0.0 if slack == 0 else None)
        return first + self._indices(times, offset)

    def test_indices(
        self, frame_times, clip_index: int, num_clips: int, window: tuple[int, int] | None = None
    ) -> np.ndarray:
        """int64 ``(num_frames,)`` indices of clip ``clip_index`` of ``num_clips`` evenly spaced
        ones (see ``train_indices`` for the arguments)."""
        if not 0 <= clip_index < num_clips:
            raise ValueError(f"clip_index must be in [0, {num_clips}), got {clip_index}")
        times, first = self._window(frame_times, window)
        slack = self._slack(times)
        if slack < 0:
            return first + self._indices(times, None)
        offset = slack * clip_index / (num_clips - 1) if num_clips > 1 else slack / 2
        return first + self._indices(times, offset)
