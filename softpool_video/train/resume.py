"""Resume bookkeeping: where a run continues, and what an exact continuation needs.

A run can stop anywhere: SIGTERM/SIGINT mid-epoch (``last.pt`` then records the batches done), a
``kill -9`` or a crash (the last epoch's ``last.pt`` is what is left). Continuing it with ``resume``
must give the weights an uninterrupted run would have had. That takes, and this module holds:

- the position (:class:`ResumePoint`): epoch, optimizer step, batches of the epoch already trained
  (skipped by index, never decoded: :func:`loader_skipping`), and the epoch's running sums;
- the random state at the moment of the checkpoint (Python, NumPy, torch CPU/CUDA generators);
- the videos already known to be unreadable, so that the resumed run's datasets skip them exactly as
  the uninterrupted run's did;
- loaders whose iterators do not draw from the global generator (:func:`isolate_loader_rng`): a
  ``DataLoader`` draws its workers' base seed whenever an iterator is created, which an uninterrupted
  run with ``persistent_workers`` does once and a resumed run does again; dropout and mixup draw from
  that same global generator, so without this the resumed weights drift apart.

Which checkpoint to continue from is :func:`find_resume_checkpoint` (``resume=auto``: the newest
``last.pt`` of runs with the same ``name``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from softpool_video.train.checkpoint import capture_rng_state, restore_rng_state

__all__ = [
    "PROGRESS_KEYS",
    "ResumePoint",
    "SkipBatches",
    "find_resume_checkpoint",
    "isolate_loader_rng",
    "loader_skipping",
]

#: The running sums of an epoch, carried over by a mid-epoch checkpoint.
PROGRESS_KEYS = ("loss_sum", "top1", "top5", "samples", "data_time", "elapsed")


@dataclass
class ResumePoint:
    """Where a run stands: what a checkpoint stores to continue it, and :meth:`restore` puts back.

    Attributes:
        epoch: epochs completed (the epoch to run next, 0-based).
        step: optimizer steps completed.
        batches_in_epoch: batches of ``epoch`` already trained (non-zero after a mid-epoch stop).
        rng: generator states at the checkpoint (:func:`capture_rng_state`).
        epoch_progress: the epoch's running sums (``PROGRESS_KEYS``) after a mid-epoch stop.
        failed_videos: ``[(path, message)]`` of the training videos known to be unreadable.
        best_metric, best_epoch: best ``trainer.monitor`` value so far and the epoch (1-based) it was
            reached at, i.e. which epoch ``best.pt`` holds (``None`` before any validation).
    """

    epoch: int = 0
    step: int = 0
    batches_in_epoch: int = 0
    rng: dict[str, Any] | None = None
    epoch_progress: dict[str, float] | None = None
    failed_videos: list[tuple[str, str]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None

    @classmethod
    def capture(
        cls,
        epoch: int,
        step: int,
        batches_in_epoch: int = 0,
        epoch_progress: Mapping[str, float] | None = None,
        failed_videos: list[tuple[str, str]] | None = None,
        best_metric: float | None = None,
        best_epoch: int | None = None,
    ) -> ResumePoint:
        """The point reached now, with the current generator states."""
        return cls(
            epoch=int(epoch),
            step=int(step),
            batches_in_epoch=int(batches_in_epoch),
            rng=capture_rng_state(),
            epoch_progress=dict(epoch_progress) if batches_in_epoch and epoch_progress else None,
            failed_videos=[(str(p), str(m)) for p, m in (failed_videos or [])],
            best_metric=best_metric,
            best_epoch=best_epoch,
        )

    def to_state(self) -> dict[str, Any]:
        """The checkpoint keys of this point (``weights_only``-loadable types only)."""
        state: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "batches_in_epoch": self.batches_in_epoch,
            "rng": self.rng,
            "failed_videos": [list(pair) for pair in self.failed_videos],
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
        }
        if self.batches_in_epoch and self.epoch_progress:
            state["epoch_progress"] = dict(self.epoch_progress)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ResumePoint:
        """The point a checkpoint (see ``checkpoint.py``) was written at."""
        return cls(
            epoch=int(state.get("epoch", 0)),
            step=int(state.get("step", 0)),
            batches_in_epoch=int(state.get("batches_in_epoch", 0)),
            rng=state.get("rng"),
            epoch_progress=dict(state["epoch_progress"]) if state.get("epoch_progress") else None,
            failed_videos=[(str(p), str(m)) for p, m in state.get("failed_videos") or []],
            best_metric=state.get("best_metric"),
            best_epoch=state.get("best_epoch"),
        )

    def restore_rng(self) -> None:
        """Put the generator states of the checkpoint back (call after building model and data)."""
        if self.rng is not None:
            restore_rng_state(self.rng)

    def progress(self) -> dict[str, float]:
        """The epoch's running sums to start from (zeros unless resuming mid-epoch)."""
        sums = dict.fromkeys(PROGRESS_KEYS, 0.0)
        if self.batches_in_epoch and self.epoch_progress:
            sums.update({k: float(v) for k, v in self.epoch_progress.items() if k in sums})
        return sums


