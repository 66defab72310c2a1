"""Training checkpoints: atomic writes, ``weights_only`` loading, RNG state, and model rebuilding.

A checkpoint is a plain ``dict`` saved with :func:`torch.save` that loads with
``torch.load(path, weights_only=True)`` (only tensors, numbers, strings, lists, tuples and dicts):

=====================  =================================================================
key                    content
=====================  =================================================================
``format_version``     int, :data:`FORMAT_VERSION`
``model``              model ``state_dict`` (unwrapped from DDP)
``optimizer``          optimizer ``state_dict``
``scheduler``          LR scheduler ``state_dict``
``scaler``             ``GradScaler`` ``state_dict`` (empty dict when not used)
``epoch``              epochs completed (the next epoch to run, 0-based)
``step``               optimizer steps completed
``batches_in_epoch``   batches of epoch ``epoch`` already trained (non-zero only after a
                       SIGTERM/SIGINT mid-epoch)
``best_metric``        best value of ``trainer.monitor`` so far (``None`` before any eval)
``best_epoch``         the epoch (1-based) ``best.pt`` holds (``None`` before any eval)
``rng``                ``{"python", "numpy", "torch", "cuda"}`` generator states at the checkpoint
``epoch_progress``     mid-epoch checkpoints only: the epoch's sums so far (loss, hits, clips, times)
``failed_videos``      ``[[path, message], ...]``: training videos known to be unreadable
``config``             the resolved run configuration as a plain dict
``class_names``        list of class names, index = label
``num_classes``        int
``metrics``            the metrics row of the epoch just finished (``{name: float}``)
``torch_version``      str
=====================  =================================================================

The position keys (``epoch`` ... ``failed_videos``) are ``train/resume.py``'s ``ResumePoint``.

Writing goes to a temporary file in the same directory (``.NAME.*.tmp``), is flushed and fsynced, then
renamed over the target, so a crash or a kill at any moment leaves either the old or the new checkpoint,
never half of one; :func:`remove_temporary_files` clears what a killed writer left. Files get the mode
the umask gives (``0644`` with the usual ``022``), not ``mkstemp``'s private ``0600``, so a team can
read each other's checkpoints on shared storage.

Loading goes through :func:`softpool_video.models.pretrained.read_checkpoint` (``weights_only=True``):
a text file, a video, a damaged file or a pickle that would run code is refused with one line.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Reading checkpoints and rebuilding their models lives below train/ (predict and visualize use it
# without importing the training package); re-exported here for the training code and its callers.
from softpool_video.models.loading import (
    FORMAT_VERSION,
    REQUIRED_KEYS,
    CheckpointError,
    load_checkpoint,
    load_model_from_checkpoint,
)

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_KEYS",
    "CheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "load_model_from_checkpoint",
    "remove_temporary_files",
    "restore_rng_state",
    "save_checkpoint",
]


def _file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes 0600 files; checkpoints follow the umask
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Leave no half-written temp file behind, whatever interrupted us.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    # Persist the rename itself (the directory entry), where the platform allows it.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def remove_temporary_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files a killed :func:`save_checkpoint` left in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for leftover in sorted(directory.glob(".*.pt.*.tmp")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    return removed


def capture_rng_state() -> dict[str, Any]:
    """States of the Python, NumPy, torch CPU and CUDA generators, in ``weights_only``-loadable types."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        # A run resumed on a machine with a different GPU count restores what it can.
        for index, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
