"""The training loop behind ``softpool-train``: one :class:`Trainer` per run.

What a run does, in order (each step is one method below). Steps 1-4 check everything and hold the
console log back, so a configuration mistake raises :class:`ConfigError` with nothing written:

1. ``_check_config``: every key's type and range, the device, the files named
   (``validate_train_config``); model and data agree on the clip shape (``reconcile_clip_shape``).
2. ``_setup_run``: distributed context (torchrun env), precision vs device, seeding, which run
   directory and which checkpoint to resume (``train/resume.py``), read and checked.
3. ``_setup_data``: the synthetic dataset generated where that was asked for, train/val datasets and
   loaders (``data/``) whose iterators leave the global generator alone.
4. ``_setup_model``: model (``model/`` + ``pooling/``), optional SyncBatchNorm, optimizer (``optim/``),
   per-step LR schedule (``schedule/``), GradScaler; the resume state (weights, position, generators,
   known-bad videos); DDP.
5. ``_open_run_dir``: the run directory, ``config.yaml``, ``train.log`` (with what was logged so far).
6. ``fit``: epochs of ``_train_epoch`` (AMP, gradient accumulation, clipping, label smoothing,
   mixup/cutmix), validation every ``trainer.eval_every_n_epochs`` with multi-view video-level
   metrics, ``best.pt`` on improvement of ``trainer.monitor`` and then ``last.pt`` every epoch.

SIGTERM/SIGINT finish the current optimizer step, write ``last.pt`` (recording the position inside the
epoch) and stop; ``resume=auto`` then continues where it stopped; after a ``kill -9`` it continues from
the last epoch's ``last.pt``. Either way the resumed run ends with the weights and metrics of an
uninterrupted one (CPU, same seed): see ``train/resume.py`` for what that takes.

Run directory (``run_dir``)::

    config.yaml          the resolved configuration
    train.log            the console log (and the traceback of a failure)
    metrics.csv          one row per epoch (see EPOCH_COLUMNS); metrics.jsonl the same as JSON lines
    tensorboard/         event files (step loss/lr, epoch metrics)
    checkpoints/last.pt  every epoch (and on SIGTERM/SIGINT); checkpoints/best.pt best by trainer.monitor
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from softpool_video.models.swap import temperature_metrics
from softpool_video.train import distributed as dist_utils
from softpool_video.train.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    remove_temporary_files,
    save_checkpoint,
)
from softpool_video.train.config import (
    ConfigError,
    build_model_from_config,
    build_split,
    check_output_folder,
    generate_synthetic,
    precision_name,
    reconcile_clip_shape,
    resolve_precision,
    synthetic_generation,
    to_plain_dict,
    validate_train_config,
)
from softpool_video.train.evaluate import predict_views, summarize
from softpool_video.train.loggers import RunLog, build_metric_loggers
from softpool_video.train.metrics import topk_correct
from softpool_video.train.mixup import MixVideo
from softpool_video.train.optim import build_optimizer, build_scheduler
from softpool_video.train.resume import (
    PROGRESS_KEYS,
    ResumePoint,
    find_resume_checkpoint,
    isolate_loader_rng,
    loader_skipping,
)

__all__ = ["EPOCH_COLUMNS", "TrainResult", "Trainer", "TrainingError", "seed_everything", "train"]

log = logging.getLogger("softpool_video")

#: Columns of metrics.csv. Timing columns (clips_per_s, data_time, epoch_time) vary between runs;
#: everything else is reproducible.
EPOCH_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_top1",
    "train_top5",
    "clips_per_s",
    "data_time",
    "epoch_time",
    "val_loss",
    "val_top1",
    "val_top5",
    "val_video_top1",
    "val_video_top5",
    "val_mean_class_acc",
)
TIMING_COLUMNS = ("clips_per_s", "data_time", "epoch_time")


class TrainingError(RuntimeError):
    """Training cannot go on (out of memory, non-finite loss, bad checkpoint); the message says why."""


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_metric: float | None
    epochs_completed: int
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)  # epoch rows of this process's run
    stopped_by: str | None = None  # "SIGTERM"/"SIGINT" when a signal ended the run early
    seconds: float = 0.0

    @property
    def last_metrics(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def checkpoint(self, which: str) -> Path:
        """``"last"`` or ``"best"``; never one for the other.

        Raises:
            TrainingError: the checkpoint asked for was not written (no validation improved
                ``trainer.monitor``, or a kill lost it); the message says so and how to test last.pt.
        """
        if which not in ("last", "best"):
            raise ConfigError(f"eval.test_checkpoint={which!r} must be last or best")
        path = self.best_checkpoint if which == "best" else self.last_checkpoint
        if path is None or not path.is_file():
            hint = "; test last.pt with eval.test_checkpoint=last" if which == "best" else ""
            raise TrainingError(
                f"eval.test_checkpoint={which}: {self.run_dir / 'checkpoints' / (which + '.pt')} "
                "was not written"
                f"{' (no validation improved the monitored metric)' if which == 'best' else ''}{hint}"
            )
        return path


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "DefaultCPUAllocator: can't allocate memory" in text
    )


def _compute_threads(setting: Any, num_workers: int) -> int | None:
    """``trainer.num_threads``: null = torch's default, N = N, ``auto`` = this process's share of the
    CPU cores minus its data workers (decoding and compute then do not fight over cores)."""
    if setting is None:
        return None
    if setting == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, cores // processes - num_workers)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(f"trainer.num_threads={setting!r} must be null, auto or an integer >= 1")
    return setting


def _fast_dev_run_batches(value: Any) -> int:
    """``trainer.fast_dev_run``: false/0 = off, true = 1 batch, N = N batches."""
    if isinstance(value, bool):
        return int(value)
    if value is None:
        return 0
    if not isinstance(value, int) or value < 0:
        raise ConfigError(f"trainer.fast_dev_run={value!r} must be true, false or a number of batches >= 0")
    return value


class _StopRequest:
    """SIGTERM/SIGINT -> a flag the loop checks after each optimizer step; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now, without a checkpoint
        self.signal_name = name
        log.warning("%s received: finishing the current step, then writing a checkpoint", name)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


