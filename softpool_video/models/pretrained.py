"""Load weights from local checkpoint files of the common video codebases; never downloads.

Recognised containers (the state dict is found automatically):

* pytorchvideo / PySlowFast ``.pyth``: ``{"model_state": state_dict, ...}``
* torchvision ``.pth``: the state dict itself
* mmaction2 / mmengine: ``{"state_dict": {"backbone.<key>": ..., "cls_head.fc_cls.weight": ...}}``
* PyTorch Lightning ``.ckpt``: ``{"state_dict": {"model.<key>": ...}, "epoch": ..., ...}``
* this project's checkpoints: ``{"model": state_dict, "config": ..., "class_names": [...], ...}``

Key prefixes added by wrappers (``module.`` from DataParallel/DDP, ``_orig_mod.`` from torch.compile,
``model.``/``backbone.``/``net.`` from training frameworks) are removed when that makes more keys
match the model. Files are always read with ``torch.load(weights_only=True)``: a checkpoint that
would need to run arbitrary pickled code is refused.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = ["LoadReport", "extract_state_dict", "load_pretrained", "pretrained_path", "read_checkpoint"]

logger = logging.getLogger(__name__)

# Containers, in the order they are tried.
_STATE_DICT_KEYS = ("model_state", "state_dict", "model", "model_state_dict", "module")
# Prefixes always removed: wrappers, never part of a module name.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Prefixes removed when doing so makes more keys match (training frameworks nest the network).
_FRAMEWORK_PREFIXES = ("model.", "backbone.", "net.", "encoder.")
# mmaction2's classification head, mapped onto the model's classifier.
_MMACTION_HEAD = "cls_head.fc_cls."


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did. Keys are the model's names."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped_head: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        if self.dropped_head:
            lines.append(f"dropped head (class count differs): {', '.join(self.dropped_head)}")
        if self.missing:
            lines.append(f"missing in checkpoint ({len(self.missing)}): {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected in checkpoint ({len(self.unexpected)}): {', '.join(self.unexpected)}")
        return "\n".join(lines)


def _file_kind(path: Path) -> str:
    """What a file that is not a PyTorch checkpoint looks like, for the error message."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head:
        return "an empty file"
    if head[4:8] == b"ftyp":
        return "an MP4/MOV video"
    if head[:4] == b"RIFF":
        return "a RIFF (AVI/WAV) file"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "a Matroska/WebM video"
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n":
        return "an image"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file of another format"
    return "a text file"


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors that name the file.

    The only place this package calls ``torch.load``. A file that is not a checkpoint (a text file, a
    video), a damaged one, or one that would need to unpickle arbitrary Python objects raises
    ``ValueError``; the message never suggests loading with ``weights_only=False``. ``mmap=True`` maps
    the tensors instead of reading them (cheap look-ups of a large checkpoint's metadata).
    """
    import warnings

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    with path.open("rb") as handle:
        head = handle.read(4)
    is_zip = head == b"PK\x03\x04"  # torch.save's format: a zip archive
    if not is_zip and head[:1] != b"\x80":  # nor a pickle (torch's legacy format)
        raise ValueError(
            f"cannot load checkpoint {str(path)!r}: it is {_file_kind(path)}, not a PyTorch checkpoint"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": noise on the console
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise ValueError(
            f"refused to load checkpoint {str(path)!r}: it holds Python objects other than tensors and "
            f"plain containers{what}, and unpickling them could run arbitrary code; only weights-only "
            "checkpoints are read (re-save the weights with torch.save(model.state_dict(), path))"
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, AttributeError) as error:
        detail = str(error).split(". ")[0].strip() or type(error).__name__
        kind = "damaged (truncated or corrupt)" if is_zip else "not a readable PyTorch checkpoint"
        raise ValueError(f"cannot load checkpoint {str(path)!r}: it is {kind}: {detail}") from None


def _is_state_dict(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) for k in value)
        and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def extract_state_dict(checkpoint: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside any of the containers listed in the module docstring."""
    if _is_state_dict(checkpoint):
        return dict(checkpoint)
    if isinstance(checkpoint, Mapping):
        for key in _STATE_DICT_KEYS:
            if _is_state_dict(checkpoint.get(key)):
                return dict(checkpoint[key])
    keys = list(checkpoint)[:10] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
    raise ValueError(
        f"{source}: no state dict found; expected a dict of tensors or one under "
        f"{', '.join(repr(k) for k in _STATE_DICT_KEYS)}, got {keys}"
    )


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def _classifier_name(model: nn.Module) -> str | None:
    """The last Linear/Conv module: the classification layer of every model built here."""
    name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            name = module_name
    return name


def _match_keys(state_dict: dict[str, torch.Tensor], model_keys: set[str], classifier: str | None):
    """Rename checkpoint keys to the model's names: wrapper prefixes, framework prefixes, mmaction head."""
    renamed = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        renamed[key] = value

    def matched(keys) -> int:
        return sum(key in model_keys for key in keys)

    # Strip a framework prefix only where it helps, since a model may have a real "model." submodule.
    for prefix in _FRAMEWORK_PREFIXES:
        candidate = {_strip(key, prefix): value for key, value in renamed.items()}
        if len(candidate) == len(renamed) and matched(candidate) > matched(renamed):
            renamed = candidate
    if classifier is not None:
        head = {k: v for k, v in renamed.items() if k.startswith(_MMACTION_HEAD)}
        for key in head:
            target = f"{classifier}.{key[len(_MMACTION_HEAD) :]}"
            if target in model_keys and target not in renamed:
                renamed[target] = renamed.pop(key)
    return renamed


def pretrained_path(model: nn.Module, name: str) -> Path:
    """Path of a published weight file (``"kinetics400"``) for a model from :func:`build_model`.

    The file must already be in the torch hub cache (``$TORCH_HOME/hub/checkpoints``, see
    ``torch.hub.get_dir()``); it is never downloaded.
    """
    from softpool_video.models.registry import MODEL_REGISTRY

    model_name = getattr(model, "model_name", None)
    spec = MODEL_REGISTRY.get(model_name)
    if spec is None:
        raise ValueError(
            f"load_pretrained: {name!r} is neither an existing file nor usable as a weight name here: "
            f"weight names need a model made by build_model (this one has model_name={model_name!r}); "
            f"pass a file path"
        )
    if name not in spec.weights:
        known = ", ".join(sorted(spec.weights)) or "none"
        raise ValueError(
            f"load_pretrained: {name!r} is neither an existing file nor a published weight name for "
            f"{model_name} (known names: {known})"
        )
    weights = spec.weights[name]
    path = Path(torch.hub.get_dir()) / "checkpoints" / weights.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained={name!r} for {model_name}: {weights.filename} is not in the torch hub cache. "
            f"Nothing is downloaded at run time: fetch {weights.url} yourself and put it at {path} "
            f"(the torch hub cache dir, torch.hub.get_dir(); set TORCH_HOME to move it), "
            f"or pass the file's path."
        )
    return path


