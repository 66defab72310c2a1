"""Model registry: config names -> builders, and :func:`build_model`, the one way models are made.

A builder is a plain function ``builder(*, num_classes, num_frames, crop_size, **kwargs)`` that
returns a :class:`BuiltModel`: the network with its *original* pools (max in stems, avg in heads)
and the glob patterns naming its stem and head pools. :func:`build_model` then swaps the pools
chosen by ``pooling``/``where`` and loads weights, so every builder gets the same behaviour.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

from softpool_video.constants import POOLING_CHOICES as _POOLING_CHOICES
from softpool_video.models.inputs import example_input
from softpool_video.models.swap import PoolSwap, swap_pooling

__all__ = [
    "MODEL_REGISTRY",
    "POOLING_CHOICES",
    "WHERE_CHOICES",
    "BuiltModel",
    "MissingDependencyError",
    "ModelSpec",
    "WeightsFile",
    "build_model",
    "build_model_from_config",
    "list_models",
    "missing_dependencies",
    "register_model",
]

logger = logging.getLogger(__name__)

#: ``pooling`` values: the kind the selected pools become; "original" keeps the library's pools.
POOLING_CHOICES = _POOLING_CHOICES
#: ``where`` values: which pools ``pooling`` applies to.
WHERE_CHOICES = ("stem", "head", "all", "none")


class MissingDependencyError(ImportError):
    """A model needs an optional package that is not installed; the message says how to install it."""


class BuiltModel(NamedTuple):
    """What a builder returns.

    ``stem_pools`` / ``head_pools`` are glob patterns on module names (``where="stem"``/``"head"``);
    ``where="all"`` selects every pooling module except those matching ``keep_pools`` (e.g. the
    averaging of class scores after a pytorchvideo head's projection, which is not feature pooling).
    """

    model: nn.Module
    stem_pools: tuple[str, ...] = ()
    head_pools: tuple[str, ...] = ()
    keep_pools: tuple[str, ...] = ()


@dataclass(frozen=True)
class WeightsFile:
    """A published checkpoint that ``pretrained="<name>"`` finds in the torch hub cache (never downloaded)."""

    filename: str
    url: str
    num_classes: int


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder and the clip it is designed for."""

    name: str
    builder: Callable[..., BuiltModel]
    num_frames: int
    crop_size: int
    alpha: int | None = None
    weights: Mapping[str, WeightsFile] = field(default_factory=dict)
    description: str = ""
    #: optional packages the builder imports, each installed by the extra of the same name
    #: (``pip install 'softpool_video[pytorchvideo]'``)
    requires: tuple[str, ...] = ()


#: name -> ModelSpec; filled by :func:`register_model`.
MODEL_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    num_frames: int,
    crop_size: int,
    alpha: int | None = None,
    weights: Mapping[str, WeightsFile] | None = None,
    description: str = "",
    requires: tuple[str, ...] = (),
) -> Callable[[Callable[..., BuiltModel]], Callable[..., BuiltModel]]:
    """Decorator registering ``builder`` under ``name`` with its default clip size.

    ``alpha`` (SlowFast only) is the fast/slow frame-rate ratio: the model then takes
    ``[slow (N, 3, T / alpha, H, W), fast (N, 3, T, H, W)]``. ``requires`` names optional packages
    the builder imports (checked by :func:`build_model` before building).
    """

    def decorator(builder: Callable[..., BuiltModel]) -> Callable[..., BuiltModel]:
        if name in MODEL_REGISTRY:
            raise ValueError(f"register_model: a model named {name!r} is already registered")
        MODEL_REGISTRY[name] = ModelSpec(
            name,
            builder,
            num_frames,
            crop_size,
            alpha,
            dict(weights or {}),
            description or (builder.__doc__ or ""),
            tuple(requires),
        )
        return builder

    return decorator


def list_models() -> list[str]:
    """Sorted names accepted by :func:`build_model`."""
    return sorted(MODEL_REGISTRY)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import, or a module blocked in sys.modules
        return False


def missing_dependencies(name: str) -> list[str]:
    """The optional packages model ``name`` needs that are not installed (``[]``: it can be built)."""
    return [module for module in get_model_spec(name).requires if not _importable(module)]


def require_dependencies(name: str) -> None:
    """Raise :class:`MissingDependencyError` unless model ``name``'s optional packages are installed."""
    missing = missing_dependencies(name)
    if missing:
        extras = ",".join(missing)
        raise MissingDependencyError(
            f"model {name!r} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: pip install 'softpool_video[{extras}]'"
        )


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return MODEL_REGISTRY[name]


def _positive_int(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"build_model: {argument} must be a positive int, got {value!r}")
    return value


