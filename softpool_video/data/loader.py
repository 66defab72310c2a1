"""DataLoader for ``VideoClipDataset``: collate, samplers, epochs, failures from workers.

``build_dataloader`` returns a ``VideoDataLoader``; its batches are dicts::

    video        float (B, C, T, H, W), or [slow (B, C, T/alpha, H, W), fast (B, C, T, H, W)]
    label        int64 (B,)
    video_index  int64 (B,)   clip_index int64 (B,)   crop_index int64 (B,)

Worker processes hold their own copy of the dataset, so the failures they see would be lost
to the main process. Each item therefore carries the videos that failed while it was made
(``failed_videos``); the loader takes them out of every batch and records them in the main
process's ``dataset.failures``, logs each once, and enforces ``max_failure_fraction`` there.

Call ``loader.set_epoch(epoch)`` at the start of every epoch: it reshuffles deterministically
(``seed + epoch``), tells ``DistributedSampler`` the epoch, and lets items draw that epoch's
random clips.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler, default_collate

from softpool_video.data.dataset import FAILURES_KEY, VideoClipDataset, decode_failures

logger = logging.getLogger(__name__)

_INDEX_KEYS = ("label", "video_index", "clip_index", "crop_index")


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack dataset items into a batch (see the module docstring for shapes).

    ``failed_videos`` strings are gathered into a list (empty strings dropped); keys other than
    the known ones are collated with torch's ``default_collate``.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    first = items[0]["video"]
    if isinstance(first, (list, tuple)):
        video: Any = [torch.stack([item["video"][k] for item in items]) for k in range(len(first))]
    else:
        video = torch.stack([item["video"] for item in items])
    batch: dict[str, Any] = {"video": video}
    for key in _INDEX_KEYS:
        batch[key] = torch.tensor([int(item[key]) for item in items], dtype=torch.long)
    batch[FAILURES_KEY] = [item[FAILURES_KEY] for item in items if item.get(FAILURES_KEY)]
    for key in items[0]:
        if key not in batch:
            batch[key] = default_collate([item[key] for item in items])
    return batch


class ShardedEvalSampler(DistributedSampler):
    """``DistributedSampler`` for evaluation: rank ``r`` gets items ``r, r + W, r + 2W, ...``.

    Unlike the parent, it never pads by repeating items, so every view is evaluated exactly
    once across ranks. Ranks may get one item (so one batch) more than others: gather the
    results after the loop rather than running a collective per batch.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


class VideoDataLoader(DataLoader):
    """A ``DataLoader`` that moves worker failures into ``dataset.failures`` and has ``set_epoch``."""

    def __init__(self, dataset: VideoClipDataset, *args, seed: int = 0, **kwargs):
        super().__init__(dataset, *args, **kwargs)
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        """Deterministic per-epoch order and augmentation: call before iterating each epoch."""
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        elif isinstance(self.sampler, RandomSampler) and self.sampler.generator is not None:
            self.sampler.generator.manual_seed(self.seed + epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        record = getattr(self.dataset, "record_failures", None)
        for batch in super().__iter__():
            reported = batch.pop(FAILURES_KEY, None) if isinstance(batch, dict) else None
            if reported and record is not None:
                for text in reported:
                    # num_workers=0: the dataset has already logged and recorded them
                    record(decode_failures(text), log=self.num_workers > 0)
            yield batch


def build_dataloader(
    dataset: VideoClipDataset,
    batch_size: int,
    num_workers: int = 0,
    shuffle: bool | None = None,
    distributed: bool = False,
    seed: int = 0,
    drop_last: bool | None = None,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
    multiprocessing_context: str | None = None,
) -> VideoDataLoader:
    """A ``VideoDataLoader`` over ``dataset``.

    Args:
        batch_size: clips per batch.
        num_workers: decoding processes (0 = decode in the main process).
        shuffle: default ``True`` for a training dataset, ``False`` otherwise.
        distributed: shard across the ranks of the initialised ``torch.distributed`` group:
            ``DistributedSampler`` when shuffling (training), ``ShardedEvalSampler`` (no
            repeated items) otherwise.
        seed: shuffling seed; epoch ``e`` uses ``seed + e`` (see ``VideoDataLoader.set_epoch``).
        drop_last: default ``True`` when shuffling (training), ``False`` otherwise.
        pin_memory: default ``torch.cuda.is_available()``.
        persistent_workers: default ``num_workers > 0``.
        prefetch_factor, multiprocessing_context: passed to ``DataLoader`` (workers only).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    training = getattr(dataset, "training", False)
    shuffle = training if shuffle is None else shuffle
    drop_last = shuffle if drop_last is None else drop_last
    pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
    persistent_workers = num_workers > 0 if persistent_workers is None else persistent_workers
    generator = None
    if distributed:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "build_dataloader(distributed=True) needs torch.distributed to be initialised "
                "(torch.distributed.init_process_group) first"
            )
        if shuffle:
            sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=drop_last)
        else:
            sampler = ShardedEvalSampler(dataset)
    elif shuffle:
        generator = torch.Generator()
        generator.manual_seed(seed)
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    if num_workers > 0 and hasattr(dataset, "log_failures_in_workers"):
        dataset.log_failures_in_workers = False  # the main process logs what workers report
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
        if multiprocessing_context is not None:
            extra["multiprocessing_context"] = multiprocessing_context
    loader = VideoDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_clips,
        pin_memory=pin_memory,
        drop_last=drop_last,
        seed=seed,
        **extra,
    )
    if len(loader) == 0:
        logger.warning(
            "%s: %d items and batch_size=%d with drop_last=%s give no batch",
            getattr(dataset, "name", "dataset"),
            len(dataset),
            batch_size,
            drop_last,
        )
    return loader