def load_pretrained(model: nn.Module, path: str | os.PathLike, strict: bool = False) -> LoadReport:
    """Load weights from a local checkpoint into ``model`` (in place) and report what matched.

    Args:
        model: the network, e.g. from :func:`build_model`; its pools may be swapped (pools have no
            weights, so SoftPool and max/avg models load the same checkpoints).
        path: a checkpoint file in any format listed in the module docstring, or a published weight
            name such as ``"kinetics400"`` (a model from :func:`build_model` only; the file must be in
            the torch hub cache, see :func:`pretrained_path`).
        strict: raise if any model weight is missing from the checkpoint or any checkpoint tensor is
            unused (a head dropped for a different class count is allowed).

    When the checkpoint's classifier has a different number of classes than the model's, the
    classifier weights are dropped with a message (the usual fine-tuning case) and keep their fresh
    initialisation. Any other shape mismatch is an error: the checkpoint is for another architecture.

    Returns:
        A :class:`LoadReport`; it is also logged (INFO, WARNING when keys are missing or unexpected).
    """
    # Load into the network itself, not a torch.compile / DataParallel wrapper (their keys are prefixed).
    model = getattr(model, "_orig_mod", model)
    if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
        model = model.module
    path_str = os.fspath(path)
    file = Path(path_str)
    if not file.is_file():
        looks_like_path = os.sep in path_str or file.suffix != ""
        if looks_like_path:
            raise FileNotFoundError(f"load_pretrained: checkpoint {path_str!r} does not exist")
        file = pretrained_path(model, path_str)
    state_dict = extract_state_dict(read_checkpoint(file), source=str(file))

    model_state = model.state_dict()
    classifier = _classifier_name(model)
    state_dict = _match_keys(state_dict, set(model_state), classifier)
    report = LoadReport(source=str(file))

    mismatched = {k: v for k, v in state_dict.items() if k in model_state and v.shape != model_state[k].shape}
    head_keys = {k for k in mismatched if classifier is not None and k.startswith(f"{classifier}.")}
    if set(mismatched) - head_keys:
        details = ", ".join(
            f"{k}: checkpoint {tuple(mismatched[k].shape)} vs model {tuple(model_state[k].shape)}"
            for k in sorted(set(mismatched) - head_keys)
        )
        raise ValueError(
            f"load_pretrained: {file} does not fit this architecture; shape mismatch in {details}"
        )
    if head_keys:
        # Drop the whole classifier, bias included, so weight and bias stay consistent.
        report.dropped_head = sorted(k for k in state_dict if k.startswith(f"{classifier}."))
        weight = state_dict.get(f"{classifier}.weight")
        checkpoint_classes = weight.shape[0] if weight is not None else "?"
        model_classes = model_state[f"{classifier}.weight"].shape[0]
        logger.warning(
            "load_pretrained: the checkpoint's classifier %s has %s classes, the model %d: dropping %s; "
            "the head starts from its fresh initialisation (fine-tuning)",
            classifier,
            checkpoint_classes,
            model_classes,
            ", ".join(report.dropped_head),
        )
        for key in report.dropped_head:
            del state_dict[key]

    report.loaded = sorted(k for k in state_dict if k in model_state)
    report.missing = sorted(k for k in model_state if k not in state_dict and k not in report.dropped_head)
    report.unexpected = sorted(k for k in state_dict if k not in model_state)
    if not report.loaded:
        raise ValueError(
            f"load_pretrained: no tensor of {file} matches the model; checkpoint keys look like "
            f"{list(state_dict)[:5]}, model keys like {list(model_state)[:5]}"
        )
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"load_pretrained(strict=True): keys differ\n{report}")

    model.load_state_dict({k: state_dict[k] for k in report.loaded}, strict=False)
    log = logger.warning if report.missing or report.unexpected else logger.info
    log("load_pretrained: %s", report)
    return report
