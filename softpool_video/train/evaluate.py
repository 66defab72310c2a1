"""Multi-view evaluation: per-view inference, per-video aggregation, metrics and the report files.

In the ``val``/``test`` splits every dataset item is one *view* of a video (clip ``clip_index`` of
``num_clips`` along time, crop ``crop_index`` of ``num_crops`` across space). The model scores every
view; the softmax scores of a video's views are combined (``eval.aggregation``: mean, sum or max) into
one video score, and the video-level top-1/top-5 — the numbers papers report for "10 clips x 3 crops"
— are computed from those.

Unreadable videos are **excluded and listed**: a video any of whose views could not be decoded
is not scored at all (no partial score from the views that did decode) and is listed, with the
reason, in ``summary.json``'s ``unreadable_videos``. The same rule holds for validation during
training and for ``softpool-predict`` (whose result for such a video carries ``error`` and no
scores).

Unlabelled splits (label ``-1``, e.g. the Kinetics test CSV, which has no label column) give
predictions and no metrics; in a split where only some videos are labelled, the metrics count the
labelled ones and the predictions cover all.

``softpool-eval`` (see :func:`evaluate_checkpoint`) writes to its output directory:

- ``summary.json``: all metrics (``null`` without labels), the settings, per-class accuracy and
  the unreadable videos;
- ``predictions.csv``: one row per scored video: video, label (empty if unknown), top-5
  predictions with their scores;
- ``per_class_accuracy.csv``, ``confusion_matrix.csv`` and ``confusion_matrix.png`` (rows = true
  class, columns = predicted), when the split has labels.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from softpool_video.train import distributed as dist_utils
from softpool_video.train.metrics import (
    aggregate_video_scores,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    topk_accuracy,
)

__all__ = [
    "EvalResult",
    "ViewPredictions",
    "evaluate_checkpoint",
    "predict_views",
    "summarize",
    "write_report",
]

log = logging.getLogger("softpool_video")

UNREADABLE_POLICY = (
    "excluded: a video with any unreadable view is not scored and not counted in the metrics; "
    "it is listed in unreadable_videos"
)


@dataclass
class ViewPredictions:
    """Logits of every view, one row each, sorted by (video, clip, crop) and free of duplicates."""

    video_index: torch.Tensor  # (N,) int64
    clip_index: torch.Tensor  # (N,) int64
    crop_index: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) int64
    logits: torch.Tensor  # (N, K) float32
    complete: bool = True  # False when stopped early (signal, batch limit)
    # videos left out because some of their views were unreadable (sorted video indices)
    excluded_videos: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))


@dataclass
class EvalResult:
    """View- and video-level metrics (percentages) and the per-video scores behind them.

    Metrics cover the labelled videos; without any (an unlabelled split) they are ``None`` and
    ``per_class_accuracy``/``confusion`` too, while the scores of every video are kept.
    """

    num_views: int
    num_videos: int
    loss: float | None
    view_top1: float | None
    view_top5: float | None
    video_top1: float | None
    video_top5: float | None
    mean_class_accuracy: float | None
    per_class_accuracy: torch.Tensor | None  # (K,) NaN for classes without test videos
    confusion: torch.Tensor | None  # (K, K)
    videos: torch.Tensor  # (V,) video indices
    video_labels: torch.Tensor  # (V,) -1 = unknown
    video_scores: torch.Tensor  # (V, K) aggregated softmax scores
    views_per_video: torch.Tensor  # (V,)
    aggregation: str = "mean"
    num_labelled_videos: int | None = None  # default: all of them
    excluded_videos: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))

    def __post_init__(self):
        if self.num_labelled_videos is None:
            self.num_labelled_videos = self.num_videos

    @property
    def labelled(self) -> bool:
        """Whether any scored video has a label (otherwise there are no metrics)."""
        return self.num_labelled_videos > 0

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat scalar metrics, e.g. ``{"val_video_top1": ...}`` for ``prefix="val_"`` (empty for an
        unlabelled split)."""
        if not self.labelled:
            return {}
        return {
            f"{prefix}loss": self.loss,
            f"{prefix}top1": self.view_top1,
            f"{prefix}top5": self.view_top5,
            f"{prefix}video_top1": self.video_top1,
            f"{prefix}video_top5": self.video_top5,
            f"{prefix}mean_class_acc": self.mean_class_accuracy,
        }


