"""Timelines: what a long video shows, segment by segment.

A video of ``N`` frames at ``fps`` (``N / fps`` seconds long) is cut into segments of ``stride``
seconds, ``[0, s)``, ``[s, 2s)``, ... and a last one ending at ``N / fps``, so the segments are
contiguous and cover the whole video (the last one may be shorter). A segment holds the frames
whose time ``index / fps`` falls inside it, and is labelled from a *window* of ``window`` seconds
centred on it and shifted to stay inside the video: ``stride < window`` labels short steps with
more context, ``stride == window`` (the default) labels each window on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "SegmentSpan",
    "Timeline",
    "TimelineSegment",
    "class_colour",
    "plot_timeline",
    "timeline_segments",
]


class TopKMixin:
    """Accessors shared by results that hold ``topk``: ``[(label, probability)]``, best first."""

    topk: list[tuple[str, float]]

    @property
    def label(self) -> str | None:
        """The most probable class (``None`` when there is no result)."""
        return self.topk[0][0] if self.topk else None

    @property
    def probability(self) -> float | None:
        """Probability of ``label``."""
        return self.topk[0][1] if self.topk else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``topk`` as ``[{"label", "probability"}]``)."""
        data = asdict(self)
        data["topk"] = [{"label": label, "probability": p} for label, p in self.topk]
        return data


class SegmentSpan(NamedTuple):
    """One segment: seconds ``[start, end)``, the frames ``[first, stop)`` whose nominal time
    ``index / fps`` falls inside, and the frames ``[window_first, window_stop)`` the model sees."""

    start: float
    end: float
    first: int
    stop: int
    window_first: int
    window_stop: int


def timeline_segments(
    num_frames: int,
    fps: float,
    window: float,
    stride: float,
    frame_times: Sequence[float] | None = None,
    duration: float | None = None,
) -> list[SegmentSpan]:
    """Segments of ``stride`` seconds covering a video of ``num_frames`` frames, each with its window.

    Segment ``k`` spans ``[k * stride, (k + 1) * stride)`` seconds, the last one ending at the
    video's end, ``num_frames / fps``; a segment that would hold no frame (a stride shorter than
    a frame) is merged into the next. Windows hold ``window * fps`` frames (rounded; all of them
    when the video is shorter), centred on their segment and shifted to lie inside the video.

    ``frame_times`` (seconds, one per frame, increasing; e.g. ``VideoSource.frame_times``) places
    the frames at their presentation times instead of ``index / fps``, as a variable-frame-rate
    video needs: a segment holds the frames whose time (from frame 0) falls inside it, and a window
    holds the frames of the ``window`` seconds around its segment's centre, shifted to lie inside
    ``[0, duration)`` (``duration``: default the last frame's time plus one average frame).
    """
    if frame_times is not None:
        return _segments_on_timeline(num_frames, fps, window, stride, frame_times, duration)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not fps > 0 or not window > 0 or not stride > 0:
        raise ValueError(f"fps, window and stride must be > 0, got {fps}, {window}, {stride}")
    # (first frame, start second) of every segment; the frames of a segment are those whose time
    # index / fps is in [start, end), so its first frame is ceil(start * fps) (with a little
    # tolerance: 0.1 s at 30 fps is frame 3, not frame 4 after floating-point rounding)
    bounds = [(0, 0.0)]
    k = 1
    while True:
        first = math.ceil(k * stride * fps - 1e-6)
        if first >= num_frames:
            break
        if first > bounds[-1][0]:
            bounds.append((first, k * stride))
        k += 1
    bounds.append((num_frames, num_frames / fps))
    length = min(num_frames, max(1, math.floor(window * fps + 0.5)))
    spans = []
    for (first, start), (stop, end) in zip(bounds[:-1], bounds[1:]):
        centre = (start + end) / 2 * fps  # in frames
        window_first = min(max(0, math.floor(centre - length / 2 + 0.5)), num_frames - length)
        spans.append(SegmentSpan(start, end, first, stop, window_first, window_first + length))
    return spans


