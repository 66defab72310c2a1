"""The training loop behind ``softpool-train``: one :class:`Trainer` per run.

What a run does, in order (each step is one method below):

1. ``_setup_run``: distributed context (torchrun env), precision vs device, seeding, the run directory
   (``resume=auto`` finds the latest ``last.pt`` of a run with the same ``name``), console log.
2. ``_setup_data``: train/val datasets and loaders (``data/``), with clear errors for empty splits.
3. ``_setup_model``: model (``model/`` + ``pooling/``), optional SyncBatchNorm, optimizer (``optim/``),
   per-step LR schedule (``schedule/``), GradScaler; then the checkpoint to resume from, if any; DDP.
4. ``fit``: epochs of ``_train_epoch`` (AMP, gradient accumulation, clipping, label smoothing,
   mixup/cutmix), validation every ``trainer.eval_every_n_epochs`` with multi-view video-level
   metrics, ``last.pt`` every epoch and ``best.pt`` on improvement of ``trainer.monitor``.

SIGTERM/SIGINT finish the current optimizer step, write ``last.pt`` (recording the position inside the
epoch) and stop; ``resume=auto`` then continues where it stopped. Resuming at an epoch boundary
reproduces an uninterrupted run exactly (same weights, same metrics) on CPU with the same seed: the
data order depends only on (seed, epoch) and every RNG state is saved in the checkpoint.

Run directory (``run_dir``)::

    config.yaml          the resolved configuration
    train.log            the console log
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from softpool_video.train import distributed as dist_utils
from softpool_video.train.checkpoint import (
    FORMAT_VERSION,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from softpool_video.train.config import (
    ConfigError,
    build_model_from_config,
    build_split,
    resolve_precision,
    to_plain_dict,
    validate_train_config,
)
from softpool_video.train.evaluate import predict_views, summarize
from softpool_video.train.loggers import build_metric_loggers, setup_console_logging
from softpool_video.train.metrics import topk_correct
from softpool_video.train.mixup import MixVideo
from softpool_video.train.optim import build_optimizer, build_scheduler

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

    def checkpoint(self, which: str) -> Path | None:
        """``"last"`` or ``"best"`` (falls back to last.pt when no epoch was validated)."""
        if which not in ("last", "best"):
            raise ConfigError(f"eval.test_checkpoint={which!r} must be last or best")
        return (self.best_checkpoint if which == "best" else None) or self.last_checkpoint


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


class _SkipBatches:
    """A batch sampler that drops the first ``skip`` batches of another (mid-epoch resume)."""

    def __init__(self, batch_sampler: Any, skip: int):
        self.batch_sampler = batch_sampler
        self.skip = skip

    def __iter__(self) -> Iterator[list[int]]:
        for index, batch in enumerate(self.batch_sampler):
            if index >= self.skip:
                yield batch

    def __len__(self) -> int:
        return max(len(self.batch_sampler) - self.skip, 0)


def _loader_skipping(loader: torch.utils.data.DataLoader, skip: int) -> torch.utils.data.DataLoader:
    """The same loader without its first ``skip`` batches, skipped by index (no video is decoded)."""
    kwargs: dict[str, Any] = {
        "batch_sampler": _SkipBatches(loader.batch_sampler, skip),
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "generator": loader.generator,
        "multiprocessing_context": loader.multiprocessing_context,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
        kwargs["persistent_workers"] = False
    if hasattr(loader, "seed"):  # the data package's VideoDataLoader (records worker failures)
        kwargs["seed"] = loader.seed
    return type(loader)(loader.dataset, **kwargs)


class Trainer:
    """One training run; see the module docstring. ``Trainer(cfg).fit()`` or :func:`train`."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.stop = _StopRequest()
        self._setup_run()
        self._setup_data()
        self._setup_model()

    # ------------------------------------------------------------------ setup
    def _setup_run(self) -> None:
        cfg = self.cfg
        trainer_cfg = cfg.trainer
        self.ctx = dist_utils.init_distributed(
            str(trainer_cfg.get("accelerator", "auto")), float(trainer_cfg.get("timeout_minutes", 30))
        )
        validate_train_config(cfg)
        self._match_pathways(cfg)
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
                decision = self._decide_run_dir()
            except ConfigError as error:
                decision = error  # every rank raises it, rather than waiting for rank 0 forever
        decision = dist_utils.broadcast_object(decision)
        if isinstance(decision, ConfigError):
            raise decision
        self.run_dir, self.resume_path = decision
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.writes = self.ctx.is_main  # only rank 0 writes files
        if self.writes:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        setup_console_logging(self.run_dir / "train.log" if self.writes else None, self.ctx.is_main)
        self.resolved = to_plain_dict(cfg)
        self.resolved["run_dir"] = str(self.run_dir)
        if self.writes:
            OmegaConf.save(OmegaConf.create(self.resolved), self.run_dir / "config.yaml")
        log.info("run directory: %s", self.run_dir)
        log.info(
            "device %s, %d process(es), backend %s, precision %s",
            self.ctx.device,
            self.ctx.world_size,
            self.ctx.backend or "none",
            trainer_cfg.get("precision", "fp32"),
        )

    def _decide_run_dir(self) -> tuple[Path, Path | None]:
        cfg = self.cfg
        run_dir = Path(str(cfg.run_dir))
        resume = cfg.get("resume")
        if resume is None:
            if (run_dir / "checkpoints" / "last.pt").is_file():
                raise ConfigError(
                    f"run_dir={run_dir} already holds a run (checkpoints/last.pt): pass resume=auto to "
                    "continue it, or choose another run_dir"
                )
            return run_dir, None
        if resume == "auto":
            candidates = [run_dir / "checkpoints" / "last.pt"]
            root = Path(str(cfg.get("output_root", run_dir.parent.parent))) / str(cfg.name)
            candidates += sorted(
                root.glob("*/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime, reverse=True
            )
            for candidate in candidates:
                if candidate.is_file():
                    return candidate.parent.parent, candidate
            print(f"resume=auto: no last.pt under {root}; starting a new run", flush=True)
            return run_dir, None
        path = Path(str(resume))
        # A checkpoint inside a run directory continues that run's directory (metrics, logs).
        return (path.parent.parent if path.parent.name == "checkpoints" else run_dir), path

    def _setup_data(self) -> None:
        from softpool_video.data import build_dataloader

        cfg, data_cfg = self.cfg, self.cfg.data
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
        if len(self.train_loader) == 0:
            raise ConfigError(
                f"data.batch_size={self.batch_size} x {self.ctx.world_size} process(es) is larger than the "
                f"train split ({len(self.train_set)} clips): no full batch; lower data.batch_size"
            )
        self.train_batches = len(self.train_loader)
        if self.limit_train:
            self.train_batches = min(self.train_batches, int(self.limit_train))
        log.info(
            "data: %d train clips, %d val views, %d classes; %d batches of %d per epoch per process",
            len(self.train_set),
            len(self.val_set),
            self.num_classes,
            self.train_batches,
            self.batch_size,
        )

    @staticmethod
    def _match_pathways(cfg: DictConfig) -> None:
        """SlowFast models need [slow, fast] clips: take ``data.alpha`` from the model unless it is set."""
        from softpool_video.models.registry import get_model_spec

        model_alpha = cfg.model.get("alpha")
        if model_alpha is None:
            model_alpha = get_model_spec(str(cfg.model.name)).alpha
        data_alpha = cfg.data.get("alpha")
        if model_alpha is None and data_alpha is not None:
            raise ConfigError(
                f"data.alpha={data_alpha} makes [slow, fast] clips but model {cfg.model.name} takes one "
                "tensor: set data.alpha=null"
            )
        if model_alpha is not None and data_alpha is None:
            with open_dict(cfg):
                cfg.data.alpha = int(model_alpha)
        elif model_alpha is not None and int(data_alpha) != int(model_alpha):
            raise ConfigError(
                f"data.alpha={data_alpha} but model {cfg.model.name} has alpha={model_alpha}; they must "
                "agree (data.alpha=null takes the model's)"
            )

    def _setup_model(self) -> None:
        cfg, device = self.cfg, self.ctx.device
        model = build_model_from_config(cfg, self.num_classes)
        if self.ctx.distributed and cfg.trainer.get("sync_batchnorm", True):
            from softpool_video.train.sync_batchnorm import convert_sync_batchnorm

            model = convert_sync_batchnorm(model, device)
        self.model = model.to(device)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        steps_per_epoch = math.ceil(self.train_batches / self.accumulate)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, steps_per_epoch, self.epochs)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_scaler)
        smoothing = float(cfg.get("loss", {}).get("label_smoothing", 0.0))
        self.label_smoothing = smoothing
        mixup_cfg = cfg.get("mixup") or {}
        self.mixer = (
            MixVideo.from_config(mixup_cfg, self.num_classes, smoothing) if mixup_cfg.get("enabled") else None
        )

        self.start_epoch, self.step, self.skip_batches = 0, 0, 0
        self.best_metric: float | None = None
        self.monitor = str(cfg.trainer.get("monitor", "val_video_top1"))
        self.monitor_mode = str(cfg.trainer.get("monitor_mode", "max"))
        if self.monitor_mode not in ("max", "min"):
            raise ConfigError(f"trainer.monitor_mode={self.monitor_mode!r} must be max or min")
        if self.monitor not in EPOCH_COLUMNS:
            choices = ", ".join(EPOCH_COLUMNS[2:])
            raise ConfigError(f"trainer.monitor={self.monitor!r} is not a metric; choose from: {choices}")
        resume_rng = None
        if self.resume_path is not None:
            resume_rng = self._load_resume_state(self.resume_path)

        if self.ctx.distributed:
            self.ddp_model: nn.Module = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=bool(cfg.trainer.get("find_unused_parameters", False)),
            )
        else:
            self.ddp_model = self.model
        # Restoring the RNG last: building the model above consumed random numbers.
        self._resume_rng = resume_rng
        if resume_rng is not None:
            self._restore_rng(resume_rng["rng"])

    def _load_resume_state(self, path: Path) -> dict[str, Any]:
        state = load_checkpoint(path, map_location="cpu")
        if int(state["num_classes"]) != self.num_classes:
            raise ConfigError(
                f"num_classes mismatch: checkpoint {path} has {state['num_classes']} classes, the data "
                f"(data.root={self.cfg.data.get('root')}) has {self.num_classes}; resume with the data it "
                "was trained on, or start a new run (fine-tune with model.pretrained=PATH)"
            )
        if list(state["class_names"]) != self.class_names:
            log.warning("class names in %s differ from the data's; continuing with the data's order", path)
        previous = state["config"].get("model", {}).get("name")
        if previous != self.cfg.model.name:
            raise ConfigError(
                f"resume: checkpoint {path} holds model {previous!r}, "
                f"the config asks for {self.cfg.model.name!r}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.skip_batches = int(state.get("batches_in_epoch", 0))
        self.best_metric = state.get("best_metric")
        log.info(
            "resumed from %s: epoch %d%s, step %d",
            path,
            self.start_epoch,
            f" (after batch {self.skip_batches})" if self.skip_batches else "",
            self.step,
        )
        return {
            "rng": state["rng"],
            "rng_epoch_start": state.get("rng_epoch_start"),
            "epoch_progress": state.get("epoch_progress"),
        }

    # ------------------------------------------------------------------ checkpoints
    def _generators(self) -> dict[str, torch.Generator]:
        """The private generators of the train loader and its sampler, if it has any."""
        found = {}
        for name, owner in (
            ("loader", self.train_loader),
            ("sampler", getattr(self.train_loader, "sampler", None)),
        ):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator):
                found[name] = generator
        return found

    def _capture_rng(self) -> dict[str, Any]:
        state = capture_rng_state()
        state["generators"] = {name: g.get_state() for name, g in self._generators().items()}
        return state

    def _restore_rng(self, state: dict[str, Any]) -> None:
        restore_rng_state(state)
        generators = self._generators()
        for name, generator_state in (state.get("generators") or {}).items():
            if name in generators:
                generators[name].set_state(generator_state)

    def _checkpoint_state(self, epoch: int, batches_in_epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        state = {
            "format_version": FORMAT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_scaler else {},
            "epoch": epoch,
            "step": self.step,
            "batches_in_epoch": batches_in_epoch,
            "best_metric": self.best_metric,
            "rng": self._capture_rng(),
            "config": self.resolved,
            "class_names": self.class_names,
            "num_classes": self.num_classes,
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "torch_version": str(torch.__version__),
        }
        if batches_in_epoch:
            state["rng_epoch_start"] = self._rng_epoch_start
            state["epoch_progress"] = self._epoch_progress
        return state

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
        self._rng_epoch_start = self._capture_rng()
        skip, resume = self.skip_batches, self._resume_rng
        self.skip_batches, self._resume_rng = 0, None
        loader = self.train_loader
        if skip:
            # Mid-epoch resume: the batches of this epoch already trained are skipped by index. The
            # loader starts from the RNG state the interrupted run had at the start of the epoch (the
            # loader draws its worker seeds from it); training goes on with the state at the interruption.
            if resume and resume.get("rng_epoch_start") is not None:
                self._restore_rng(resume["rng_epoch_start"])
                self._rng_epoch_start = resume["rng_epoch_start"]
            loader = _loader_skipping(self.train_loader, skip)
        iterator = iter(loader)
        if skip and resume:
            # Global generators only: the sampler's generator must keep its epoch-start state, as it
            # has not drawn this epoch's order yet.
            restore_rng_state(resume["rng"])
        # Sums over the batches of this epoch, restored after a mid-epoch stop (on rank 0, which saved
        # the sums of all ranks) so that the epoch's row in metrics.csv covers all of its batches.
        progress = dict.fromkeys(("loss_sum", "top1", "top5", "samples", "data_time", "elapsed"), 0.0)
        if skip and resume and resume.get("epoch_progress") and self.ctx.is_main:
            progress.update(resume["epoch_progress"])
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
            EPOCH_COLUMNS,
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
                        last_path = self._save("last.pt", self._checkpoint_state(epoch, batches_done, {}))
                    break
                row: dict[str, Any] = {"epoch": epoch, "step": self.step, **metrics}
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
                        self.best_metric = float(row[self.monitor])
                    state = self._checkpoint_state(epoch + 1, 0, row)
                    last_path = self._save("last.pt", state)
                    if improved:
                        self._save("best.pt", state)
                if self.stop.requested:
                    break
        finally:
            self.stop.uninstall()
            self.loggers.close()
        dist_utils.barrier()
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
        dist_utils.cleanup_distributed()


def train(cfg: DictConfig) -> TrainResult:
    """Train with the composed config ``cfg`` (see ``conf/train.yaml``)."""
    trainer = None
    try:
        trainer = Trainer(cfg)
        return trainer.fit()
    finally:
        if trainer is not None:
            trainer.close()
        else:
            dist_utils.cleanup_distributed()
