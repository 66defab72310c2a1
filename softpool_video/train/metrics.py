"""Classification metrics: top-k accuracy, video-level aggregation of view scores, per-class accuracy.

Conventions used throughout:
- ``scores`` are ``(N, K)`` (logits or probabilities; top-k does not care), ``labels`` are ``(N,)`` int64.
- Accuracies are percentages in ``[0, 100]``.
- The confusion matrix is ``(K, K)`` int64 with rows = true class and columns = predicted class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from softpool_video.constants import AGGREGATIONS

__all__ = [
    "AGGREGATIONS",
    "RunningMeter",
    "aggregate_video_scores",
    "confusion_matrix",
    "mean_class_accuracy",
    "per_class_accuracy",
    "topk_accuracy",
    "topk_correct",
]


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of rows whose label is among the ``k`` highest scores, for each ``k`` in ``ks``.

    ``k`` larger than the number of classes counts every row as correct (top-5 of a 3-class problem is
    trivially 100%), which is what the usual ``min(k, K)`` convention gives.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, K), got shape {tuple(scores.shape)}")
    if labels.shape != scores.shape[:1]:
        raise ValueError(f"labels must be (N,) = ({scores.shape[0]},), got shape {tuple(labels.shape)}")
    if scores.shape[0] == 0:
        return {k: 0 for k in ks}
    max_k = min(max(ks), scores.shape[1])
    top = scores.topk(max_k, dim=1).indices  # (N, max_k), best first
    hits = top.eq(labels.unsqueeze(1))  # (N, max_k)
    return {k: int(hits[:, : min(k, max_k)].any(dim=1).sum()) for k in ks}


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent for each ``k``; NaN for an empty input."""
    n = scores.shape[0]
    correct = topk_correct(scores, labels, ks)
    return {k: (100.0 * c / n if n else math.nan) for k, c in correct.items()}


def aggregate_video_scores(
    view_scores: torch.Tensor, video_index: torch.Tensor, method: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Combine the scores of the views (clips x crops) of each video into one score per video.

    Args:
        view_scores: ``(N_views, K)`` softmax scores, one row per view.
        video_index: ``(N_views,)`` the video each view belongs to.
        method: ``mean`` | ``sum`` | ``max`` (element-wise over the views of a video).

    Returns:
        ``(videos, scores, num_views)``: the sorted unique video indices ``(V,)``, their aggregated
        scores ``(V, K)`` and how many views each had ``(V,)``.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {method!r}")
    if view_scores.ndim != 2 or video_index.shape != view_scores.shape[:1]:
        raise ValueError(
            f"view_scores must be (N, K) and video_index (N,), got {tuple(view_scores.shape)} "
            f"and {tuple(video_index.shape)}"
        )
    videos, inverse = torch.unique(video_index, sorted=True, return_inverse=True)
    num_videos, num_classes = videos.numel(), view_scores.shape[1]
    scores = view_scores.float()
    counts = torch.zeros(num_videos, dtype=torch.int64).index_add_(0, inverse, torch.ones_like(inverse))
    if method == "max":
        rows = inverse.unsqueeze(1).expand(-1, num_classes)
        out = torch.full((num_videos, num_classes), -math.inf).scatter_reduce_(0, rows, scores, "amax")
    else:
        out = torch.zeros(num_videos, num_classes).index_add_(0, inverse, scores)
        if method == "mean":
            out = out / counts.unsqueeze(1)
    return videos, out, counts


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` int64 counts; entry ``[i, j]`` = number of samples of true class i predicted as j."""
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} differ")
    for name, t in (("predictions", predictions), ("labels", labels)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), got [{int(t.min())}, {int(t.max())}]")
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """``(K,)`` accuracy in percent of each true class; NaN for a class with no samples."""
    support = matrix.sum(dim=1).double()
    correct = matrix.diagonal().double()
    return torch.where(
        support > 0, 100.0 * correct / support.clamp_min(1), torch.full_like(support, math.nan)
    )


def mean_class_accuracy(matrix: torch.Tensor) -> float:
    """Mean of the per-class accuracies over the classes that have samples (UCF-101's usual metric)."""
    per_class = per_class_accuracy(matrix)
    present = ~per_class.isnan()
    return float(per_class[present].mean()) if bool(present.any()) else math.nan


class RunningMeter:
    """Sums of named quantities and their counts, kept as a float64 tensor so ranks can all-reduce them.

    ``update("loss", value * n, n)`` then ``average("loss")``; ``as_tensor``/``load_tensor`` let
    :func:`softpool_video.train.distributed.all_reduce_sum` combine meters of all processes.
    """

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.totals = torch.zeros(len(self.names), dtype=torch.float64)
        self.counts = torch.zeros(len(self.names), dtype=torch.float64)

    def update(self, name: str, total: float, count: float = 1.0) -> None:
        i = self.names.index(name)
        self.totals[i] += float(total)
        self.counts[i] += float(count)

    def average(self, name: str) -> float:
        i = self.names.index(name)
        return float(self.totals[i] / self.counts[i]) if self.counts[i] > 0 else math.nan

    def total(self, name: str) -> float:
        return float(self.totals[self.names.index(name)])

    def as_tensor(self) -> torch.Tensor:
        return torch.cat([self.totals, self.counts])

    def load_tensor(self, packed: torch.Tensor) -> None:
        n = len(self.names)
        self.totals = packed[:n].to(torch.float64).cpu().clone()
        self.counts = packed[n:].to(torch.float64).cpu().clone()