def _segments_on_timeline(
    num_frames: int,
    fps: float,
    window: float,
    stride: float,
    frame_times: Sequence[float],
    duration: float | None,
) -> list[SegmentSpan]:
    times = np.asarray(frame_times, dtype=np.float64)
    if num_frames < 1 or times.shape != (num_frames,):
        raise ValueError(f"frame_times must hold one time per frame ({num_frames}), got shape {times.shape}")
    if not window > 0 or not stride > 0:
        raise ValueError(f"window and stride must be > 0, got {window}, {stride}")
    times = times - times[0]
    end_of_video = float(duration) if duration else float(times[-1] + 1.0 / fps)
    end_of_video = max(end_of_video, float(times[-1]) + 1e-6)

    def first_frame_at(seconds: float) -> int:  # the first frame whose time is >= seconds
        return int(np.searchsorted(times, seconds - 1e-6, side="left"))

    bounds = [(0, 0.0)]
    k = 1
    while True:
        first = first_frame_at(k * stride)
        if first >= num_frames or k * stride >= end_of_video:
            break
        if first > bounds[-1][0]:  # a segment without a frame is merged into the next
            bounds.append((first, k * stride))
        k += 1
    bounds.append((num_frames, end_of_video))
    length = min(window, end_of_video)
    spans = []
    for (first, start), (stop, end) in zip(bounds[:-1], bounds[1:]):
        low = min(max(0.0, (start + end) / 2 - length / 2), end_of_video - length)
        window_first = min(first_frame_at(low), num_frames - 1)
        window_stop = max(window_first + 1, first_frame_at(low + length))
        spans.append(SegmentSpan(start, end, first, stop, window_first, min(window_stop, num_frames)))
    return spans


@dataclass
class TimelineSegment(TopKMixin):
    """The prediction for seconds ``[start, end)`` of a video.

    ``window_start``/``window_end``: the stretch of video the model saw for it. ``topk``:
    ``[(label, probability)]`` best first; ``probabilities``: one per class, summing to 1.
    """

    start: float
    end: float
    window_start: float
    window_end: float
    topk: list[tuple[str, float]] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)


