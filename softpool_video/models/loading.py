"""Models ready for inference: from a ``softpool-train`` checkpoint, or from foreign weights.

Both return the same triple, ``(model, config, class_names)``, so the predictor and the
visualisations treat a trained run and a downloaded Kinetics checkpoint alike::

    model, config, names = load_model_from_checkpoint("runs/<run>/checkpoints/best.pt")
    model, config, names = load_foreign_model("r3d_18", "r3d_18-b3b3357e.pth", "kinetics400.txt",
                                              pooling="soft")

``config["data"]`` holds the test-time clip settings (frames, sampling rate, short-side scale,
crop, mean/std, clips x crops). For foreign weights they come from :data:`INFERENCE_DEFAULTS`, the
one table of each registered model's published test recipe, and any of them can be overridden.

This module sits below ``train`` and ``predict``: it imports neither. Checkpoints are read with
``weights_only=True`` (through :func:`softpool_video.models.pretrained.read_checkpoint`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT_VERSION",
    "INFERENCE_DEFAULTS",
    "REQUIRED_KEYS",
    "CheckpointError",
    "InferenceDefaults",
    "inference_data_config",
    "load_checkpoint",
    "load_foreign_model",
    "load_model_from_checkpoint",
    "read_labels",
]

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "config", "class_names", "num_classes")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not one of ours (exit status 1 in the tools)."""


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
    from softpool_video.models.registry import build_model_from_config

    if state is None:
        state = load_checkpoint(path, map_location="cpu")
    config = state["config"]
    class_names = list(state["class_names"])
    name = (config.get("model") or {}).get("name") if isinstance(config, dict) else None
    try:
        model_cfg = dict(config["model"])
        model_cfg["pretrained"] = None  # the weights come from the checkpoint
        model = build_model_from_config(model_cfg, int(state["num_classes"]), config.get("pooling"))
    except (ValueError, ImportError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"checkpoint {path}: its config does not build a model (model.name={name!r}): "
            f"{' '.join(str(error).split())}"
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


# ---------------------------------------------------------------------------------------------
# Foreign weights: a registered backbone + a pytorchvideo / torchvision / PySlowFast / mmaction2
# checkpoint + a label file


@dataclass(frozen=True)
class InferenceDefaults:
    """The test-time recipe a model's published weights were evaluated with.

    ``num_frames``/``crop_size``: ``None`` takes the registry's (:class:`ModelSpec`); the clip is
    ``num_frames`` frames every ``sampling_rate`` frames, the short side scaled to ``test_scale``,
    then ``num_crops`` crops of ``crop_size``; ``mean``/``std`` normalise RGB in [0, 1].
    """

    sampling_rate: int
    test_scale: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_frames: int | None = None
    crop_size: int | None = None
    num_clips: int = 1
    num_crops: int = 1


_KINETICS_MEAN, _KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # pytorchvideo / PySlowFast
_TORCHVISION_MEAN, _TORCHVISION_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)

#: Registered model -> its published test recipe (pytorchvideo's model zoo and torchvision's
#: ``VideoClassification`` transforms); ``softpool-predict model=NAME`` starts from these, and
#: every entry can be overridden (``num_frames=``, ``sampling_rate=``, ``crop_size=``, ...).
INFERENCE_DEFAULTS: dict[str, InferenceDefaults] = {
    # torchvision: 16 consecutive frames at 15 fps (every 2nd of a 30 fps video), resized to 128x171
    "r3d_18": InferenceDefaults(2, 128, _TORCHVISION_MEAN, _TORCHVISION_STD),
    "r2plus1d_18": InferenceDefaults(2, 128, _TORCHVISION_MEAN, _TORCHVISION_STD),
    "s3d": InferenceDefaults(2, 256, _TORCHVISION_MEAN, _TORCHVISION_STD),
    # pytorchvideo model zoo (Kinetics-400), short side = crop
    "slowfast_r50": InferenceDefaults(2, 256, _KINETICS_MEAN, _KINETICS_STD, crop_size=256),
    "slowfast_r101": InferenceDefaults(2, 256, _KINETICS_MEAN, _KINETICS_STD, crop_size=256),
    "r2plus1d_r50": InferenceDefaults(4, 256, _KINETICS_MEAN, _KINETICS_STD),
    "x3d_xs": InferenceDefaults(12, 182, _KINETICS_MEAN, _KINETICS_STD, crop_size=182),
    "x3d_s": InferenceDefaults(6, 182, _KINETICS_MEAN, _KINETICS_STD, crop_size=182),
    "x3d_m": InferenceDefaults(5, 256, _KINETICS_MEAN, _KINETICS_STD, crop_size=256),
    # this project's small model (no published weights; a checkpoint of it, e.g. exported weights)
    "r2plus1d_tiny": InferenceDefaults(2, 64, _KINETICS_MEAN, _KINETICS_STD),
}