def _move(video: Any, device: torch.device) -> Any:
    if isinstance(video, (list, tuple)):
        return [v.to(device, non_blocking=True) for v in video]
    return video.to(device, non_blocking=True)


@torch.no_grad()
def predict_views(
    model: torch.nn.Module,
    loader: Any,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    limit_batches: int | None = None,
    progress: bool = False,
    description: str = "eval",
    should_stop: Callable[[], bool] | None = None,
) -> ViewPredictions:
    """Run ``model`` over every view in ``loader`` (all ranks); every rank gets all views back.

    Under DDP each rank scores its shard (shards may differ by a batch, so nothing inside the loop
    talks to the other ranks); the shards are gathered, sorted by (video, clip, crop) and views seen
    twice are dropped (a sampler that pads shards by repeating views, or the data package standing in
    another video's view for an unreadable one), so the result does not depend on the number of
    processes. ``should_stop`` is checked after every batch (this rank's SIGTERM/SIGINT flag).
    """
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("video_index", "clip_index", "crop_index", "labels", "logits")
    }
    total = len(loader) if limit_batches is None else min(len(loader), limit_batches)
    complete = total == len(loader)
    bar = tqdm(total=total, desc=description, disable=not progress, dynamic_ncols=True, leave=False)
    try:
        for batch_index, batch in enumerate(loader):
            if batch_index >= total:
                break
            with torch.autocast(
                device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
            ):
                logits = model(_move(batch["video"], device))
            parts["logits"].append(logits.float().cpu())
            parts["labels"].append(torch.as_tensor(batch["label"]).long().cpu())
            for key in ("video_index", "clip_index", "crop_index"):
                parts[key].append(torch.as_tensor(batch[key]).long().cpu())
            bar.update(1)
            if should_stop is not None and should_stop():
                complete = False
                break
    finally:
        bar.close()
        model.train(was_training)

    local: dict[str, torch.Tensor | None] = {
        k: torch.cat(v) if v else torch.empty(0, dtype=torch.int64) for k, v in parts.items() if k != "logits"
    }
    local["logits"] = torch.cat(parts["logits"]) if parts["logits"] else None
    gathered = dist_utils.all_gather_objects(local)
    merged = {k: torch.cat([g[k] for g in gathered]) for k in local if k != "logits"}
    logits = [g["logits"] for g in gathered if g["logits"] is not None]
    merged["logits"] = torch.cat(logits) if logits else torch.empty(0, 0)
    # Sort by (video, clip, crop) and keep the first of each key: deterministic whatever the rank order.
    n = merged["labels"].numel()
    if n:
        key = torch.stack([merged["video_index"], merged["clip_index"], merged["crop_index"]], dim=1)
        unique, inverse = torch.unique(key, dim=0, return_inverse=True)
        first = torch.full((unique.shape[0],), n, dtype=torch.int64).scatter_reduce(
            0, inverse, torch.arange(n), reduce="amin"
        )
        merged = {k: v[first] for k, v in merged.items()}
    # excluded and listed: no partial score for a video some of whose views could not be decoded
    excluded = unreadable_video_indices(getattr(loader, "dataset", None))
    if excluded.numel() and merged["video_index"].numel():
        keep = ~torch.isin(merged["video_index"], excluded)
        merged = {k: v[keep] for k, v in merged.items()}
    complete = bool(dist_utils.all_reduce_max(0.0 if complete else 1.0) == 0.0)
    return ViewPredictions(**merged, complete=complete, excluded_videos=excluded)


def unreadable_video_indices(dataset: Any) -> torch.Tensor:
    """Sorted int64 indices into ``dataset.videos`` of the videos any rank found unreadable."""
    failed = {path for path, _ in _collect_failures(dataset)} if dataset is not None else set()
    videos = getattr(dataset, "videos", None) or []
    return torch.tensor([k for k, path in enumerate(videos) if str(path) in failed], dtype=torch.int64)