def _move(video: Any, device: torch.device) -> Any:
    if isinstance(video, (list, tuple)):
        return [v.to(device, non_blocking=True) for v in video]
    return video.to(device, non_blocking=True)


def _batch_size_of(video: Any) -> int:
    return int(video[0].shape[0] if isinstance(video, (list, tuple)) else video.shape[0])


class Trainer:
    """One training run; see the module docstring. ``Trainer(cfg).fit()`` or :func:`train`.

    Construction checks everything that can be checked (configuration, device, files, data, model,
    the checkpoint to resume) before the run directory is created: a mistake raises
    :class:`ConfigError` and leaves nothing behind.
    """

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.stop = _StopRequest()
        self.run_log = RunLog(is_main=int(os.environ.get("RANK", "0")) == 0, hold=True)
        self._owns_process_group = False
        try:
            self._check_config()
            self._setup_run()
            self._setup_data()
            self._setup_model()
            self._open_run_dir()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _check_config(self) -> None:
        """Every key's type and range, the device, the files named; model and data made to agree."""
        validate_train_config(self.cfg)
        self.notes = reconcile_clip_shape(self.cfg)
        self.resolved = to_plain_dict(self.cfg)  # an interpolation that does not resolve fails here

    def _setup_run(self) -> None:
        cfg = self.cfg
        trainer_cfg = cfg.trainer
        import torch.distributed as dist

        self._owns_process_group = not (dist.is_available() and dist.is_initialized())
        self.ctx = dist_utils.init_distributed(
            str(trainer_cfg.get("accelerator", "auto")), float(trainer_cfg.get("timeout_minutes", 30))
        )
        self.run_log.is_main = self.ctx.is_main
        self.autocast_dtype, use_scaler = resolve_precision(
            str(trainer_cfg.get("precision", "fp32")), self.ctx.device
        )
        self.use_scaler = use_scaler
        self.fast_dev_run = _fast_dev_run_batches(trainer_cfg.get("fast_dev_run", False))
        self.epochs = 1 if self.fast_dev_run else int(trainer_cfg.epochs)
        self.accumulate = int(trainer_cfg.get("accumulate_grad_batches", 1))
        self.limit_train = self.fast_dev_run or trainer_cfg.get("limit_train_batches")
        self.limit_val = self.fast_dev_run or trainer_cfg.get("limit_val_batches")
        threads = _compute_threads(trainer_cfg.get("num_threads"), int(cfg.data.get("num_workers", 0)))
        if threads:
            torch.set_num_threads(threads)
        if trainer_cfg.get("deterministic", False):
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = bool(trainer_cfg.get("cudnn_benchmark", True))
        seed_everything(int(cfg.seed))

        # Rank 0 decides the run directory and the checkpoint to resume (timestamps and file
        # listings could differ between processes), then tells everyone.
        decision: Any = None
        if self.ctx.is_main:
            try:
                decision = find_resume_checkpoint(
                    Path(str(cfg.run_dir)),
                    cfg.get("resume"),
                    Path(str(cfg.get("output_root", Path(str(cfg.run_dir)).parent.parent))),
                    str(cfg.name),
                )
                check_output_folder("run_dir", decision[0])
            except ConfigError as error:
                decision = error  # every rank raises it, rather than waiting for rank 0 forever
        decision = dist_utils.broadcast_object(decision)
        if isinstance(decision, ConfigError):
            raise decision
        self.run_dir, self.resume_path, note = decision
        if note:
            log.info(note)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.writes = self.ctx.is_main  # only rank 0 writes files
        self.resolved["run_dir"] = str(self.run_dir)
        self.resume_state: dict[str, Any] | None = None
        if self.resume_path is not None:
            self.resume_state = load_checkpoint(self.resume_path, map_location="cpu")
            previous = (self.resume_state["config"].get("model") or {}).get("name")
            if previous != self.cfg.model.name:
                raise ConfigError(
                    f"resume: checkpoint {self.resume_path} holds model {previous!r}, "
                    f"the config asks for {self.cfg.model.name!r}"
                )

    def _setup_data(self) -> None:
        from softpool_video.data import build_dataloader

        cfg, data_cfg = self.cfg, self.cfg.data
        self._prepare_data_root()
        self.train_set = build_split(data_cfg, "train")
        self.val_set = build_split(data_cfg, "val")
        for split, dataset in (("train", self.train_set), ("val", self.val_set)):
            if len(dataset) == 0:
                raise ConfigError(
                    f"data split={split} is empty after filtering (data.root={data_cfg.get('root')}); check "
                    "data.root, the split/annotation files and the class filter"
                )
        self.class_names = list(self.train_set.class_names)
        self.num_classes = int(self.train_set.num_classes)
        if int(self.val_set.num_classes) != self.num_classes:
            raise ConfigError(
                f"data: the train split has {self.num_classes} classes but the val split has "
                f"{self.val_set.num_classes}; both must use the same class list"
            )
        self.batch_size = int(data_cfg.batch_size)
        num_workers = int(data_cfg.get("num_workers", 0))
        pin = self.ctx.device.type == "cuda" and bool(data_cfg.get("pin_memory", True))
        persistent = num_workers > 0 and bool(data_cfg.get("persistent_workers", True))
        self.train_loader = build_dataloader(
            self.train_set,
            batch_size=self.batch_size,
            num_workers=num_workers,
            shuffle=True,
            distributed=self.ctx.distributed,
            seed=int(cfg.seed),
            drop_last=True,
            pin_memory=pin,
            persistent_workers=persistent,
        )
        self.val_loader = build_dataloader(
            self.val_set,
            batch_size=int(data_cfg.get("val_batch_size") or self.batch_size),
            num_workers=num_workers,
            shuffle=False,
            distributed=self.ctx.distributed,
            seed=int(cfg.seed),
            drop_last=False,
            pin_memory=pin,
            persistent_workers=persistent,
        )
        # Creating a loader iterator must not draw from the global generator (exact resume).
        isolate_loader_rng(self.train_loader, int(cfg.seed))
        isolate_loader_rng(self.val_loader, int(cfg.seed) + 1)
        if len(self.train_loader) == 0:
            raise ConfigError(
                f"data.batch_size={self.batch_size} x {self.ctx.world_size} process(es) is larger than the "
                f"train split ({len(self.train_set)} clips): no full batch; lower data.batch_size"
            )
        self.train_batches = len(self.train_loader)
        if self.limit_train:
            self.train_batches = min(self.train_batches, int(self.limit_train))

    def _prepare_data_root(self) -> None:
        """Generate the synthetic dataset first where that was asked for (rank 0; the others wait)."""
        decision: Any = None
        if self.ctx.is_main:
            try:
                decision = synthetic_generation(self.cfg.data, "train")
            except ConfigError as error:
                decision = error
        decision = dist_utils.broadcast_object(decision)
        if isinstance(decision, ConfigError):
            raise decision
        if decision is None:
            return
        self.run_log.release_console()  # generating takes a while: show what is happening
        failure: Any = None
        if self.ctx.is_main:
            try:
                generate_synthetic(
                    self.cfg.data, decision, progress=bool(self.cfg.trainer.get("progress_bar", True))
                )
            except ConfigError as error:
                failure = error
        failure = dist_utils.broadcast_object(failure)
        if isinstance(failure, ConfigError):
            raise failure

    def _setup_model(self) -> None:
        cfg, device = self.cfg, self.ctx.device
        model = build_model_from_config(cfg, self.num_classes)
        if self.ctx.distributed and cfg.trainer.get("sync_batchnorm", True):
            from softpool_video.train.sync_batchnorm import convert_sync_batchnorm

            model = convert_sync_batchnorm(model, device)
        self.model = model.to(device)
        try:
            self.optimizer = build_optimizer(self.model, cfg.optim)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"optim: {error}") from None
        steps_per_epoch = math.ceil(self.train_batches / self.accumulate)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, steps_per_epoch, self.epochs)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_scaler)
        smoothing = float(cfg.get("loss", {}).get("label_smoothing", 0.0))
        self.label_smoothing = smoothing
        mixup_cfg = cfg.get("mixup") or {}
        self.mixer = (
            MixVideo.from_config(mixup_cfg, self.num_classes, smoothing) if mixup_cfg.get("enabled") else None
        )
        self.monitor = str(cfg.trainer.get("monitor", "val_video_top1"))
        self.monitor_mode = str(cfg.trainer.get("monitor_mode", "max"))

        self.point = ResumePoint()
        if self.resume_state is not None:
            self.point = self._apply_resume_state(self.resume_path, self.resume_state)
        self.start_epoch, self.step = self.point.epoch, self.point.step
        self.skip_batches = self.point.batches_in_epoch
        self.best_metric, self.best_epoch = self.point.best_metric, self.point.best_epoch

        if self.ctx.distributed:
            self.ddp_model: nn.Module = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=bool(cfg.trainer.get("find_unused_parameters", False)),
            )
        else:
            self.ddp_model = self.model
        # Restoring the generators last: building the model and the data above drew random numbers.
        self.point.restore_rng()

    def _apply_resume_state(self, path: Path, state: dict[str, Any]) -> ResumePoint:
        if int(state["num_classes"]) != self.num_classes:
            raise ConfigError(
                f"num_classes mismatch: checkpoint {path} has {state['num_classes']} classes, the data "
                f"(data.root={self.cfg.data.get('root')}) has {self.num_classes}; resume with the data it "
                "was trained on, or start a new run (fine-tune with model.pretrained=PATH)"
            )
        if list(state["class_names"]) != self.class_names:
            log.warning("class names in %s differ from the data's; continuing with the data's order", path)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ConfigError(
                f"resume={path}: the checkpoint does not fit this run's model/optimizer "
                f"({' '.join(str(error).split())[:300]}); resume with the settings it was trained with"
            ) from None
        point = ResumePoint.from_state(state)
        if point.failed_videos:
            # Known before the workers start: the resumed run skips them exactly as the interrupted one did.
            self.train_set.record_failures(point.failed_videos, log=False)
        self.resume_message = (
            f"resumed from {path}: epoch {point.epoch}"
            + (f" (after batch {point.batches_in_epoch})" if point.batches_in_epoch else "")
            + f", step {point.step}"
            + (f", {len(point.failed_videos)} unreadable video(s) known" if point.failed_videos else "")
        )
        return point

    def _open_run_dir(self) -> None:
        """Everything checked: create the run directory, write the config, start the log file."""
        if self.writes:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            removed = remove_temporary_files(self.checkpoint_dir)
            OmegaConf.save(OmegaConf.create(self.resolved), self.run_dir / "config.yaml")
            self.run_log.open_file(self.run_dir / "train.log")
        else:
            removed = []
        self.run_log.release_console()
        log.info("run directory: %s", self.run_dir)
        for note in self.notes:
            log.info("derived %s", note)
        if removed:
            log.info(
                "removed %d temporary file(s) left by an interrupted checkpoint write: %s",
                len(removed),
                ", ".join(p.name for p in removed),
            )
        log.info(
            "device %s, %d process(es), backend %s, precision %s%s",
            self.ctx.device,
            self.ctx.world_size,
            self.ctx.backend or "none",
            precision_name(self.autocast_dtype),
            " (trainer.precision=auto)" if str(self.cfg.trainer.get("precision")) == "auto" else "",
        )
        log.info(
            "data: %d train clips, %d val views, %d classes; %d batches of %d per epoch per process",
            len(self.train_set),
            len(self.val_set),
            self.num_classes,
            self.train_batches,
            self.batch_size,
        )
        if self.resume_state is not None:
            log.info(self.resume_message)
            self._check_checkpoint_pair()
            self.resume_state = None  # the weights live in the model now

    def _check_checkpoint_pair(self) -> None:
        """Say what a kill left: best.pt missing, or newer than last.pt (killed between the two saves)."""
        if self.best_epoch is None or not self.writes:
            return
        best = self.checkpoint_dir / "best.pt"
        if not best.is_file():
            log.warning(
                "checkpoints/best.pt (epoch %d, %s=%s) is missing: it is written again when %s improves "
                "on it; until then eval.test_checkpoint=best has nothing to test",
                self.best_epoch,
                self.monitor,
                self.best_metric,
                self.monitor,
            )
            return
        try:
            best_epoch = int(load_checkpoint(best, map_location="cpu", mmap=True)["epoch"])
        except CheckpointError as error:
            log.warning(
                "checkpoints/best.pt cannot be read (%s); it is replaced when %s improves",
                error,
                self.monitor,
            )
            return
        if best_epoch > self.start_epoch:
            log.info(
                "checkpoints/best.pt holds epoch %d, after last.pt (epoch %d): a stop between the two saves; "
                "epoch %d is trained again and both are rewritten",
                best_epoch,
                self.start_epoch,
                best_epoch,
            )

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self, point: ResumePoint, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_scaler else {},
            **point.to_state(),
            "config": self.resolved,
            "class_names": self.class_names,
            "num_classes": self.num_classes,
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "torch_version": str(torch.__version__),
        }

    def _point(self, epoch: int, batches_in_epoch: int = 0) -> ResumePoint:
        return ResumePoint.capture(
            epoch,
            self.step,
            batches_in_epoch,
            self._epoch_progress if batches_in_epoch else None,
            self.train_set.failures,
            self.best_metric,
            self.best_epoch,
        )

    def _save(self, name: str, state: dict[str, Any]) -> Path:
        path = self.checkpoint_dir / name
        if self.writes:
            save_checkpoint(path, state)
        return path

    # ------------------------------------------------------------------ loop
    def _prepare_epoch(self, epoch: int) -> None:
        """Make the epoch's data order and augmentation depend on (seed, epoch) only.

        The validation data stays at epoch 0: every epoch is validated on the same views.
        """
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch)  # sampler order, DistributedSampler, dataset
            return
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)

    def _train_epoch(self, epoch: int, bar_total_epochs: int) -> tuple[dict[str, float], int]:
        """One epoch; returns (metrics of this epoch, batches done — less than planned if stopped)."""
        from tqdm import tqdm

        self.ddp_model.train()
        self._prepare_epoch(epoch)
        skip = self.skip_batches
        self.skip_batches = 0
        # Mid-epoch resume: the batches of this epoch already trained are skipped by index. The
        # loaders draw nothing from the global generators, so those go on from the interruption.
        loader = loader_skipping(self.train_loader, skip) if skip else self.train_loader
        iterator = iter(loader)
        # Sums over the batches of this epoch, restored after a mid-epoch stop (on rank 0, which saved
        # the sums of all ranks) so that the epoch's row in metrics.csv covers all of its batches.
        progress = dict.fromkeys(PROGRESS_KEYS, 0.0)
        if skip and self.ctx.is_main:
            progress = self.point.progress()
        loss_sum = torch.tensor(progress["loss_sum"], dtype=torch.float64, device=self.ctx.device)
        correct = torch.tensor([progress["top1"], progress["top5"]], dtype=torch.float64)
        samples = int(progress["samples"])
        data_time = progress["data_time"]
        previous_elapsed = progress["elapsed"]
        total = self.train_batches
        log_every = int(self.cfg.trainer.get("log_every_n_steps", 10))
        bar = tqdm(
            total=total,
            initial=skip,
            desc=f"epoch {epoch + 1}/{bar_total_epochs}",
            disable=not (self.ctx.is_main and self.cfg.trainer.get("progress_bar", True)),
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        batches_done = skip
        self.optimizer.zero_grad(set_to_none=True)
        tick = time.perf_counter()
        try:
            for batch_index in range(skip, total):
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                data_time += time.perf_counter() - tick
                group_start = (batch_index // self.accumulate) * self.accumulate
                group_size = min(self.accumulate, total - group_start)
                last_of_group = batch_index == group_start + group_size - 1
                try:
                    loss, logits, labels = self._forward_backward(batch, group_size, last_of_group)
                    if last_of_group:
                        self._optimizer_step()
                except Exception as error:
                    if _is_oom(error):
                        raise TrainingError(self._oom_message(error)) from error
                    raise
                batches_done = batch_index + 1
                n = labels.shape[0]
                samples += n
                loss_sum += loss.detach().double() * n
                hits = topk_correct(logits.detach().float().cpu(), labels.cpu(), (1, 5))
                correct += torch.tensor([float(hits[1]), float(hits[5])], dtype=torch.float64)
                if last_of_group and (self.step % log_every == 0 or batch_index == total - 1):
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        raise TrainingError(
                            f"loss is {loss_value} at epoch {epoch + 1}, step {self.step}: lower optim.lr, "
                            "enable trainer.grad_clip_norm, or use trainer.precision=fp32"
                        )
                    lr = self.optimizer.param_groups[0]["lr"]
                    elapsed = previous_elapsed + time.perf_counter() - start
                    rate = samples * self.ctx.world_size / max(elapsed, 1e-9)
                    bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}")
                    if self.writes and not self.fast_dev_run:
                        self.loggers.log_step({"train/loss": loss_value, "train/lr": lr}, self.step)
                bar.update(1)
                if last_of_group and dist_utils.all_reduce_max(1.0 if self.stop.requested else 0.0) > 0:
                    self.stop.signal_name = self.stop.signal_name or "SIGTERM"  # another rank got it
                    break
                tick = time.perf_counter()
        finally:
            bar.close()
        local = torch.tensor([float(loss_sum), *correct.tolist(), samples, data_time], dtype=torch.float64)
        keys = ("loss_sum", "top1", "top5", "samples", "data_time")
        sums = dict(zip(keys, dist_utils.all_reduce_sum(local).tolist(), strict=True))
        sums["elapsed"] = previous_elapsed + time.perf_counter() - start
        self._epoch_progress = sums  # stored by a mid-epoch checkpoint
        count = max(sums["samples"], 1.0)
        metrics = {
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": sums["loss_sum"] / count,
            "train_top1": 100.0 * sums["top1"] / count,
            "train_top5": 100.0 * sums["top5"] / count,
            "clips_per_s": sums["samples"] / max(sums["elapsed"], 1e-9),
            "data_time": sums["data_time"] / self.ctx.world_size,
            "epoch_time": sums["elapsed"],
        }
        return metrics, batches_done

    def _forward_backward(self, batch: dict[str, Any], group_size: int, last_of_group: bool):
        video = _move(batch["video"], self.ctx.device)
        labels = torch.as_tensor(batch["label"]).long().to(self.ctx.device, non_blocking=True)
        targets: torch.Tensor = labels
        if self.mixer is not None:
            video, targets = self.mixer(video, labels)
        # Gradients of the micro-batches of a group are accumulated locally; DDP all-reduces once.
        sync = (
            contextlib.nullcontext()
            if last_of_group or not self.ctx.distributed
            else self.ddp_model.no_sync()
        )
        with sync:
            with torch.autocast(
                self.ctx.device.type,
                dtype=self.autocast_dtype or torch.float32,
                enabled=self.autocast_dtype is not None,
            ):
                logits = self.ddp_model(video)
            smoothing = 0.0 if self.mixer is not None else self.label_smoothing  # mixer smooths itself
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=smoothing)
            self.scaler.scale(loss / group_size).backward()
        return loss, logits, labels

    def _optimizer_step(self) -> None:
        clip = self.cfg.trainer.get("grad_clip_norm")
        if clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def _oom_message(self, error: BaseException) -> str:
        where = "GPU" if self.ctx.device.type == "cuda" else "host"
        return (
            f"out of {where} memory with data.batch_size={self.batch_size} per process "
            f"({error.__class__.__name__}). "
            f"Lower data.batch_size (e.g. data.batch_size={max(self.batch_size // 2, 1)}) and raise "
            f"trainer.accumulate_grad_batches={self.accumulate * 2} to keep the effective batch"
            + (", or use trainer.precision=bf16" if self.autocast_dtype is None and where == "GPU" else "")
        )

    def _validate(self, epoch: int) -> dict[str, float]:
        aggregation = str(self.cfg.get("eval", {}).get("aggregation", "mean"))
        predictions = predict_views(
            self.model,  # no DDP wrapper: inference needs no gradient sync
            self.val_loader,
            self.ctx.device,
            self.autocast_dtype,
            int(self.limit_val) if self.limit_val else None,
            progress=self.ctx.is_main and bool(self.cfg.trainer.get("progress_bar", True)),
            description=f"val {epoch + 1}",
            should_stop=lambda: self.stop.requested,  # local: ranks may hold different numbers of batches
        )
        if not predictions.complete and dist_utils.all_reduce_max(1.0 if self.stop.requested else 0.0) > 0:
            self.stop.signal_name = self.stop.signal_name or "SIGTERM"  # another rank got it
            log.warning("validation of epoch %d interrupted: no val metrics for it", epoch + 1)
            return {}
        result = summarize(predictions, self.num_classes, aggregation)
        return result.metrics("val_")

    def _is_better(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.monitor_mode == "max" else value < self.best_metric

    def fit(self) -> TrainResult:
        cfg = self.cfg
        eval_every = int(cfg.trainer.get("eval_every_n_epochs", 1))
        self.loggers = build_metric_loggers(
            cfg.get("logger") if self.writes and not self.fast_dev_run else None,
            self.run_dir,
            (*EPOCH_COLUMNS, *temperature_metrics(self.model)),  # learned temperatures: one column per layer
            self.start_epoch,
            self.step,
        )
        history: list[dict[str, Any]] = []
        last_path: Path | None = None
        best_path = self.checkpoint_dir / "best.pt"
        epochs_completed = self.start_epoch
        run_start = time.perf_counter()
        self.stop.install()
        try:
            for epoch in range(self.start_epoch, self.epochs):
                metrics, batches_done = self._train_epoch(epoch, self.epochs)
                if self.stop.requested and batches_done < self.train_batches:
                    if not self.fast_dev_run:
                        last_path = self._save(
                            "last.pt", self._checkpoint_state(self._point(epoch, batches_done), {})
                        )
                    break
                row: dict[str, Any] = {"epoch": epoch, "step": self.step, **metrics}
                row.update(temperature_metrics(self.model, per_channel=True))
                is_last_epoch = epoch == self.epochs - 1
                if (epoch + 1) % eval_every == 0 or is_last_epoch:
                    row.update(self._validate(epoch))
                history.append(row)
                epochs_completed = epoch + 1
                self._log_epoch(row)
                self.loggers.log_epoch(row)
                if not self.fast_dev_run:
                    improved = self._is_better(row.get(self.monitor))
                    if improved:
                        self.best_metric, self.best_epoch = float(row[self.monitor]), epoch + 1
                    state = self._checkpoint_state(self._point(epoch + 1), row)
                    # best.pt first: a kill between the two saves leaves last.pt at the previous epoch,
                    # which resumes into this epoch again and rewrites both (never a last.pt that
                    # claims a best.pt that was not written).
                    if improved:
                        self._save("best.pt", state)
                    last_path = self._save("last.pt", state)
                if self.stop.requested:
                    break
        finally:
            self.stop.uninstall()
            self.loggers.close()
        dist_utils.barrier()
        if last_path is None and (self.checkpoint_dir / "last.pt").is_file():
            last_path = self.checkpoint_dir / "last.pt"  # resumed with nothing left to train
        if self.stop.requested:
            log.warning(
                "stopped by %s after %d optimizer steps; checkpoint %s. Continue with: resume=auto (same "
                "command) or resume=%s",
                self.stop.signal_name,
                self.step,
                last_path,
                last_path,
            )
        elif not self.fast_dev_run:
            log.info(
                "done: best %s = %s; checkpoints in %s", self.monitor, self.best_metric, self.checkpoint_dir
            )
        return TrainResult(
            run_dir=self.run_dir,
            last_checkpoint=last_path,
            best_checkpoint=best_path if best_path.is_file() else None,
            best_metric=self.best_metric,
            epochs_completed=epochs_completed,
            step=self.step,
            history=history,
            stopped_by=self.stop.signal_name,
            seconds=time.perf_counter() - run_start,
        )

    def _log_epoch(self, row: dict[str, Any]) -> None:
        text = (
            f"epoch {row['epoch'] + 1}/{self.epochs}: loss {row['train_loss']:.4f}  "
            f"top-1 {row['train_top1']:.1f}%  "
            f"lr {row['lr']:.2e}  {row['clips_per_s']:.1f} clips/s  data {row['data_time']:.1f}s  "
            f"epoch {row['epoch_time']:.1f}s"
        )
        if "val_video_top1" in row:
            text += (
                f" | val loss {row['val_loss']:.4f}  clip top-1 {row['val_top1']:.1f}%  "
                f"video top-1 {row['val_video_top1']:.1f}%  top-5 {row['val_video_top5']:.1f}%"
            )
        log.info(text)

    def close(self) -> None:
        """Shut down the process group if this run created it (not when a caller holds a session)."""
        if self._owns_process_group:
            dist_utils.cleanup_distributed()
            self._owns_process_group = False


def train(cfg: DictConfig) -> TrainResult:
    """Train with the composed config ``cfg`` (see ``conf/train.yaml``).

    Raises:
        ConfigError: a configuration mistake, found before anything is written.
        TrainingError, CheckpointError, TooManyFailedVideosError: the run failed (the traceback is in
            the run's ``train.log``).
    """
    trainer = Trainer(cfg)
    try:
        return trainer.fit()
    except BaseException as error:
        if not isinstance(error, KeyboardInterrupt | SystemExit):
            trainer.run_log.write_traceback(error)
        raise
    finally:
        trainer.close()
