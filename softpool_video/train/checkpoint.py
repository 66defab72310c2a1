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

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "config", "class_names", "num_classes")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not one of ours (exit status 1 in the tools)."""


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


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Load and sanity-check a checkpoint with ``weights_only=True``.

    Raises :class:`CheckpointError` (one line, naming the file) when it is missing, not a checkpoint,
    damaged, unsafe or not written by softpool-train.
    """
    from softpool_video.models.pretrained import read_checkpoint

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = read_checkpoint(path, mmap=mmap)
    except (ValueError, OSError) as error:
        raise CheckpointError(str(error)) from None
    if map_location not in ("cpu", torch.device("cpu")):
        state = _to_device(state, torch.device(map_location))
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}: not written by softpool-train "
            "(load bare weights with softpool_video.models.load_pretrained instead)"
        )
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {state['format_version']}, this version of "
            f"softpool_video reads up to {FORMAT_VERSION}; upgrade softpool_video"
        )
    return state


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_device(item, device) for item in value)
    return value


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


def load_model_from_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu", state: dict[str, Any] | None = None
) -> tuple[torch.nn.Module, dict[str, Any], list[str]]:
    """Rebuild the trained model from a ``softpool-train`` checkpoint, ready for inference.

    ``state``: the checkpoint already loaded with :func:`load_checkpoint` (it is not read again).

    Returns:
        ``(model, config, class_names)``: the model in eval mode on ``device`` with the trained
        weights; the run's resolved configuration as a plain dict (``config["data"]`` holds the
        test-time clip settings: frames, sampling rate, crop size, normalization, num_clips/num_crops);
        the class names (index = label).

    Raises:
        CheckpointError: the file is not a checkpoint, or its config does not build a model its weights fit
            (e.g. it names another model than the one it was trained with).
    """
    from softpool_video.cli import UsageError
    from softpool_video.train.config import build_model_from_config

    if state is None:
        state = load_checkpoint(path, map_location="cpu")
    config = state["config"]
    class_names = list(state["class_names"])
    name = (config.get("model") or {}).get("name") if isinstance(config, dict) else None
    try:
        model = build_model_from_config(config, num_classes=int(state["num_classes"]), pretrained=False)
    except (UsageError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"checkpoint {path}: its config does not build a model (model.name={name!r}): {error}"
        ) from None
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as error:
        expected, found = set(model.state_dict()), set(state["model"])
        detail = (
            f"{len(expected - found)} missing and {len(found - expected)} unexpected tensors"
            if expected != found
            else str(error).split("\n")[1].strip()
            if "\n" in str(error)
            else str(error)
        )
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit model {name!r} built from its own config ({detail}): "
            "was its config edited, or the model changed since?"
        ) from None
    return model.to(device).eval(), config, class_names
