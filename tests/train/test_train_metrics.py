"""Metric functions against hand-computed cases."""

import math

import pytest
import torch

from softpool_video.train.metrics import (
    RunningMeter,
    aggregate_video_scores,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    topk_accuracy,
    topk_correct,
)


def test_topk_correct_hand_computed():
    scores = torch.tensor(
        [
            [0.1, 0.7, 0.2],  # label 1: top-1 hit
            [0.5, 0.3, 0.2],  # label 1: second best -> top-2 hit only
            [0.2, 0.3, 0.5],  # label 0: last -> top-3 hit only
            [0.6, 0.1, 0.3],  # label 0: top-1 hit
        ]
    )
    labels = torch.tensor([1, 1, 0, 0])
    assert topk_correct(scores, labels, (1, 2, 3)) == {1: 2, 2: 3, 3: 4}
    # k beyond the number of classes counts every row (min(k, K) convention)
    assert topk_correct(scores, labels, (5,)) == {5: 4}
    assert topk_accuracy(scores, labels, (1, 2)) == {1: 50.0, 2: 75.0}


def test_topk_rejects_bad_shapes_and_handles_empty():
    with pytest.raises(ValueError, match="labels must be"):
        topk_correct(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="scores must be"):
        topk_correct(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    assert math.isnan(topk_accuracy(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))[1])


def test_video_aggregation_mean_sum_max():
    # two videos: video 7 has 3 views, video 2 has 1 view (indices need not be contiguous)
    views = torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    video_index = torch.tensor([7, 7, 2, 7])
    videos, mean, counts = aggregate_video_scores(views, video_index, "mean")
    assert videos.tolist() == [2, 7]
    assert counts.tolist() == [1, 3]
    torch.testing.assert_close(mean, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    _, total, _ = aggregate_video_scores(views, video_index, "sum")
    torch.testing.assert_close(total, torch.tensor([[0.7, 0.3], [0.9, 2.1]]))
    _, peak, _ = aggregate_video_scores(views, video_index, "max")
    torch.testing.assert_close(peak, torch.tensor([[0.7, 0.3], [0.6, 0.9]]))
    with pytest.raises(ValueError, match="aggregation must be one of mean, sum, max"):
        aggregate_video_scores(views, video_index, "median")


def test_aggregation_changes_the_decision():
    # One confident wrong view against two mildly right ones: mean says class 1, max says class 0.
    views = torch.tensor([[0.95, 0.05], [0.4, 0.6], [0.4, 0.6]])
    index = torch.zeros(3, dtype=torch.long)
    assert aggregate_video_scores(views, index, "mean")[1].argmax().item() == 0  # (1.75/3 vs 1.25/3)
    views = torch.tensor([[0.7, 0.3], [0.35, 0.65], [0.35, 0.65]])
    assert aggregate_video_scores(views, index, "mean")[1].argmax().item() == 1  # 0.4667 vs 0.5333
    assert aggregate_video_scores(views, index, "max")[1].argmax().item() == 0  # 0.7 vs 0.65


def test_confusion_and_class_accuracies():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 1, 0, 1, 1, 0])
    matrix = confusion_matrix(preds, labels, num_classes=4)
    expected = torch.tensor([[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(matrix, expected)
    per_class = per_class_accuracy(matrix)
    torch.testing.assert_close(per_class[:3], torch.tensor([200 / 3, 100.0, 0.0], dtype=torch.float64))
    assert math.isnan(per_class[3])  # class 3 has no samples: excluded from the mean
    assert mean_class_accuracy(matrix) == pytest.approx((200 / 3 + 100 + 0) / 3)
    # overall accuracy 4/6 differs from the class mean: the metric matters for unbalanced data
    assert mean_class_accuracy(matrix) != pytest.approx(400 / 6)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        confusion_matrix(preds, torch.tensor([0, 0, 0, 1, 1, 4]), 4)


def test_running_meter_packs_and_averages():
    meter = RunningMeter(["loss", "top1"])
    meter.update("loss", 6.0, 3)
    meter.update("loss", 2.0, 1)
    meter.update("top1", 50.0, 1)
    assert meter.average("loss") == 2.0
    other = RunningMeter(["loss", "top1"])
    other.load_tensor(meter.as_tensor() * 2)  # what an all-reduce over two equal ranks gives
    assert other.average("loss") == 2.0 and other.total("loss") == 16.0
