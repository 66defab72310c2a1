"""``VideoClipDataset``: a map-style dataset of video clips that survives bad files.

Map-style (``__getitem__`` + ``__len__``) so that any sampler works, ``DistributedSampler``
included, and every rank sees different videos.

Items
    train: ``len == num_videos``; item ``i`` is one random clip of video ``i``.
    val/test: ``len == num_videos * num_clips * num_crops``; item ``i`` is one *view*:
    ``i = (video_index * num_clips + clip_index) * num_crops + crop_index``.

Each item is a dict::

    video        float (C, T, H, W) after the transform, or [slow, fast] for SlowFast
    label        int
    video_index  int, index into ``dataset.videos``
    clip_index   int, crop_index int
    failed_videos  str, "path\\tmessage" lines of the videos that failed while producing this
                   item ("" nearly always); the loader moves them into ``dataset.failures``
                   of the main process (see ``loader.py``).

Determinism: everything random about item ``i`` (clip start, crop, flip, scale, substitute
video) derives from ``(seed, epoch, i)``, so results do not depend on worker count or order.
``set_epoch`` stores the epoch in shared memory, so workers that outlive an epoch
(``persistent_workers``) see it too.

Bad videos: a video that cannot be opened or decoded is recorded in ``failures`` (and logged)
once, and the item is retried with another, randomly chosen video (at most ``max_retries``
times); a video known to be bad is not decoded again. In val/test the substitute keeps the
requested ``clip_index``/``crop_index``, so it repeats one of the substitute's own views:
aggregate per unique ``(video_index, clip_index, crop_index)`` to weight every view once, and
take the list of unreadable videos from ``failures``. When more than ``max_failure_fraction``
of the videos have failed, ``TooManyFailedVideosError`` reports them all at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from softpool_video.constants import SPLITS
from softpool_video.data.annotations import VideoRecord
from softpool_video.data.decoders import VideoDecodeError, open_video
from softpool_video.data.sampling import ClipSampler
from softpool_video.data.transforms import to_video_tensor

logger = logging.getLogger(__name__)

FAILURES_KEY = "failed_videos"
_MAX_EXAMPLES = 5


class TooManyFailedVideosError(RuntimeError):
    """More videos failed to decode than ``max_failure_fraction`` allows, or every retry failed."""


def _examples(items: Sequence[Any], limit: int = _MAX_EXAMPLES) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def encode_failures(failures: Iterable[tuple[str, str]]) -> str:
    """``[(path, message)]`` -> the ``failed_videos`` string carried by items."""
    return "\n".join(f"{path}\t{' '.join(message.split())}" for path, message in failures)


def decode_failures(text: str) -> list[tuple[str, str]]:
    """Inverse of ``encode_failures``."""
    pairs = []
    for line in text.splitlines():
        path, _, message = line.partition("\t")
        if path:
            pairs.append((path, message))
    return pairs


class VideoClipDataset(Dataset):
    """Clips of labelled videos (see the module docstring for items, determinism and failures).

    Args:
        records: the videos (path, label, optional time window).
        class_names: names indexed by ``label``.
        split: ``"train"`` (one random clip per video) or ``"val"``/``"test"`` (all views).
        num_frames, sampling_rate, target_fps: clip shape, see ``ClipSampler``.
        num_clips, num_crops: views per video in val/test (``num_crops`` 1 or 3).
        transform: called on the sample dict, ``video`` being ``tv_tensors.Video`` uint8
            ``(T, C, H, W)``; see ``transforms.py``. ``None`` returns uint8 ``(C, T, H, W)``.
        decoder, decoder_threads: backend of ``open_video`` and its thread count.
        skip_missing: drop listed files that do not exist (with one warning) instead of raising.
        max_retries: other videos tried for one item before giving up.
        max_failure_fraction: fraction of ``videos`` allowed to be unreadable.
        seed: base of every random choice.
        name: used in messages, e.g. ``"ucf101/train"``.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        class_names: Sequence[str],
        *,
        split: str = "train",
        num_frames: int = 8,
        sampling_rate: int = 8,
        target_fps: float | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
        transform: Callable[[dict], dict] | None = None,
        decoder: str = "pyav",
        decoder_threads: int = 1,
        skip_missing: bool = True,
        max_retries: int = 10,
        max_failure_fraction: float = 0.05,
        seed: int = 0,
        name: str = "videos",
    ):
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {num_clips}")
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if not 0.0 <= max_failure_fraction <= 1.0:
            raise ValueError(f"max_failure_fraction must be in [0, 1], got {max_failure_fraction}")
        self.name = name
        self.split = split
        self.class_names = list(class_names)
        self.clip_sampler = ClipSampler(num_frames, sampling_rate, target_fps)
        self.num_clips = num_clips if split != "train" else 1
        self.num_crops = num_crops if split != "train" else 1
        self.transform = transform
        self.decoder = decoder
        self.decoder_threads = decoder_threads
        self.max_retries = max_retries
        self.max_failure_fraction = max_failure_fraction
        self.seed = seed
        self.records = self._check_files(list(records), skip_missing)
        bad_labels = [r for r in self.records if r.label >= len(self.class_names)]
        if bad_labels:
            raise ValueError(
                f"{name}: {len(bad_labels)} records have a label >= num_classes={len(self.class_names)} "
                f"(first: {bad_labels[0].path} label {bad_labels[0].label})"
            )
        self.videos: list[Path] = [r.path for r in self.records]
        self.labels: list[int] = [r.label for r in self.records]
        # shared memory: DataLoader workers (forked or spawned, persistent or not) read the
        # epoch the main process set, without being restarted
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._failures: dict[str, str] = {}
        # The loader built by build_dataloader() logs failures reported from its workers in the
        # main process; it clears this so that workers do not log them a second time.
        self.log_failures_in_workers = True

    # ---- construction helpers -------------------------------------------------------------

    def _check_files(self, records: list[VideoRecord], skip_missing: bool) -> list[VideoRecord]:
        if not records:
            raise ValueError(f"{self.name}: the annotations list no videos")
        exists = [r.path.is_file() for r in records]
        present = [r for r, ok in zip(records, exists) if ok]
        missing = [r.path for r, ok in zip(records, exists) if not ok]
        if not missing:
            return records
        summary = (
            f"{self.name}: {len(missing)} of {len(records)} listed videos are missing "
            f"(first: {_examples(missing)})"
        )
        if not present:
            raise FileNotFoundError(f"{summary}; none exist: check data.root and the video folders")
        if not skip_missing:
            raise FileNotFoundError(f"{summary}; set data.skip_missing=true to train on the others")
        logger.warning("%s; they are skipped (skip_missing=True)", summary)
        return present

    # ---- public API -----------------------------------------------------------------------

    @property
    def training(self) -> bool:
        return self.split == "train"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_views(self) -> int:
        """Items per video: 1 in training, ``num_clips * num_crops`` in val/test."""
        return self.num_clips * self.num_crops

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random clips/augmentations items draw (visible to all workers)."""
        self._epoch.fill_(int(epoch))

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(path, error message)`` of every unreadable video seen so far, first seen first."""
        return list(self._failures.items())

    def record_failures(self, failures: Iterable[tuple[str, str]], log: bool = True) -> None:
        """Add failures seen elsewhere (a DataLoader worker); duplicates are ignored.

        Raises ``TooManyFailedVideosError`` once more than ``max_failure_fraction`` of the
        videos have failed.
        """
        for path, message in failures:
            self._note_failure(str(path), message, log)

    def view(self, index: int) -> tuple[int, int, int]:
        """Item index -> ``(video_index, clip_index, crop_index)``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {self.name} with {len(self)} items")
        video_index, rest = divmod(index, self.num_views)
        clip_index, crop_index = divmod(rest, self.num_crops)
        return video_index, clip_index, crop_index

    def __len__(self) -> int:
        return len(self.records) * self.num_views

    def __getitem__(self, index: int) -> dict[str, Any]:
        if get_worker_info() is not None or torch.get_num_threads() == 1:
            return self._get_item(int(index))
        # Decoding in the main process (num_workers=0): one clip's tensors are too small to gain
        # from intra-op threads, and OpenMP threads spinning after each parallel op starve the
        # decoder (measured 3-4x slower items on 2 cores). DataLoader workers already run with
        # one thread.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._get_item(int(index))
        finally:
            torch.set_num_threads(threads)

    def _get_item(self, index: int) -> dict[str, Any]:
        video_index, clip_index, crop_index = self.view(index)
        epoch = self.epoch
        failed_here: list[tuple[str, str]] = []
        tried = {video_index}
        for attempt in range(self.max_retries + 1):
            rng = np.random.default_rng([self.seed, epoch, index, attempt])
            path = str(self.videos[video_index])
            if path not in self._failures:
                try:
                    frames = self._decode(video_index, clip_index, rng)
                except VideoDecodeError as err:
                    failed_here.append((path, err.reason))
                    self._note_failure(path, err.reason, log=self._should_log())
                else:
                    sample = self._make_sample(frames, video_index, clip_index, crop_index, rng)
                    sample[FAILURES_KEY] = encode_failures(failed_here)
                    return sample
            # a generator of its own: the substitute must not depend on whether this process had
            # already seen the video fail (decoding draws from ``rng``, skipping it does not)
            video_index = self._substitute(
                video_index, np.random.default_rng([self.seed, epoch, index, attempt, 1]), tried
            )
            tried.add(video_index)
        raise TooManyFailedVideosError(
            f"{self.name}: item {index} failed {self.max_retries + 1} times in a row with different videos "
            f"({_examples([f'{p} ({m})' for p, m in failed_here])}); the dataset looks broken: "
            "run datasets/check_videos.py on it"
        )

    def __repr__(self) -> str:
        s = self.clip_sampler
        return (
            f"{type(self).__name__}({self.name!r}, split={self.split}, videos={len(self.videos)}, "
            f"classes={self.num_classes}, clip={s.num_frames}x{s.sampling_rate}, "
            f"views={self.num_clips}x{self.num_crops}, "
            f"decoder={self.decoder})"
        )

    # ---- internals ------------------------------------------------------------------------

    @staticmethod
    def _window(record: VideoRecord, video) -> tuple[int, int] | None:
        """The frames of ``record``'s time window, ``None`` for the whole video."""
        if record.start_sec is None and record.end_sec is None:
            return None
        return video.index.frames_between(record.start_sec, record.end_sec)

    def _decode(self, video_index: int, clip_index: int, rng: np.random.Generator) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames of the clip; ``VideoDecodeError`` for any unreadable video."""
        record = self.records[video_index]
        with open_video(record.path, backend=self.decoder, threads=self.decoder_threads) as video:
            window = self._window(record, video)
            if self.training:
                indices = self.clip_sampler.train_indices(video.frame_times, rng, window)
            else:
                indices = self.clip_sampler.test_indices(
                    video.frame_times, clip_index, self.num_clips, window
                )
            return video.decode(indices).frames

    def _make_sample(
        self,
        frames: torch.Tensor,
        video_index: int,
        clip_index: int,
        crop_index: int,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "video": to_video_tensor(frames),
            "label": self.labels[video_index],
            "video_index": video_index,
            "clip_index": clip_index,
            "crop_index": crop_index,
        }
        if self.transform is None:
            sample["video"] = frames.permute(3, 0, 1, 2).contiguous()
            return sample
        # torchvision's random transforms draw from torch's global generator: seed it per item
        # (inside fork_rng, so the caller's generator state is left untouched)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(rng.integers(0, 2**62)))
            sample = self.transform(sample)
        if not isinstance(sample, dict) or "video" not in sample:
            raise TypeError(f"the transform must return the sample dict, got {type(sample).__name__}")
        return sample

    def _substitute(self, video_index: int, rng: np.random.Generator, tried: set[int]) -> int:
        """Another video to try, preferring ones this item has not tried yet.

        The choice depends on ``rng`` and this item's own attempts only, never on which failures
        this process happens to know (each DataLoader worker knows those it met, a resumed run all
        those of its checkpoint), so items are the same whatever the workers and however often the
        run was resumed; a known-bad substitute is skipped by the next attempt without decoding.
        """
        count = len(self.videos)
        if count == 1:
            return video_index
        for _ in range(16):
            candidate = int(rng.integers(count - 1))
            candidate += candidate >= video_index  # never the same video
            if candidate not in tried:
                return candidate
        return candidate

    def _should_log(self) -> bool:
        return self.log_failures_in_workers or get_worker_info() is None

    def _note_failure(self, path: str, message: str, log: bool) -> None:
        if path in self._failures:
            return
        self._failures[path] = message
        if log:
            logger.warning(
                "%s: unreadable video %s (%s); another video is used instead", self.name, path, message
            )
        allowed = self.max_failure_fraction * len(self.videos)
        if len(self._failures) > allowed:
            listed = [f"{p} ({m})" for p, m in self._failures.items()]
            raise TooManyFailedVideosError(
                f"{self.name}: {len(self._failures)} of {len(self.videos)} videos are unreadable, more than "
                f"max_failure_fraction={self.max_failure_fraction} allows: {_examples(listed)}. Run "
                "datasets/check_videos.py to list them all, then remove or re-encode them, or raise "
                "data.max_failure_fraction"
            )