def summarize(
    predictions: ViewPredictions, num_classes: int, aggregation: str = "mean", require_labels: bool = True
) -> EvalResult:
    """View- and video-level metrics from the views' logits.

    Views labelled ``-1`` (unknown) are scored but left out of the metrics. Without any label,
    ``require_labels=True`` raises ``ValueError``; ``False`` returns the scores without metrics.
    """
    logits, labels = predictions.logits, predictions.labels
    if labels.numel() == 0:
        raise ValueError("evaluation saw no views: the split is empty (or limit_val_batches=0)")
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"the model gives {logits.shape[1]} class scores but the data has {num_classes} classes"
        )
    videos, video_scores, counts = aggregate_video_scores(
        logits.softmax(dim=1), predictions.video_index, aggregation
    )
    # All views of a video carry its label; take the first view's.
    _, inverse = torch.unique(predictions.video_index, sorted=True, return_inverse=True)
    first = torch.full((videos.numel(),), labels.numel(), dtype=torch.int64).scatter_reduce(
        0, inverse, torch.arange(labels.numel()), reduce="amin"
    )
    video_labels = labels[first]
    known_views, known_videos = labels >= 0, video_labels >= 0
    metrics: dict[str, Any] = dict.fromkeys(
        (
            "loss",
            "view_top1",
            "view_top5",
            "video_top1",
            "video_top5",
            "mean_class_accuracy",
            "per_class_accuracy",
            "confusion",
        )
    )
    if not known_videos.any():
        if require_labels:
            raise ValueError("the split has no labels (label -1 everywhere): there is nothing to measure")
    else:
        view_logits, view_labels = logits[known_views], labels[known_views]
        view_acc = topk_accuracy(view_logits, view_labels, (1, 5))
        video_acc = topk_accuracy(video_scores[known_videos], video_labels[known_videos], (1, 5))
        matrix = confusion_matrix(
            video_scores[known_videos].argmax(dim=1), video_labels[known_videos], num_classes
        )
        metrics.update(
            loss=float(F.cross_entropy(view_logits, view_labels)),
            view_top1=view_acc[1],
            view_top5=view_acc[5],
            video_top1=video_acc[1],
            video_top5=video_acc[5],
            mean_class_accuracy=mean_class_accuracy(matrix),
            per_class_accuracy=per_class_accuracy(matrix),
            confusion=matrix,
        )
    return EvalResult(
        num_views=labels.numel(),
        num_videos=videos.numel(),
        videos=videos,
        video_labels=video_labels,
        video_scores=video_scores,
        views_per_video=counts,
        aggregation=aggregation,
        num_labelled_videos=int(known_videos.sum()),
        excluded_videos=predictions.excluded_videos,
        **metrics,
    )


def video_names(dataset: Any, count: int) -> list[str]:
    """A printable name per video index: the file path when the dataset exposes ``videos``."""
    videos = getattr(dataset, "videos", None)
    if videos is None:
        return [f"video_{i}" for i in range(count)]
    names = []
    for entry in videos:
        if isinstance(entry, (str, Path)):
            names.append(str(entry))
        elif isinstance(entry, (tuple, list)) and entry:
            names.append(str(entry[0]))
        else:
            path = getattr(entry, "path", None)
            names.append(str(path) if path is not None else str(entry))
    return names


