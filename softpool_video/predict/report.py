"""Printed tables and JSON/CSV files of predictions and timelines.

JSON (``.json``): ``{"mode", "class_names", "settings", "videos": [...]}``, one entry per video
(``Prediction.to_dict()`` / ``Timeline.to_dict()``), probabilities indexed like ``class_names``.

CSV (``.csv``), one row per video (mode ``predict``)::

    video,error,duration,num_views,top1_label,top1_probability,...,topK_label,topK_probability

or per segment (mode ``timeline``; an unreadable video gets one row with ``error`` set)::

    video,error,segment,start,end,window_start,window_end,top1_label,top1_probability,...
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from softpool_video.predict.predictor import Prediction
from softpool_video.predict.timeline import Timeline

__all__ = ["OUTPUT_FORMATS", "format_prediction", "format_timeline", "write_output"]

OUTPUT_FORMATS = (".json", ".csv")
_BAR_WIDTH = 20


def _bar(probability: float) -> str:
    return "#" * round(probability * _BAR_WIDTH)


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} s"


def _views(count: int) -> str:
    return f"{count} view" + ("" if count == 1 else "s")


def format_prediction(prediction: Prediction) -> str:
    """A few lines: the video, then its top-k labels with probabilities (or why it is unreadable).

    ``clips/bikes.mp4  (10.0 s, 2 views)``, then a header line and one line per label:
    ``rank  label  probability  ####`` (a bar of 20 ``#`` for probability 1).
    """
    if not prediction.ok:
        return f"{prediction.video}  UNREADABLE: {prediction.error}"
    width = max([len("label"), *(len(label) for label, _ in prediction.topk)])
    lines = [
        f"{prediction.video}  ({_seconds(prediction.duration)}, {_views(prediction.num_views)})",
        f"  rank  {'label':<{width}}  probability",
    ]
    for rank, (label, probability) in enumerate(prediction.topk, start=1):
        lines.append(f"  {rank:>4}  {label:<{width}}  {probability:>11.4f}  {_bar(probability)}")
    return "\n".join(lines)


def format_timeline(timeline: Timeline) -> str:
    """The video, then one line per segment: start, end, top-1 label and probability."""
    if not timeline.ok:
        return f"{timeline.video}  UNREADABLE: {timeline.error}"
    width = max([len("label"), *(len(s.label or "") for s in timeline.segments)])
    lines = [
        f"{timeline.video}  ({_seconds(timeline.duration)}, {len(timeline.segments)} segments of "
        f"{timeline.stride:g} s, window {timeline.window:g} s, {_views(timeline.num_views)} each)",
        f"  {'start':>8}  {'end':>8}  {'label':<{width}}  probability",
    ]
    for segment in timeline.segments:
        lines.append(
            f"  {segment.start:>8.2f}  {segment.end:>8.2f}  {segment.label:<{width}}  "
            f"{segment.probability:>11.4f}  {_bar(segment.probability)}"
        )
    return "\n".join(lines)


def _topk_header(topk: int) -> list[str]:
    header = []
    for rank in range(1, topk + 1):
        header += [f"top{rank}_label", f"top{rank}_probability"]
    return header


def _topk_cells(pairs: Sequence[tuple[str, float]], topk: int) -> list[Any]:
    cells: list[Any] = []
    for rank in range(topk):
        if rank < len(pairs):
            cells += [pairs[rank][0], f"{pairs[rank][1]:.6f}"]
        else:
            cells += ["", ""]
    return cells


def _optional(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_output(
    path: str | Path,
    results: Sequence[Prediction | Timeline],
    class_names: Sequence[str],
    settings: Mapping[str, Any],
    topk: int,
) -> Path:
    """Write ``results`` (all predictions or all timelines) to ``path``: JSON or CSV by extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"output={path}: the extension must be one of {', '.join(OUTPUT_FORMATS)}")
    timeline = any(isinstance(r, Timeline) for r in results)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        document = {
            "mode": "timeline" if timeline else "predict",
            "class_names": list(class_names),
            "settings": dict(settings),
            "videos": [result.to_dict() for result in results],
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        return path
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if not timeline:
            writer.writerow(["video", "error", "duration", "num_views", *_topk_header(topk)])
            for p in results:
                writer.writerow(
                    [p.video, p.error or "", _optional(p.duration), p.num_views, *_topk_cells(p.topk, topk)]
                )
            return path
        writer.writerow(
            ["video", "error", "segment", "start", "end", "window_start", "window_end", *_topk_header(topk)]
        )
        for t in results:
            if not t.ok:
                writer.writerow([t.video, t.error, "", "", "", "", "", *_topk_cells([], topk)])
            for index, s in enumerate(t.segments):
                times = [_optional(v, 4) for v in (s.start, s.end, s.window_start, s.window_end)]
                writer.writerow([t.video, "", index, *times, *_topk_cells(s.topk, topk)])
    return path