def find_resume_checkpoint(
    run_dir: Path, resume: Any, output_root: Path, name: str
) -> tuple[Path, Path | None, str | None]:
    """``(run directory, checkpoint to continue or None, a note to log)`` for ``resume``.

    - ``None``: a new run in ``run_dir``; a ``run_dir`` that already holds ``checkpoints/last.pt`` is
      refused (it would be overwritten), with the hint to pass ``resume=auto``.
    - ``"auto"``: ``run_dir``'s own ``last.pt``, else the newest
      ``<output_root>/<name>/*/checkpoints/last.pt``, else a new run in ``run_dir``.
    - a path: that checkpoint; one inside ``<run>/checkpoints/`` continues that run's directory.

    Raises:
        ConfigError: for a ``run_dir`` that already holds a run, or a ``resume`` file that does not exist.
    """
    from softpool_video.train.config import ConfigError

    if resume is None:
        if (run_dir / "checkpoints" / "last.pt").is_file():
            raise ConfigError(
                f"run_dir={run_dir} already holds a run (checkpoints/last.pt): pass resume=auto to "
                "continue it, or choose another run_dir"
            )
        return run_dir, None, None
    if resume == "auto":
        candidates = [run_dir / "checkpoints" / "last.pt"]
        root = output_root / name
        candidates += sorted(
            root.glob("*/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for candidate in candidates:
            if candidate.is_file():
                return candidate.parent.parent, candidate, None
        return run_dir, None, f"resume=auto: no last.pt under {root}; starting a new run"
    path = Path(str(resume))
    if not path.is_file():
        raise ConfigError(
            f"resume={resume!r}: no such checkpoint file (use resume=auto or a path to last.pt)"
        )
    # A checkpoint inside a run directory continues that run's directory (metrics, logs).
    return (path.parent.parent if path.parent.name == "checkpoints" else run_dir), path, None


def isolate_loader_rng(loader: torch.utils.data.DataLoader, seed: int) -> None:
    """Give ``loader`` a generator of its own for its workers' base seed (see the module docstring).

    Our datasets derive every random choice from ``(seed, epoch, index)``, so the worker seeds do not
    change the data; what matters is that creating an iterator leaves the global generator alone.
    """
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    loader.generator = generator


class SkipBatches:
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


def loader_skipping(loader: torch.utils.data.DataLoader, skip: int) -> torch.utils.data.DataLoader:
    """The same loader without its first ``skip`` batches, skipped by index (no video is decoded).

    Same dataset, sampler order (the batch sampler is shared, so ``set_epoch`` applies), workers and
    collate function; its own iterator generator (:func:`isolate_loader_rng`).
    """
    kwargs: dict[str, Any] = {
        "batch_sampler": SkipBatches(loader.batch_sampler, skip),
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
        kwargs["persistent_workers"] = False
    if hasattr(loader, "seed"):  # the data package's VideoDataLoader (records worker failures)
        kwargs["seed"] = loader.seed
    skipping = type(loader)(loader.dataset, **kwargs)
    isolate_loader_rng(skipping, getattr(loader, "seed", 0))
    return skipping
