"""PNG plots of a run: the confusion matrix of an evaluation and the training curves of metrics.csv."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["plot_confusion_matrix", "plot_training_curves"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised ``(K, K)`` confusion matrix (rows = true class); names on the axes up to 40 classes,
    counts in the cells up to 20."""
    plt = _pyplot()
    k = matrix.shape[0]
    support = matrix.sum(dim=1, keepdim=True).clamp_min(1)
    normalised = (matrix.double() / support).numpy()
    size = min(4 + 0.35 * k, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 40:
        ax.set_xticks(range(k), labels=list(class_names), rotation=90, fontsize=8)
        ax.set_yticks(range(k), labels=list(class_names), fontsize=8)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    colour = "white" if normalised[i, j] > 0.5 else "black"
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    values = []
    for row in rows:
        text = row.get(key, "")
        values.append(float(text) if text not in ("", None) else math.nan)
    return values


def plot_training_curves(metrics_csv: Path, path: Path) -> Path:
    """Loss and accuracy per epoch (train and val) from a run's ``metrics.csv``."""
    plt = _pyplot()
    with Path(metrics_csv).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{metrics_csv} has no epoch rows to plot")
    epochs = [int(row["epoch"]) + 1 for row in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, _column(rows, "train_loss"), marker="o", label="train")
    loss_ax.plot(epochs, _column(rows, "val_loss"), marker="o", label="val (clips)")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.legend()
    acc_ax.plot(epochs, _column(rows, "train_top1"), marker="o", label="train top-1 (clips)")
    acc_ax.plot(epochs, _column(rows, "val_top1"), marker="o", label="val top-1 (clips)")
    acc_ax.plot(epochs, _column(rows, "val_video_top1"), marker="o", label="val top-1 (videos)")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_ylim(0, 100)
    acc_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