def inference_data_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The ``data`` section (keys of ``conf/data``) for model ``name``'s test recipe, with ``overrides``
    (``num_frames``, ``sampling_rate``, ``test_scale``, ``crop_size``, ``mean``, ``std``, ``num_clips``,
    ``num_crops``; ``None`` values are ignored)."""
    from softpool_video.models.registry import get_model_spec

    spec = get_model_spec(name)
    defaults = INFERENCE_DEFAULTS.get(name) or InferenceDefaults(
        8, spec.crop_size, _KINETICS_MEAN, _KINETICS_STD
    )
    unknown = set(overrides) - {
        "num_frames", "sampling_rate", "test_scale", "crop_size", "mean", "std", "num_clips", "num_crops",
    }  # fmt: skip
    if unknown:
        raise ValueError(f"inference_data_config: unknown settings {sorted(unknown)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    crop = int(given.get("crop_size", defaults.crop_size or spec.crop_size))
    data = {
        "num_frames": int(given.get("num_frames", defaults.num_frames or spec.num_frames)),
        "sampling_rate": int(given.get("sampling_rate", defaults.sampling_rate)),
        "target_fps": None,
        "test_crop_size": crop,
        # a crop larger than the default scale (crop_size= overridden) scales the short side to it
        "test_scale": int(given.get("test_scale", max(defaults.test_scale, crop))),
        "mean": [float(v) for v in given.get("mean", defaults.mean)],
        "std": [float(v) for v in given.get("std", defaults.std)],
        "num_clips": int(given.get("num_clips", defaults.num_clips)),
        "num_crops": int(given.get("num_crops", defaults.num_crops)),
        "decoder": "pyav",
        "alpha": spec.alpha,
    }
    for key in ("mean", "std"):
        if len(data[key]) != 3 or (key == "std" and min(data[key]) <= 0):
            raise ValueError(
                f"{key} must be 3 numbers (R, G, B){' > 0' if key == 'std' else ''}, got {data[key]}"
            )
    return data


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names from a label file, index = class.

    Accepted: a text file with one class per line (blank lines and ``#`` comments skipped); a JSON
    list of names; a JSON object mapping names to indices (``{"abseiling": 0, ...}``, as the
    Kinetics files of PySlowFast/pytorchvideo) or indices to names (``{"0": "abseiling"}``).

    Raises:
        ValueError: naming the file, when it is unreadable, empty, or its indices are not 0..N-1.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"labels={path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"labels={path}: cannot read it as text ({type(error).__name__})") from None
    stripped = text.strip()
    if stripped[:1] in "[{" and stripped:
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise ValueError(f"labels={path}: not valid JSON ({error.msg} at line {error.lineno})") from None
        names = _names_from_json(document, path)
    else:
        names = [line.strip() for line in text.splitlines()]
        names = [name for name in names if name and not name.startswith("#")]
    if not names:
        raise ValueError(f"labels={path}: holds no class names")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"labels={path}: class names repeated: {', '.join(duplicates[:5])}")
    return names


def _names_from_json(document: Any, path: Path) -> list[str]:
    if isinstance(document, list):
        return [str(name).strip() for name in document]
    if not isinstance(document, Mapping):
        raise ValueError(f"labels={path}: expected a JSON list or object, got {type(document).__name__}")
    values, keys = list(document.values()), list(document.keys())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        by_index = {int(v): str(k).strip() for k, v in document.items()}
    elif all(str(k).strip().lstrip("-").isdigit() for k in keys):
        by_index = {int(k): str(v).strip() for k, v in document.items()}
    else:
        raise ValueError(f"labels={path}: a JSON object must map names to indices or indices to names")
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError(f"labels={path}: class indices must be 0..{len(by_index) - 1} without gaps")
    return [by_index[index] for index in range(len(by_index))]


def load_foreign_model(
    name: str,
    weights: str | os.PathLike,
    labels: str | os.PathLike | list[str],
    pooling: str = "original",
    where: str = "all",
    temperature: float = 1.0,
    device: str | torch.device = "cpu",
    **data_overrides: Any,
) -> tuple[torch.nn.Module, dict[str, Any], list[str]]:
    """A registered backbone with weights from another codebase, ready for inference.

    Args:
        name: a registered model (``softpool_video.models.list_models()``).
        weights: a local checkpoint in any format :func:`load_pretrained` reads (pytorchvideo and
            PySlowFast ``{"model_state": ...}``, a torchvision state dict, mmaction2
            ``{"state_dict": {"backbone.*", "cls_head.fc_cls.*"}}``, Lightning, DDP-prefixed keys).
        labels: a label file (see :func:`read_labels`) or the list of class names; its length
            must be the checkpoint classifier's.
        pooling: ``original`` keeps the model's pools; ``soft``/``max``/``avg`` swaps those chosen
            by ``where`` after the weights are in (pools have no weights to load, so this is how
            SoftPool is tried on a pretrained backbone without retraining).
        data_overrides: test-time settings replacing :data:`INFERENCE_DEFAULTS` (see
            :func:`inference_data_config`).

    Returns:
        ``(model, config, class_names)`` like :func:`load_model_from_checkpoint`; ``config`` holds
        ``model``, ``pooling``, ``data`` and ``weights``.

    Raises:
        CheckpointError: the weights file is unreadable or does not fit the model or the labels.
        ValueError: an unknown model, a bad label file or setting (the message names it).
    """
    from softpool_video.models.pretrained import load_pretrained
    from softpool_video.models.registry import build_model, get_model_spec
    from softpool_video.models.swap import pool_kind

    get_model_spec(name)  # unknown names: the registry's message
    class_names = list(labels) if isinstance(labels, list) else read_labels(labels)
    data = inference_data_config(name, **data_overrides)
    if not Path(weights).is_file():
        raise CheckpointError(f"weights={weights}: no such file")
    model = build_model(
        name,
        num_classes=len(class_names),
        pooling=pooling,
        where=where,
        num_frames=data["num_frames"],
        crop_size=data["test_crop_size"],
        temperature=temperature,
    )
    try:
        report = load_pretrained(model, weights)
    except ValueError as error:
        raise CheckpointError(f"weights={weights}: {' '.join(str(error).split())}") from None
    if report.dropped_head:
        classes = _classifier_rows(weights)
        raise CheckpointError(
            f"labels={labels if not isinstance(labels, list) else 'list'} names {len(class_names)} classes "
            f"but the classifier of weights={weights} has {classes}: give the label file it was trained with"
        )
    # a swapped pool may hold its own parameters (a learnable temperature): those are not in a
    # foreign checkpoint; every other weight must be
    pool_names = {n for n, module in model.named_modules() if pool_kind(module) is not None}
    missing = [key for key in report.missing if key.rsplit(".", 1)[0] not in pool_names]
    if missing:
        raise CheckpointError(
            f"weights={weights} does not hold {len(missing)} of the weights of {name} "
            f"(e.g. {', '.join(missing[:3])}): is it a checkpoint of another architecture?"
        )
    config = {
        "model": {"name": name, "num_frames": data["num_frames"], "crop_size": data["test_crop_size"]},
        "pooling": {"pool": pooling, "where": where, "temperature": temperature},
        "data": data,
        "weights": str(weights),
    }
    return model.to(device).eval(), config, class_names


def _classifier_rows(weights: str | os.PathLike) -> str:
    """The class count of a checkpoint's last 2-D weight (its classifier), for messages."""
    from softpool_video.models.pretrained import extract_state_dict, read_checkpoint

    try:
        state = extract_state_dict(read_checkpoint(weights))
    except (ValueError, OSError):
        return "another number of classes"
    rows = [tensor.shape[0] for key, tensor in state.items() if key.endswith("weight") and tensor.dim() == 2]
    return f"{rows[-1]} classes" if rows else "another number of classes"
