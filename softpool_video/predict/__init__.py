"""Classify videos with a trained checkpoint: ``softpool-predict`` and ``softpool_video.Predictor``.

    from softpool_video import Predictor

    predictor = Predictor("best.pt", device="auto", num_clips=None, num_crops=None, topk=5)
    result = predictor.predict("clip.mp4")          # Prediction: .label, .topk, .probabilities, .error
    results = predictor.predict_many(["a.mp4", "videos/"])
    timeline = predictor.timeline("long.mp4", window=2.0, stride=1.0)   # Timeline: .segments
    timeline.plot("long.png")

Where to look: ``predictor`` (loading, multi-view inference, result types), ``timeline``
(segments and their plot), ``report`` (printed tables, JSON/CSV files), ``cli`` (the command).
"""

from softpool_video.predict.predictor import (
    Prediction,
    Predictor,
    find_videos,
    resolve_checkpoint,
    resolve_device,
)
from softpool_video.predict.report import format_prediction, format_timeline, write_output
from softpool_video.predict.timeline import Timeline, TimelineSegment, plot_timeline, timeline_segments

__all__ = [
    "Prediction",
    "Predictor",
    "Timeline",
    "TimelineSegment",
    "find_videos",
    "format_prediction",
    "format_timeline",
    "plot_timeline",
    "resolve_checkpoint",
    "resolve_device",
    "timeline_segments",
    "write_output",
]