def _nan_to_none(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def write_report(
    result: EvalResult,
    out_dir: Path,
    class_names: Sequence[str],
    names: Sequence[str],
    failures: Sequence[tuple[str, str]] = (),
    settings: Mapping[str, Any] | None = None,
    plot: bool = True,
) -> dict[str, Path]:
    """Write summary.json and predictions.csv, and with labels per_class_accuracy.csv and
    confusion_matrix.{csv,png}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out_dir / "summary.json", "predictions": out_dir / "predictions.csv"}
    top = result.video_scores.topk(min(5, result.video_scores.shape[1]), dim=1)
    with paths["predictions"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["video", "label", "num_views", "correct"]
        for rank in range(1, 6):
            header += [f"top{rank}", f"top{rank}_score"]
        writer.writerow(header)
        for row in range(result.num_videos):
            video = int(result.videos[row])
            label = int(result.video_labels[row])
            known = label >= 0
            cells = [
                names[video] if video < len(names) else f"video_{video}",
                class_names[label] if known else "",
            ]
            cells += [int(result.views_per_video[row]), int(top.indices[row, 0] == label) if known else ""]
            for rank in range(5):
                if rank < top.indices.shape[1]:
                    cells += [class_names[int(top.indices[row, rank])], f"{float(top.values[row, rank]):.6f}"]
                else:
                    cells += ["", ""]
            writer.writerow(cells)
    if result.labelled:
        paths["per_class_accuracy"] = out_dir / "per_class_accuracy.csv"
        paths["confusion_csv"] = out_dir / "confusion_matrix.csv"
        support = result.confusion.sum(dim=1)
        with paths["per_class_accuracy"].open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", "videos", "accuracy"])
            for k, name in enumerate(class_names):
                value = float(result.per_class_accuracy[k])
                writer.writerow([name, int(support[k]), "" if math.isnan(value) else f"{value:.4f}"])
        with paths["confusion_csv"].open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["true \\ predicted", *class_names])
            for k, name in enumerate(class_names):
                writer.writerow([name, *(int(v) for v in result.confusion[k])])
        if plot:
            from softpool_video.train.plots import plot_confusion_matrix

            paths["confusion_png"] = plot_confusion_matrix(
                result.confusion,
                class_names,
                out_dir / "confusion_matrix.png",
                f"video top-1 {result.video_top1:.1f}% ({result.num_labelled_videos} videos)",
            )
    summary = {
        "num_videos": result.num_videos,
        "num_labelled_videos": result.num_labelled_videos,
        "num_views": result.num_views,
        "aggregation": result.aggregation,
        "video_top1": result.video_top1,
        "video_top5": result.video_top5,
        "view_top1": result.view_top1,
        "view_top5": result.view_top5,
        "mean_class_accuracy": _nan_to_none(result.mean_class_accuracy),
        "loss": result.loss,
        "per_class_accuracy": (
            {name: _nan_to_none(float(result.per_class_accuracy[k])) for k, name in enumerate(class_names)}
            if result.labelled
            else None
        ),
        "unreadable_videos": [{"path": str(path), "error": str(error)} for path, error in failures],
        "unreadable_policy": UNREADABLE_POLICY,
        "settings": dict(settings or {}),
        "files": {key: str(path) for key, path in paths.items() if key != "summary"},
    }
    if not result.labelled:
        summary["metrics_note"] = "the split has no labels: predictions only"
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    return paths


@dataclass
class EvalSummary:
    """What ``softpool-eval`` produced: the metrics and where the report files are."""

    result: EvalResult
    out_dir: Path
    files: dict[str, Path]
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)


def _eval_output_dir(cfg: Mapping[str, Any], checkpoint: Path, split: str) -> Path:
    if cfg.get("output_dir"):
        return Path(str(cfg["output_dir"]))
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run_dir / f"eval_{split}_{checkpoint.stem}"


def resolve_eval_data_config(cfg: DictConfig, checkpoint_config: Mapping[str, Any]) -> DictConfig:
    """The data section to evaluate on: the checkpoint's own, unless ``data=NAME`` selected a data
    config (whose "the model's" clip values then come from the checkpoint's model); then the keys of
    ``data_overrides`` (``+data_overrides.root=/elsewhere``) on top. Frames, crop size and alpha are
    reconciled with the checkpoint's model (:func:`reconcile_clip_shape`); the generation switches
    are dropped: evaluation never generates data."""
    from softpool_video.train.config import CLIP_SHAPE_KEYS, ConfigError, reconcile_clip_shape

    chosen = cfg.get("data")
    if chosen is not None:
        # a data config gives the layout, annotations and views; its "the model's" clip values
        # (${oc.select:model...}) are the checkpoint model's; values it sets must agree with them
        chosen = OmegaConf.create(OmegaConf.to_container(chosen, resolve=False))
        for key in CLIP_SHAPE_KEYS:
            if key in chosen and OmegaConf.is_interpolation(chosen, key):
                chosen[key] = None
    data = OmegaConf.create(to_container(chosen) if chosen is not None else checkpoint_config.get("data", {}))
    overrides = cfg.get("data_overrides")
    if overrides:
        if not isinstance(overrides, DictConfig):
            raise ConfigError(f"data_overrides={overrides!r} must be a mapping: +data_overrides.KEY=VALUE")
        import dataclasses

        from softpool_video.cli import did_you_mean
        from softpool_video.data.config import DataConfig

        # a mistyped key would otherwise be dropped with a warning and the evaluation run without it
        known = sorted(set(data) | {f.name for f in dataclasses.fields(DataConfig)})
        for key in overrides:
            if str(key) not in known:
                raise ConfigError(
                    f"data_overrides.{key}: not a data setting{did_you_mean(str(key), known)}; "
                    f"known: {', '.join(known)}"
                )
        data = OmegaConf.merge(data, overrides)
    for key in ("generate", "generate_if_missing"):
        if key in data:
            del data[key]
    holder = OmegaConf.create({"data": data})
    for note in reconcile_clip_shape(holder, checkpoint_config.get("model") or {}):
        log.info("derived %s", note)
    return holder.data


def to_container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def test_config_after_training(train_cfg: DictConfig, checkpoint: Path, output_dir: Path) -> DictConfig:
    """The ``softpool-eval`` config that tests ``checkpoint`` after a training run with ``train_cfg``:
    split=test, the run's trainer (device, precision: ``auto`` is fp32 on a CPU), aggregation and
    test views (``eval.*``)."""
    from softpool_video.train.config import compose_config

    evaluation = train_cfg.get("eval") or {}
    overrides = [
        f"checkpoint={checkpoint}",
        "split=test",
        f"output_dir={output_dir}",
        f"aggregation={evaluation.get('aggregation', 'mean')}",
    ]
    for key in ("num_clips", "num_crops"):
        if evaluation.get(f"test_{key}") is not None:
            overrides.append(f"+data_overrides.{key}={int(evaluation[f'test_{key}'])}")
    cfg = compose_config("eval", overrides)
    cfg.trainer = train_cfg.trainer
    return cfg


def describe_checkpoint(path: Path, state: Mapping[str, Any]) -> str:
    """``"best.pt of <run> (epoch 3, step 36, val_video_top1 62.5)"``: which weights are evaluated."""
    monitor = str(((state.get("config") or {}).get("trainer") or {}).get("monitor", "val_video_top1"))
    metrics = state.get("metrics") or {}
    parts = [f"epoch {state.get('epoch')}", f"step {state.get('step')}"]
    if state.get("batches_in_epoch"):
        parts.append(f"stopped after batch {state['batches_in_epoch']} of the next epoch")
    if monitor in metrics:
        parts.append(f"{monitor} {metrics[monitor]:.2f}")
    return f"{path} ({', '.join(parts)})"


def evaluate_checkpoint(cfg: DictConfig) -> EvalSummary:
    """``softpool-eval``: load ``cfg.checkpoint``, evaluate on ``cfg.split`` with multi-view testing,
    write the report. See ``conf/eval.yaml`` for the keys.

    Everything is checked (arguments, device, checkpoint, data) before the output directory is created.

    Raises:
        ConfigError: an argument or the data is wrong (missing file, missing ``data.root``, ...).
        CheckpointError: the checkpoint is not a readable softpool-train checkpoint.
    """
    import os

    from softpool_video.constants import AGGREGATIONS, SPLITS
    from softpool_video.data import build_dataloader
    from softpool_video.train.checkpoint import load_checkpoint, load_model_from_checkpoint
    from softpool_video.train.config import (
        ConfigError,
        build_split,
        check_loader_settings,
        check_output_folder,
        precision_name,
        resolve_accelerator,
        resolve_precision,
        synthetic_generation,
    )
    from softpool_video.train.loggers import RunLog

    run_log = RunLog(is_main=int(os.environ.get("RANK", "0")) == 0, hold=True)
    if not cfg.get("checkpoint") or str(cfg.get("checkpoint")) == "???":
        raise ConfigError("checkpoint=PATH is required (a last.pt/best.pt written by softpool-train)")
    checkpoint = Path(str(cfg.checkpoint))
    if checkpoint.is_dir():  # a run folder: its best.pt, else its last.pt
        found = [
            checkpoint / "checkpoints" / n
            for n in ("best.pt", "last.pt")
            if (checkpoint / "checkpoints" / n).is_file()
        ]
        if not found:
            raise ConfigError(f"checkpoint={cfg.checkpoint}: a folder without checkpoints/best.pt or last.pt")
        checkpoint = found[0]
    if not checkpoint.is_file():
        raise ConfigError(f"checkpoint={checkpoint}: no such file")
    split = str(cfg.get("split", "test"))
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} must be one of {', '.join(SPLITS)}")
    aggregation = str(cfg.get("aggregation", "mean"))
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"aggregation={aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
    for key in ("batch_size", "limit_batches"):
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key}={value!r} must be an integer >= 1 (or null)")
    trainer_cfg = cfg.get("trainer") or {}
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    resolve_accelerator(accelerator)
    with dist_utils.distributed_session(accelerator, float(trainer_cfg.get("timeout_minutes", 30))) as ctx:
        run_log.is_main = ctx.is_main
        precision = str(trainer_cfg.get("precision", "fp32"))
        autocast_dtype, _ = resolve_precision(precision, ctx.device, training=False)
        state = load_checkpoint(checkpoint, map_location="cpu")
        model, ckpt_config, class_names = load_model_from_checkpoint(checkpoint, ctx.device, state=state)
        data_cfg = resolve_eval_data_config(cfg, ckpt_config)
        check_loader_settings(data_cfg)
        synthetic_generation(data_cfg, "eval")  # a missing data.root is an error, never generated
        dataset = build_split(data_cfg, split)
        if len(dataset) == 0:
            raise ConfigError(
                f"data split={split} is empty after filtering (data.root={data_cfg.get('root')}); "
                "check data.root and the split files"
            )
        if dataset.num_classes != len(class_names):
            raise ConfigError(
                f"num_classes mismatch: checkpoint {checkpoint} was trained on {len(class_names)} classes, "
                f"data split={split} (data.root={data_cfg.get('root')}) has {dataset.num_classes}"
            )
        out_dir = _eval_output_dir(cfg, checkpoint, split)
        check_output_folder("output_dir", out_dir)  # the default is next to the checkpoint
        if ctx.is_main:
            run_log.open_file(out_dir / "eval.log")
        run_log.release_console()
        which = describe_checkpoint(checkpoint, state)
        del state
        log.info("evaluating %s", which)
        log.info(
            "split=%s of %s (%d views), %s aggregation, device %s, precision %s",
            split,
            data_cfg.get("root"),
            len(dataset),
            aggregation,
            ctx.device,
            precision_name(autocast_dtype),
        )
        if list(dataset.class_names) != list(class_names):
            log.warning(
                "class names of the data differ from the checkpoint's; labels follow the data's order"
            )
        batch_size = int(cfg.get("batch_size") or data_cfg.get("batch_size", 8))
        loader = build_dataloader(
            dataset,
            batch_size=batch_size,
            num_workers=int(data_cfg.get("num_workers", 0)),
            shuffle=False,
            distributed=ctx.distributed,
            seed=int(cfg.get("seed", 0)),
            drop_last=False,
            pin_memory=ctx.device.type == "cuda",
            persistent_workers=False,
        )
        start = time.perf_counter()
        progress = ctx.is_main and bool(trainer_cfg.get("progress_bar", True))
        try:
            predictions = predict_views(
                model, loader, ctx.device, autocast_dtype, cfg.get("limit_batches"), progress, f"eval {split}"
            )
        except BaseException as error:
            if not isinstance(error, KeyboardInterrupt):
                run_log.write_traceback(error)
            raise
        result = summarize(predictions, len(class_names), aggregation, require_labels=False)
        failures = _collect_failures(dataset)
        seconds = time.perf_counter() - start
        settings = {
            "checkpoint": str(checkpoint),
            "checkpoint_described": which,
            "split": split,
            "num_clips": data_cfg.get("num_clips"),
            "num_crops": data_cfg.get("num_crops"),
            "data_root": data_cfg.get("root"),
            "precision": precision_name(autocast_dtype),
            "device": str(ctx.device),
            "world_size": ctx.world_size,
            "seconds": round(seconds, 2),
        }
        files: dict[str, Path] = {}
        if ctx.is_main:
            files = write_report(
                result, out_dir, class_names, video_names(dataset, result.num_videos), failures, settings
            )
            if result.labelled:
                log.info(
                    "video top-1 %.2f%%  top-5 %.2f%%  mean class acc %.2f%%  (%d videos, %d views, %.0f s)",
                    result.video_top1,
                    result.video_top5,
                    result.mean_class_accuracy,
                    result.num_labelled_videos,
                    result.num_views,
                    seconds,
                )
                if result.num_labelled_videos < result.num_videos:
                    log.info(
                        "%d videos have no label: predicted, not measured",
                        result.num_videos - result.num_labelled_videos,
                    )
            else:
                log.info(
                    "split=%s has no labels: predictions for %d videos in %s, no metrics (%.0f s)",
                    split,
                    result.num_videos,
                    files["predictions"],
                    seconds,
                )
            if failures:
                log.warning(
                    "%d unreadable video(s) excluded from the results, listed in %s",
                    len(failures),
                    files["summary"],
                )
            log.info("report: %s", out_dir)
        dist_utils.barrier()
        return EvalSummary(result, out_dir, files, failures, seconds, settings)


def _collect_failures(dataset: Any) -> list[tuple[str, str]]:
    """Unreadable videos reported by the dataset (all ranks' lists, deduplicated)."""
    local = [(str(path), str(error)) for path, error in getattr(dataset, "failures", [])]
    merged: dict[str, str] = {}
    for part in dist_utils.all_gather_objects(local):
        for path, error in part:
            merged.setdefault(path, error)
    return sorted(merged.items())