def build_model(
    name: str,
    num_classes: int,
    pooling: str = "soft",
    where: str = "all",
    num_frames: int | None = None,
    crop_size: int | None = None,
    pretrained: str | None = None,
    temperature: float = 1.0,
    swap_report: list[PoolSwap] | None = None,
    learn_temperature: bool = False,
    temperature_per_channel: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered video classifier, pools swapped and weights loaded.

    Args:
        name: a name from :func:`list_models`.
        num_classes: size of the logits.
        pooling: ``"soft"``, ``"max"`` or ``"avg"``: the kind the pools selected by ``where`` become;
            ``"original"`` keeps the library's pools (max in stems, avg in heads).
        where: ``"stem"``, ``"head"``, ``"all"`` (stem, head and any pool in between, e.g. S3D's
            Inception max pools) or ``"none"``.
        num_frames: frames T of the input clip (the fast pathway's for SlowFast); default: the
            model's. Head pools are adaptive, so other clip sizes work too; this is the size the
            model is designed for and :func:`model_summary` measures.
        crop_size: side of the square crop H = W; default: the model's.
        pretrained: a checkpoint path or a published weight name such as ``"kinetics400"`` (looked
            up in the torch hub cache, never downloaded); see :func:`load_pretrained`.
        temperature: SoftPool temperature of the swapped pools (the initial one if learned).
        learn_temperature: the swapped SoftPools learn their temperature (``log_temperature``).
        temperature_per_channel: one learned temperature per channel; the channel counts come from
            one forward pass of a random clip of the model's size (see :func:`infer_pool_channels`).
        swap_report: if given, receives one :class:`PoolSwap` per pool touched (see :func:`swap_pooling`).
        **kwargs: model options, e.g. ``alpha`` (SlowFast), ``stem_pool=True`` (add a stem pool to
            models without one), ``dropout_rate``.

    Raises:
        MissingDependencyError: the model needs an optional package that is not installed (the
            pytorchvideo models: ``pip install 'softpool_video[pytorchvideo]'``).

    Returns:
        The model in training mode. ``model(x)`` gives logits ``(N, num_classes)`` for ``x`` of shape
        ``(N, 3, T, H, W)``; SlowFast models take ``[slow (N, 3, T / alpha, H, W), fast (N, 3, T, H, W)]``
        (see :func:`softpool_video.models.model_input`). Attributes: ``model_name``, ``num_frames``,
        ``crop_size`` and ``pathway_alpha`` (the SlowFast alpha, ``None`` for single-tensor models).
    """
    spec = get_model_spec(name)
    num_classes = _positive_int(num_classes, "num_classes")
    if pooling not in POOLING_CHOICES:
        raise ValueError(f"build_model: pooling must be one of {POOLING_CHOICES}, got {pooling!r}")
    if where not in WHERE_CHOICES:
        raise ValueError(f"build_model: where must be one of {WHERE_CHOICES}, got {where!r}")
    num_frames = _positive_int(spec.num_frames if num_frames is None else num_frames, "num_frames")
    crop_size = _positive_int(spec.crop_size if crop_size is None else crop_size, "crop_size")
    if spec.alpha is None and kwargs.get("alpha") is not None:
        raise ValueError(f"build_model: alpha applies to SlowFast models only, not {name!r}")

    require_dependencies(name)
    built = spec.builder(num_classes=num_classes, num_frames=num_frames, crop_size=crop_size, **kwargs)
    model = built.model
    model.model_name = name
    model.num_frames = num_frames
    model.crop_size = crop_size
    if not hasattr(model, "pathway_alpha"):
        model.pathway_alpha = None

    if pooling != "original" and where != "none":
        include = {"stem": built.stem_pools, "head": built.head_pools, "all": None}[where]
        if include == ():
            logger.warning(
                "build_model: %s has no %s pool, so where=%r swaps nothing%s",
                name,
                where,
                where,
                " (stem_pool=True adds one)" if where == "stem" else "",
            )
        else:
            swap_pooling(
                model,
                pool=pooling,
                include=include,
                exclude=built.keep_pools,
                temperature=temperature,
                report=swap_report,
                learn_temperature=learn_temperature,
                temperature_per_channel=temperature_per_channel,
                example_input=example_input(model) if temperature_per_channel else None,
            )

    if pretrained is not None:
        from softpool_video.models.pretrained import load_pretrained

        load_pretrained(model, pretrained)
    return model


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A Hydra/OmegaConf node or mapping as plain containers (builders expect lists, not ListConfig)."""
    try:
        from omegaconf import OmegaConf
    except ImportError:  # configs are plain dicts without Hydra
        return dict(cfg)
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)


def build_model_from_config(
    model_cfg: Mapping[str, Any],
    num_classes: int,
    pooling_cfg: Mapping[str, Any] | None = None,
    pretrained: str | None = None,
    swap_report: list[PoolSwap] | None = None,
) -> nn.Module:
    """:func:`build_model` from the ``model`` and ``pooling`` config groups (conf/model, conf/pooling).

    ``model_cfg`` holds ``name``, ``num_frames``, ``crop_size``, ``alpha`` (null unless SlowFast),
    optional ``pretrained`` and ``kwargs`` (model options); ``pooling_cfg`` holds ``pool``, ``where``,
    ``temperature`` and optionally ``learn_temperature`` and ``temperature_per_channel`` (default:
    SoftPool everywhere, fixed temperature). ``pretrained`` overrides the config's.
    """
    model_cfg = _plain(model_cfg)
    pooling_cfg = _plain(pooling_cfg or {"pool": "soft", "where": "all", "temperature": 1.0})
    kwargs = dict(model_cfg.get("kwargs") or {})
    if model_cfg.get("alpha") is not None:
        kwargs["alpha"] = model_cfg["alpha"]
    return build_model(
        model_cfg["name"],
        num_classes,
        pooling=pooling_cfg.get("pool", "soft"),
        where=pooling_cfg.get("where", "all"),
        num_frames=model_cfg.get("num_frames"),
        crop_size=model_cfg.get("crop_size"),
        pretrained=pretrained if pretrained is not None else model_cfg.get("pretrained"),
        temperature=float(pooling_cfg.get("temperature", 1.0)),
        swap_report=swap_report,
        learn_temperature=bool(pooling_cfg.get("learn_temperature", False)),
        temperature_per_channel=bool(pooling_cfg.get("temperature_per_channel", False)),
        **kwargs,
    )
