"""Names shared by several parts of the toolkit, defined once.

Every module that accepts or lists one of these values imports it from here, so a new pooling kind,
split or video container is added in one place and every error message lists the same choices.
This module imports nothing: any layer (ops, models, data, train, tools) may use it.
"""

from __future__ import annotations

__all__ = [
    "AGGREGATIONS",
    "DECODERS",
    "DEVICE_CHOICES",
    "POOLING_CHOICES",
    "POOL_KINDS",
    "PRECISIONS",
    "SPLITS",
    "SYNTHETIC_DEFAULT_ROOT",
    "VIDEO_EXTENSIONS",
]

#: Pooling operators compared throughout (visualisations, benchmarks, model swaps), in display
#: order: the two baselines, then SoftPool.
POOL_KINDS = ("max", "avg", "soft")

#: ``pooling.pool`` of a model config: one of the kinds, or ``"original"`` (keep the library's pools).
POOLING_CHOICES = ("soft", "max", "avg", "original")

#: How the softmax scores of a video's views are combined (``eval.aggregation``).
AGGREGATIONS = ("mean", "sum", "max")

#: Dataset splits.
SPLITS = ("train", "val", "test")

#: File extensions searched for when a folder of videos is given (compared in lower case).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")

#: Video decoding back-ends (``data.decoder``, ``decoder=``).
DECODERS = ("pyav", "decord", "torchcodec")

#: ``trainer.precision``: ``auto`` is bf16 on a GPU that supports it (else fp16), fp32 on a CPU.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: The device option of every tool (``device=`` on the command line, ``trainer.accelerator`` in the
#: training configs); ``cuda:N`` picks one GPU, ``gpu`` is accepted as a synonym of ``cuda``.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")

#: Where ``data=synthetic`` keeps the generated dataset (relative to the launch directory); the only
#: place a tool generates it without ``data.generate=true``.
SYNTHETIC_DEFAULT_ROOT = "data/synthetic"