@dataclass
class Timeline:
    """Segment-by-segment predictions for one video (see the module docstring).

    ``duration`` is the video's length in seconds (``None`` when unreadable); ``error`` says why
    the video could not be read (then ``segments`` is empty); ``num_views`` are the views per
    segment; ``class_names`` index ``probabilities``.
    """

    video: str
    window: float
    stride: float
    class_names: list[str] = field(default_factory=list, repr=False)
    duration: float | None = None
    segments: list[TimelineSegment] = field(default_factory=list)
    num_views: int = 0
    error: str | None = None
    num_clips: int = 0
    num_crops: int = 0

    @property
    def views_text(self) -> str:
        """``"1 clip x 3 crops = 3 views"`` per segment (``"N views"`` when the split is unknown)."""
        views = f"{self.num_views} view" + ("" if self.num_views == 1 else "s")
        if not (self.num_clips and self.num_crops):
            return views
        clips = f"{self.num_clips} clip" + ("" if self.num_clips == 1 else "s")
        crops = f"{self.num_crops} crop" + ("" if self.num_crops == 1 else "s")
        return f"{clips} x {crops} = {views}"

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without ``class_names``, which callers write once)."""
        return {
            "video": self.video,
            "ok": self.ok,
            "error": self.error,
            "duration": self.duration,
            "window": self.window,
            "stride": self.stride,
            "num_views": self.num_views,
            "num_clips": self.num_clips,
            "num_crops": self.num_crops,
            "segments": [segment.to_dict() for segment in self.segments],
        }

    def plot(self, path: str | Path, max_classes: int = 8) -> Path:
        """Write the timeline as a PNG (see ``plot_timeline``)."""
        return plot_timeline(self, path, max_classes)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def class_colour(index: int) -> tuple[float, float, float]:
    """The colour of class ``index`` (RGB in [0, 1]), the same in every plot and annotated video.

    Colours follow the class index, not the order classes appear in, so a class keeps its colour
    across the videos of a folder: the 20 colours of matplotlib's ``tab20`` (its 10 strong ones
    first), then hues spread by the golden ratio for larger class lists.
    """
    import colorsys

    from matplotlib import colormaps

    if index < 20:
        tab20 = colormaps["tab20"]
        return tuple(float(c) for c in tab20((2 * index) % 20 + (index >= 10))[:3])
    hue = (index * 0.6180339887) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.65, 0.85)


def _shown_classes(timeline: Timeline, max_classes: int) -> list[int]:
    """Classes to draw: every segment's top-1 first (by first appearance), then the most probable
    others, ``max_classes`` in all (top-1 classes are always drawn)."""
    names = timeline.class_names
    index = {name: k for k, name in enumerate(names)}
    shown: list[int] = []
    for segment in timeline.segments:
        k = index[segment.label]
        if k not in shown:
            shown.append(k)
    peak = [max(s.probabilities[k] for s in timeline.segments) for k in range(len(names))]
    for k in sorted(range(len(names)), key=lambda k: -peak[k]):
        if len(shown) >= max_classes:
            break
        if k not in shown:
            shown.append(k)
    return shown


def _runs(timeline: Timeline) -> list[tuple[float, float, str]]:
    """Consecutive segments with the same top-1 label merged: ``[(start, end, label)]``."""
    runs: list[tuple[float, float, str]] = []
    for segment in timeline.segments:
        if runs and runs[-1][2] == segment.label:
            runs[-1] = (runs[-1][0], segment.end, segment.label)
        else:
            runs.append((segment.start, segment.end, segment.label))
    return runs


def _text_colour(colour) -> str:
    """Black or white, whichever reads better on ``colour`` (by its luminance)."""
    red, green, blue = colour[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.55 else "white"


def plot_timeline(timeline: Timeline, path: str | Path, max_classes: int = 8) -> Path:
    """PNG of a timeline: a strip coloured by each segment's top-1 class (the label written on it
    where it fits) over the probabilities of the top classes against time (seconds); colours are
    fixed per class (:func:`class_colour`). Returns ``path``."""
    if not timeline.segments:
        raise ValueError(f"{timeline.video}: the timeline has no segments ({timeline.error or 'empty'})")
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = _shown_classes(timeline, max_classes)
    names = timeline.class_names
    colour = {k: class_colour(k) for k in shown}
    edges = [s.start for s in timeline.segments] + [timeline.segments[-1].end]
    fig, (strip, curves) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 4.4), gridspec_kw={"height_ratios": [1, 4]}, constrained_layout=True
    )
    total = edges[-1]
    for start, end, label in _runs(timeline):
        k = names.index(label)
        strip.broken_barh([(start, end - start)], (0, 1), facecolors=colour[k], edgecolor="white")
        # the axis is about 100 characters wide at this font size: write the label only where it fits
        if (end - start) / total * 100 >= len(label) + 2:
            strip.text(
                (start + end) / 2,
                0.5,
                label,
                ha="center",
                va="center",
                fontsize=8.5,
                color=_text_colour(colour[k]),
            )
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.set_ylabel("top-1", rotation=0, ha="right", va="center")
    for k in shown:
        values = [s.probabilities[k] for s in timeline.segments]
        curves.stairs(values, edges, color=colour[k], linewidth=1.8, label=names[k], baseline=None)
    curves.set_xlim(0, total)
    curves.set_ylim(0, 1.02)
    curves.set_xlabel("time (s)")
    curves.set_ylabel("probability")
    curves.grid(alpha=0.3)
    curves.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    strip.set_title(
        f"{Path(timeline.video).name}: {len(timeline.segments)} segments of {timeline.stride:g} s "
        f"(window {timeline.window:g} s), {timeline.views_text} per segment",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
