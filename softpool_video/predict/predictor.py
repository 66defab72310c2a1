"""``Predictor``: classify videos with a ``softpool-train`` checkpoint.

    predictor = Predictor("runs/r2plus1d_tiny-soft/<run>/checkpoints/best.pt")
    result = predictor.predict("clip.mp4")
    result.label, result.probability          # top-1
    result.topk                               # [(label, probability), ...], best first
    result.probabilities                      # one per class, index = predictor.class_names
    results = predictor.predict_many(["a.mp4", "videos/"])   # folders: every video inside
    timeline = predictor.timeline("long.mp4", window=2.0, stride=1.0)
    timeline.plot("long_timeline.png")

Multi-view inference: each video is cut into ``num_clips`` clips evenly spaced in time and
``num_crops`` crops across space, exactly as the test split is evaluated after training (same
clip sampler, same transform, both configured from the checkpoint); the video's probabilities are
the mean of the views' softmax outputs.

Unreadable videos never raise and are never replaced by another video (unlike the training
dataset, which retries a different video): their result carries ``error`` and no scores. A video
some of whose clips decode and others do not is unreadable too (excluded and listed, the rule
``softpool-eval`` follows): no prediction is made from part of a broken file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from softpool_video.constants import VIDEO_EXTENSIONS
from softpool_video.data.decoders import VideoDecodeError, VideoSource, available_backends, open_video
from softpool_video.data.sampling import ClipSampler
from softpool_video.data.transforms import build_transform, to_video_tensor
from softpool_video.devices import resolve_device  # the device option of every tool
from softpool_video.predict.timeline import Timeline, TimelineSegment, TopKMixin, timeline_segments

__all__ = [
    "Prediction",
    "Predictor",
    "find_videos",
    "resolve_checkpoint",
    "resolve_device",
]

DEFAULT_TIMELINE_WINDOW = 2.0


@dataclass
class Prediction(TopKMixin):
    """What ``Predictor.predict`` found for one video.

    Attributes:
        video: the file, as given.
        topk: ``[(label, probability), ...]``, most probable first (empty when unreadable).
        probabilities: one probability per class (index = ``Predictor.class_names``), summing to 1
            (empty when unreadable).
        num_views: clips x crops the model saw.
        duration: seconds, from the container header (``None`` when unreadable).
        error: why the video could not be read, ``None`` when it was classified.
    """

    video: str
    topk: list[tuple[str, float]] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    num_views: int = 0
    duration: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the video was classified."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``topk`` as ``[{"label", "probability"}]``, plus ``ok``)."""
        return {**super().to_dict(), "ok": self.ok}


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` itself, or for a run directory of ``softpool-train`` its ``checkpoints/best.pt``
    (else ``checkpoints/last.pt``, else ``path`` unchanged, for the loader to report)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt"):
            if candidate.is_file():
                return candidate
    return path


def find_videos(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Expand files and folders into the list of videos to classify.

    Folders are searched recursively for files with a video extension (``VIDEO_EXTENSIONS``,
    any case; hidden files skipped), sorted by path. Files given explicitly are kept whatever
    their extension, and so are paths that do not exist (they are reported as unreadable later).
    Duplicates are dropped, the first occurrence kept.

    Returns:
        ``(videos, notes)``: the videos in order, and one message per folder that holds no video.
    """
    videos: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            videos.append(path)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in VIDEO_EXTENSIONS
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                notes.append(
                    f"{path}: no video files in this folder (looked for {', '.join(VIDEO_EXTENSIONS)})"
                )
            for video in found:
                add(video)
        else:
            add(path)
    return videos, notes


@contextlib.contextmanager
def _single_thread_in_main_process():
    # Decoding in the main process: one clip's tensors are too small to gain from intra-op threads,
    # and idle OpenMP threads spinning after each op slow the decoder down (see data/dataset.py).
    if get_worker_info() is not None or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class ViewMaker:
    """Decodes the test views of a video: ``num_clips`` clips x ``num_crops`` crops.

    The clips come from ``clip_sampler.test_indices`` and each view goes through ``transform``
    (``build_transform(data_cfg, "test")``), as the test split of a training run does.
    """

    clip_sampler: ClipSampler
    transform: Any
    num_crops: int
    decoder: str = "pyav"
    decoder_threads: int = 1

    def open(self, path: str | os.PathLike) -> VideoSource:
        return open_video(path, backend=self.decoder, threads=self.decoder_threads)

    def clip_views(
        self, video: VideoSource, clip_index: int, num_clips: int, window: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Float ``(num_crops, C, T, H, W)``: the crops of clip ``clip_index`` of ``num_clips`` evenly
        spaced over frames ``[first, stop)`` of ``window`` (``None``: the whole video).

        Raises ``VideoDecodeError``.
        """
        with _single_thread_in_main_process():
            indices = self.clip_sampler.test_indices(video.frame_times, clip_index, num_clips, window)
            frames = video.decode(indices).frames
            crops = [
                self.transform({"video": to_video_tensor(frames), "crop_index": crop_index})["video"]
                for crop_index in range(self.num_crops)
            ]
        return torch.stack(crops)

    def views(
        self, video: VideoSource, num_clips: int, window: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Float ``(num_clips * num_crops, C, T, H, W)``, clip-major: every view of ``window``."""
        return torch.cat([self.clip_views(video, k, num_clips, window) for k in range(num_clips)])


class _ClipViews(Dataset):
    """Item ``i``: the crops of clip ``i % num_clips`` of video ``i // num_clips``, or why that video
    could not be read. Never substitutes another video.

    One clip per item (not one video) bounds the memory in flight: 10 clips x 3 crops of a
    32-frame 256px model input are 750 MB, one clip's crops 75 MB.
    """

    def __init__(self, videos: Sequence[Path], view_maker: ViewMaker, num_clips: int):
        self.videos = list(videos)
        self.view_maker = view_maker
        self.num_clips = num_clips
        self._unreadable: dict[int, str] = {}  # per process: skip the remaining clips of a bad video

    def __len__(self) -> int:
        return len(self.videos) * self.num_clips

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_index, clip_index = divmod(index, self.num_clips)
        item: dict[str, Any] = {
            "video_index": video_index,
            "clip_index": clip_index,
            "views": None,
            "duration": None,
            "error": self._unreadable.get(video_index),
        }
        if item["error"] is not None:
            return item
        try:
            with self.view_maker.open(self.videos[video_index]) as video:
                item["duration"] = video.info.duration
                item["views"] = self.view_maker.clip_views(video, clip_index, self.num_clips)
        except VideoDecodeError as error:
            item["error"] = self._unreadable[video_index] = error.reason
        return item


def _keep(item: Any) -> Any:
    return item


class _VideoScores:
    """Accumulates the clips of one video into its ``Prediction``; any unreadable clip makes the
    whole video unreadable (no prediction from part of a broken file)."""

    def __init__(self):
        self.total: torch.Tensor | None = None
        self.views = 0
        self.duration: float | None = None
        self.error: str | None = None

    def add(self, item: dict[str, Any], probabilities: torch.Tensor | None) -> None:
        self.duration = self.duration if self.duration is not None else item["duration"]
        if item["error"] is not None:
            self.error = self.error or item["error"]
            return
        count = item["views"].shape[0]
        weighted = probabilities * count
        self.total = weighted if self.total is None else self.total + weighted
        self.views += count

    def prediction(self, video: Path, topk: Any) -> Prediction:
        if self.error is not None or self.total is None:
            return Prediction(str(video), duration=self.duration, error=self.error or "no frames decoded")
        probabilities = _normalised(self.total)
        return Prediction(
            str(video),
            topk=topk(probabilities),
            probabilities=probabilities.tolist(),
            num_views=self.views,
            duration=self.duration,
        )


def _normalised(scores: torch.Tensor) -> torch.Tensor:
    # in float64, so the exported probabilities sum to 1 to double precision
    scores = scores.double()
    return scores / scores.sum()


class Predictor:
    """Classify videos with a checkpoint written by ``softpool-train``, or with a registered
    backbone and another codebase's weights (``model`` + ``weights`` + ``labels``).

    Args:
        checkpoint: a ``.pt`` file of ``softpool-train`` (``best.pt``/``last.pt``), or its run
            directory (then ``checkpoints/best.pt`` in it); loaded with ``weights_only=True``, so a
            file that smuggles code is refused (``CheckpointError``). The model, its class names
            and the test-time clip settings come from it.
        device: ``"auto"`` (the GPU when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        num_clips: clips per video along time; default: the checkpoint's test setting
            (``eval.test_num_clips``, else ``data.num_clips``).
        num_crops: crops per clip, 1 (centre) or 3 (left/centre/right); default as ``num_clips``.
        topk: how many (label, probability) pairs a result lists (at most the number of classes).
        batch_size: views per forward pass; default the checkpoint's ``data.batch_size``.
        num_workers: processes decoding videos in parallel for ``predict_many`` (0: in this process).
        decoder: ``pyav`` | ``decord`` | ``torchcodec``; default the checkpoint's ``data.decoder``.
        model, weights, labels: instead of ``checkpoint``: a registered model name, a local
            pytorchvideo / torchvision / PySlowFast / mmaction2 checkpoint and a label file (one
            class per line, or JSON); see :func:`softpool_video.models.load_foreign_model`.
        pooling, where, temperature: with foreign weights, swap the model's pools (``soft``,
            ``max``, ``avg``; ``original`` keeps them) after loading, no retraining.
        clip_settings: with foreign weights, overrides of the model's test recipe
            (``num_frames``, ``sampling_rate``, ``crop_size``, ``test_scale``, ``mean``, ``std``;
            defaults: :data:`softpool_video.models.INFERENCE_DEFAULTS`).

    Raises:
        CheckpointError: the checkpoint is missing, unreadable, or not one of ours.
        ValueError: an argument is out of range; the message names it.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        num_clips: int | None = None,
        num_crops: int | None = None,
        topk: int = 5,
        *,
        batch_size: int | None = None,
        num_workers: int = 0,
        decoder: str | None = None,
        model: str | None = None,
        weights: str | os.PathLike | None = None,
        labels: str | os.PathLike | list[str] | None = None,
        pooling: str = "original",
        where: str = "all",
        temperature: float = 1.0,
        **clip_settings: Any,
    ):
        from softpool_video.models.loading import load_foreign_model, load_model_from_checkpoint

        _check_int("num_clips", num_clips, 1, optional=True)
        if num_crops is not None and (not _is_int(num_crops) or num_crops not in (1, 3)):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops!r}")
        _check_int("topk", topk, 1)
        _check_int("batch_size", batch_size, 1, optional=True)
        _check_int("num_workers", num_workers, 0)
        if decoder is not None and decoder not in available_backends():
            raise ValueError(
                f"decoder must be one of the installed decoders {available_backends()}, got {decoder!r}"
            )
        foreign = model is not None or weights is not None or labels is not None
        if foreign and checkpoint is not None:
            raise ValueError("give either checkpoint (a softpool-train run) or model + weights + labels")
        if not foreign and (clip_settings or pooling != "original"):
            given = sorted(clip_settings) + (["pooling"] if pooling != "original" else [])
            raise ValueError(f"{', '.join(given)}: only for model + weights + labels (foreign weights)")
        self.device = resolve_device(device)
        if foreign:
            missing = [
                n for n, v in (("model", model), ("weights", weights), ("labels", labels)) if v is None
            ]
            if missing:
                raise ValueError(
                    f"foreign weights need model, weights and labels; missing: {', '.join(missing)}"
                )
            self.checkpoint = Path(weights)
            self.model, self.config, self.class_names = load_foreign_model(
                model,
                weights,
                labels,
                pooling=pooling,
                where=where,
                temperature=temperature,
                device=self.device,
                num_clips=num_clips,
                num_crops=num_crops,
                **clip_settings,
            )
        else:
            if checkpoint is None:
                raise ValueError("give checkpoint (a softpool-train run) or model + weights + labels")
            self.checkpoint = resolve_checkpoint(checkpoint)
            self.model, self.config, self.class_names = load_model_from_checkpoint(
                self.checkpoint, self.device
            )
        data = dict(self.config.get("data") or {})
        evaluation = dict(self.config.get("eval") or {})
        self._num_clips_given = num_clips is not None
        self.num_clips = int(num_clips or evaluation.get("test_num_clips") or data.get("num_clips") or 1)
        self.num_crops = int(num_crops or evaluation.get("test_num_crops") or data.get("num_crops") or 1)
        self.topk = int(topk)
        self.batch_size = int(batch_size or data.get("batch_size") or 8)
        self.num_workers = int(num_workers)
        if decoder is None:
            decoder = data.get("decoder") or "pyav"
            if decoder not in available_backends():  # trained where decord/torchcodec was installed
                decoder = "pyav"
        # The transform never packs SlowFast pathways: model_input() does it from the model itself,
        # so a checkpoint whose data.alpha was left null still gets the input its model takes.
        transform_cfg = {**data, "num_crops": self.num_crops, "alpha": None}
        self.view_maker = ViewMaker(
            clip_sampler=ClipSampler(
                int(data.get("num_frames", 8)), int(data.get("sampling_rate", 8)), data.get("target_fps")
            ),
            transform=build_transform(transform_cfg, "test"),
            num_crops=self.num_crops,
            decoder=decoder,
            decoder_threads=int(data.get("decoder_threads", 1)),
        )

    # ---- description ----------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def model_name(self) -> str:
        return str((self.config.get("model") or {}).get("name", type(self.model).__name__))

    @property
    def settings(self) -> dict[str, Any]:
        """The inference settings in effect (written into the JSON output)."""
        data = self.config.get("data") or {}
        sampler = self.view_maker.clip_sampler
        return {
            "checkpoint" if "weights" not in self.config else "weights": str(self.checkpoint),
            "model": self.model_name,
            "pooling": (self.config.get("pooling") or {}).get("pool"),
            "num_classes": self.num_classes,
            "num_frames": sampler.num_frames,
            "sampling_rate": sampler.sampling_rate,
            "target_fps": sampler.target_fps,
            "test_scale": data.get("test_scale"),
            "crop_size": data.get("test_crop_size"),
            "mean": data.get("mean"),
            "std": data.get("std"),
            "num_clips": self.num_clips,
            "num_crops": self.num_crops,
            "aggregation": "mean of the views' softmax probabilities",
            "device": str(self.device),
        }

    def __repr__(self) -> str:
        s = self.view_maker.clip_sampler
        return (
            f"Predictor({str(self.checkpoint)!r}, model={self.model_name}, classes={self.num_classes}, "
            f"clip={s.num_frames}x{s.sampling_rate}, views={self.num_clips}x{self.num_crops}, "
            f"device={self.device})"
        )

    # ---- whole videos ---------------------------------------------------------------------

    def predict(self, path: str | os.PathLike) -> Prediction:
        """Classify one video file. An unreadable file gives a result with ``error`` set."""
        (prediction,) = self.iter_predictions([Path(path)])
        return prediction

    def predict_many(self, paths: Iterable[str | os.PathLike], progress: bool = False) -> list[Prediction]:
        """Classify several videos; folders are replaced by the videos inside (see ``find_videos``).

        Returns one ``Prediction`` per video, in order; unreadable ones carry ``error``.
        """
        videos, _ = find_videos(paths)
        return list(self.iter_predictions(videos, progress=progress))

    def iter_predictions(
        self, videos: Sequence[str | os.PathLike], progress: bool = False
    ) -> Iterator[Prediction]:
        """Yield a ``Prediction`` per file of ``videos`` (no folder expansion), in order, as they finish."""
        from tqdm import tqdm

        videos = [Path(v) for v in videos]
        dataset = _ClipViews(videos, self.view_maker, self.num_clips)
        workers = min(self.num_workers, len(dataset)) if len(videos) > 1 else 0
        loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_keep)
        bar = tqdm(
            total=len(videos), desc="classifying", unit="video", disable=not progress, dynamic_ncols=True
        )
        try:
            video = _VideoScores()
            for item, probabilities in self._score_in_batches((item, item["views"]) for item in loader):
                video.add(item, probabilities)
                if item["clip_index"] == self.num_clips - 1:  # items arrive in order: the video is done
                    bar.update(1)
                    yield video.prediction(videos[item["video_index"]], self._topk)
                    video = _VideoScores()
        finally:
            bar.close()

    # ---- timeline -------------------------------------------------------------------------

    def timeline(
        self,
        path: str | os.PathLike,
        window: float = DEFAULT_TIMELINE_WINDOW,
        stride: float | None = None,
        num_clips: int | None = None,
        progress: bool = False,
    ) -> Timeline:
        """Classify consecutive segments of a (long) video.

        The video is cut into segments of ``stride`` seconds (default ``window``) that cover it
        from 0 to its end; each segment is labelled from a ``window``-second stretch of video
        centred on it (kept inside the video), so ``stride < window`` gives overlapping context
        and finer steps. Each window is seen as ``num_clips`` clips (default 1, or the
        ``num_clips`` this predictor was created with) x ``num_crops`` crops.

        ``progress`` shows a bar over the segments. Returns a ``Timeline``; an unreadable video
        gives one with ``error`` set and no segments.
        """
        from tqdm import tqdm

        window = _check_seconds("window", window)
        stride = window if stride is None else _check_seconds("stride", stride)
        _check_int("num_clips", num_clips, 1, optional=True)
        clips = int(num_clips or (self.num_clips if self._num_clips_given else 1))
        result = Timeline(str(path), window=window, stride=stride, class_names=list(self.class_names))
        try:
            with self.view_maker.open(path) as video:
                info = video.info
                result.duration = info.duration
                # a variable-frame-rate video is cut on its presentation timeline, not at index / fps
                times = list(video.frame_times) if info.variable_frame_rate else None
                spans = timeline_segments(
                    info.num_frames, info.fps, window, stride, frame_times=times, duration=info.duration
                )
                seconds = (
                    [t - times[0] for t in times] + [info.duration]
                    if times
                    else [k / info.fps for k in range(info.num_frames + 1)]
                )

                def views() -> Iterator[tuple[Any, torch.Tensor]]:
                    bar = tqdm(spans, desc=Path(path).name, unit="segment", leave=False, disable=not progress)
                    for span in bar:
                        yield span, self.view_maker.views(video, clips, (span.window_first, span.window_stop))

                for span, scores in self._score_in_batches(views()):
                    probabilities = _normalised(scores)
                    result.segments.append(
                        TimelineSegment(
                            start=span.start,
                            end=span.end,
                            window_start=seconds[span.window_first],
                            window_end=seconds[span.window_stop],
                            topk=self._topk(probabilities),
                            probabilities=probabilities.tolist(),
                        )
                    )
                result.num_views = clips * self.num_crops
                result.num_clips, result.num_crops = clips, self.num_crops
        except VideoDecodeError as error:
            result.segments = []
            result.error = error.reason
        return result

    # ---- scoring --------------------------------------------------------------------------

    def _topk(self, probabilities: torch.Tensor) -> list[tuple[str, float]]:
        values, indices = probabilities.topk(min(self.topk, probabilities.numel()))
        return [(self.class_names[int(i)], float(v)) for v, i in zip(values, indices)]

    def _score_in_batches(
        self, items: Iterable[tuple[Any, torch.Tensor | None]]
    ) -> Iterator[tuple[Any, torch.Tensor | None]]:
        """``(key, views (V, C, T, H, W) or None)`` -> ``(key, (K,) float64 mean softmax over the V
        views, or None)``, in order; consecutive items share forward passes of ``batch_size`` views."""
        pending: list[tuple[Any, torch.Tensor | None]] = []
        rows = 0
        for key, views in items:
            pending.append((key, views))
            rows += 0 if views is None else views.shape[0]
            if rows >= self.batch_size:
                yield from self._flush(pending)
                pending, rows = [], 0
        yield from self._flush(pending)

    def _flush(
        self, pending: list[tuple[Any, torch.Tensor | None]]
    ) -> Iterator[tuple[Any, torch.Tensor | None]]:
        stacks = [views for _, views in pending if views is not None]
        scores = iter(self._mean_probabilities(stacks) if stacks else [])
        for key, views in pending:
            yield key, (next(scores) if views is not None else None)

    @torch.inference_mode()
    def _mean_probabilities(self, stacks: list[torch.Tensor]) -> list[torch.Tensor]:
        from softpool_video.models.inputs import model_input

        views = torch.cat(stacks)
        outputs = []
        for chunk in views.split(self.batch_size):
            chunk = chunk.to(self.device, non_blocking=True)
            logits = self.model(model_input(self.model, chunk))
            outputs.append(logits.float().softmax(dim=1).cpu())
        probabilities = torch.cat(outputs).double()
        return [part.mean(dim=0) for part in probabilities.split([s.shape[0] for s in stacks])]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}{' or None' if optional else ''}, got {value!r}"
        )


def _check_seconds(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or value == float("inf")
    ):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
