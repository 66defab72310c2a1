"""Swap the pooling layers of any model: max/avg/adaptive-avg <-> SoftPool, in place.

Semantics worth knowing before comparing pooling kinds on the same network:

* SoftPool never counts padding. A window that overlaps the border is the softmax-weighted sum of
  its *real* elements only (as max pooling ignores padding). ``nn.AvgPool`` with the default
  ``count_include_pad=True`` divides by the full window size, so at the border it averages in
  zeros; swapping such a pool to SoftPool therefore changes border outputs even at a very high
  temperature (where SoftPool tends to the average of the real elements).
* SoftPool at ``temperature -> 0`` tends to max pooling, at ``temperature -> inf`` to the average of
  the window (padding excluded); ``temperature=1`` is the SoftPool paper.
* Pools created here by swapping *to* avg use ``count_include_pad=False`` so that all three kinds
  agree on what a window is; the padding of the original pool is kept as is.
* SoftPool, max and avg pooling have no parameters, so a swapped model loads the same state dict,
  unless ``learn_temperature=True``: then every new SoftPool owns a ``log_temperature`` parameter
  (one value, or one per channel with ``temperature_per_channel=True``), which the state dict holds.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from softpool_video.constants import POOL_KINDS
from softpool_video.ops import (
    AdaptiveSoftPool1d,
    AdaptiveSoftPool2d,
    AdaptiveSoftPool3d,
    SoftPool1d,
    SoftPool2d,
    SoftPool3d,
)

__all__ = [
    "MODULE_POOL_KINDS",
    "SWAP_TARGETS",
    "PoolSwap",
    "infer_pool_channels",
    "learned_temperatures",
    "pool_kind",
    "swap_pooling",
    "temperature_metrics",
]

logger = logging.getLogger(__name__)

#: What a pool can be swapped to (the ``pool`` argument): the pooling kinds of the toolkit.
SWAP_TARGETS = POOL_KINDS
#: Pool modules swap_pooling recognises (the ``kinds`` argument) and model_summary reports: each
#: kind and its adaptive form.
MODULE_POOL_KINDS = (*POOL_KINDS, *(f"adaptive_{kind}" for kind in POOL_KINDS))

# kind -> module class for 1, 2 and 3 dimensions
_CLASSES: dict[str, tuple[type[nn.Module], type[nn.Module], type[nn.Module]]] = {
    "max": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
    "avg": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
    "soft": (SoftPool1d, SoftPool2d, SoftPool3d),
    "adaptive_max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
    "adaptive_avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
    "adaptive_soft": (AdaptiveSoftPool1d, AdaptiveSoftPool2d, AdaptiveSoftPool3d),
}
_KIND_OF_CLASS = {
    cls: (kind, dims + 1) for kind, classes in _CLASSES.items() for dims, cls in enumerate(classes)
}

# Kinds swapped when `kinds` is not given: every kind other than the target, so that
# swap_pooling(model, "max") undoes swap_pooling(model, "soft") without more arguments.
_DEFAULT_KINDS = {
    "soft": ("max", "avg", "adaptive_avg"),
    "max": ("avg", "soft", "adaptive_avg", "adaptive_soft"),
    "avg": ("max", "soft", "adaptive_max", "adaptive_soft"),
}


@dataclass(frozen=True)
class PoolSwap:
    """One pooling module seen by :func:`swap_pooling`.

    ``after`` is the new kind, or ``None`` when the module was left alone; ``reason`` then says why
    (e.g. ``return_indices=True`` has no SoftPool equivalent).
    """

    name: str
    before: str
    after: str | None
    reason: str = ""

    @property
    def swapped(self) -> bool:
        return self.after is not None


def pool_kind(module: nn.Module) -> tuple[str, int] | None:
    """``(kind, dims)`` of a pooling module (kind in :data:`MODULE_POOL_KINDS`), or ``None`` otherwise."""
    return _KIND_OF_CLASS.get(type(module))


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _as_patterns(value: str | Iterable[str] | None, argument: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    patterns = tuple(value)
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"swap_pooling: {argument} must be a glob pattern or a list of them, got {value!r}")
    return patterns


def _channels_of(module: nn.Module) -> int | None:
    """The channels a layer outputs, for the layers that say so (convolutions and norms)."""
    for attribute in ("out_channels", "num_features", "num_channels"):
        value = getattr(module, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def infer_pool_channels(
    model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor] | None = None
) -> dict[str, int | None]:
    """Channel count C of the input of every pooling module of ``model`` (by module name).

    With ``example_input``, a forward pass without gradients records each pool's input ``(N, C, ...)``
    (exact; the model's training flags are restored). Without it, the structure is read: a pool takes
    the output channels of the nearest convolution or norm layer before it in module order
    (``out_channels``, ``num_features``), ``None`` when there is none. A wrong guess is not silent: a
    per-channel temperature of the wrong size raises a ``ValueError`` at the first forward.
    """
    names = [name for name, module in model.named_modules(remove_duplicate=False) if pool_kind(module)]
    if example_input is None:
        channels: dict[str, int | None] = {}
        last = None
        for name, module in model.named_modules(remove_duplicate=False):
            if pool_kind(module) is not None:
                channels[name] = last
            else:
                last = _channels_of(module) or last
        return channels

    seen: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules(remove_duplicate=False):
        found = pool_kind(module)
        if found is None:
            continue

        def record(_module, inputs, name=name, dims=found[1]):
            x = inputs[0]
            seen.setdefault(name, x.shape[1] if x.dim() == dims + 2 else x.shape[0])

        hooks.append(module.register_forward_pre_hook(record))
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes.items():
            module.training = training
    return {name: seen.get(name) for name in names}


def _replacement(
    module: nn.Module,
    kind: str,
    dims: int,
    target: str,
    temperature: float,
    learn_temperature: bool = False,
    num_channels: int | None = None,
):
    """The module that replaces ``module`` when swapping to ``target``, or a reason string if none can."""
    adaptive = kind.startswith("adaptive_")
    if getattr(module, "return_indices", False):
        return "return_indices=True (the indices have no SoftPool/avg equivalent)"
    if getattr(module, "divisor_override", None) is not None:
        return f"divisor_override={module.divisor_override} (a custom divisor has no equivalent)"
    new_kind = f"adaptive_{target}" if adaptive else target
    cls = _CLASSES[new_kind][dims - 1]
    learned = {"learn_temperature": learn_temperature, "num_channels": num_channels}
    if adaptive:
        return (
            cls(module.output_size, temperature, **learned) if target == "soft" else cls(module.output_size)
        )

    kernel_size, stride, padding = module.kernel_size, module.stride, module.padding
    # AvgPool has no dilation attribute: its windows are dense.
    dilation = getattr(module, "dilation", 1)
    ceil_mode = module.ceil_mode
    if target == "soft":
        return cls(kernel_size, stride, padding, dilation, ceil_mode, temperature, **learned)
    if target == "max":
        return cls(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)
    if dilation not in (1, (1,) * dims, [1] * dims):
        return f"dilation={dilation} (avg pooling has no dilation)"
    # count_include_pad=False: the window holds real elements only, as in max pooling and SoftPool
    return cls(kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)


def swap_pooling(
    model: nn.Module,
    pool: str = "soft",
    kinds: Sequence[str] | None = None,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    temperature: float = 1.0,
    report: list[PoolSwap] | None = None,
    learn_temperature: bool = False,
    temperature_per_channel: bool = False,
    example_input: torch.Tensor | Sequence[torch.Tensor] | None = None,
) -> nn.Module:
    """Replace the pooling modules of ``model`` in place and return ``model``.

    Each selected ``nn.MaxPool{1,2,3}d`` / ``nn.AvgPool{1,2,3}d`` / ``SoftPool{1,2,3}d`` becomes the
    ``pool`` kind with the same kernel_size, stride, padding, dilation and ceil_mode, and each
    adaptive pool becomes the adaptive ``pool`` kind with the same output_size. Shapes are unchanged:
    a pool mapping ``(N, C, T, H, W)`` to ``(N, C, T', H', W')`` still does after the swap.

    Args:
        model: any ``nn.Module``; modified in place.
        pool: the kind to swap to: ``"soft"``, ``"max"`` or ``"avg"``.
        kinds: which existing kinds to replace, from ``"max"``, ``"avg"``, ``"soft"``, ``"adaptive_max"``,
            ``"adaptive_avg"``, ``"adaptive_soft"``. ``None`` means every other kind: for
            ``pool="soft"`` that is ``("max", "avg", "adaptive_avg")``; for ``"max"``/``"avg"`` it
            includes the SoftPool kinds, so the same call undoes an earlier swap to SoftPool.
        include: glob pattern(s) on module names (``"blocks.0.*"``, ``"avgpool"``); only matching
            pools are swapped. ``None`` selects every pool.
        exclude: glob pattern(s) of pools never swapped; wins over ``include``.
        temperature: temperature of the new SoftPool modules (ignored for max/avg); with
            ``learn_temperature`` the initial value.
        learn_temperature: the new SoftPool modules learn their temperature (a ``log_temperature``
            parameter each; see :class:`softpool_video.SoftPool3d`).
        temperature_per_channel: with ``learn_temperature``, one temperature per channel. The channel
            count of each pool is inferred by :func:`infer_pool_channels` (from ``example_input`` if
            given, else from the nearest convolution/norm before the pool); a pool whose count cannot
            be inferred raises ``ValueError`` naming it.
        example_input: an input of ``model`` for an exact channel inference (one forward pass).
        report: if given, one :class:`PoolSwap` per selected pool is appended: the swapped ones and
            those left alone with the reason (``return_indices=True``, ``divisor_override``, a
            dilated pool swapped to avg).

    Swapped names are also logged at INFO level, pools left alone at WARNING level. Pools already of
    the target kind are neither swapped nor reported. See the module docstring for the semantic
    differences between the kinds (SoftPool never counts padding; avg pooling may).
    """
    if pool not in SWAP_TARGETS:
        raise ValueError(f"swap_pooling: pool must be one of {SWAP_TARGETS}, got {pool!r}")
    if kinds is None:
        kinds = _DEFAULT_KINDS[pool]
    elif isinstance(kinds, str):
        kinds = (kinds,)
    unknown = [kind for kind in kinds if kind not in MODULE_POOL_KINDS]
    if unknown:
        raise ValueError(f"swap_pooling: kinds must be taken from {MODULE_POOL_KINDS}, got unknown {unknown}")
    if temperature_per_channel and not learn_temperature:
        raise ValueError("swap_pooling: temperature_per_channel=True needs learn_temperature=True")
    include_patterns = _as_patterns(include, "include")
    exclude_patterns = _as_patterns(exclude, "exclude") or ()

    # Collect first, then replace: replacing while iterating named_modules would mutate the dict it walks.
    selected: list[tuple[str, nn.Module, str, int]] = []
    for name, module in model.named_modules(remove_duplicate=False):
        found = pool_kind(module)
        if found is None or not name:
            continue
        kind, dims = found
        if kind not in kinds or kind in (pool, f"adaptive_{pool}"):
            continue
        if include_patterns is not None and not _matches(name, include_patterns):
            continue
        if _matches(name, exclude_patterns):
            continue
        selected.append((name, module, kind, dims))

    if include_patterns:
        pool_names = [name for name, module in model.named_modules() if pool_kind(module) is not None]
        for pattern in include_patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in pool_names):
                logger.warning("swap_pooling: include pattern %r matches no pooling module", pattern)

    channels: dict[str, int | None] = {}
    if pool == "soft" and temperature_per_channel and selected:
        channels = infer_pool_channels(model, example_input)
        unknown_channels = [name for name, *_ in selected if channels.get(name) is None]
        if unknown_channels:
            raise ValueError(
                f"swap_pooling: cannot infer the channel count of pool {unknown_channels[0]!r} "
                "(no convolution or norm layer before it, or it did not run); pass example_input=... "
                "or use temperature_per_channel=False (one temperature per pool)"
            )

    records = []
    for name, module, kind, dims in selected:
        learned = pool == "soft" and learn_temperature
        new = _replacement(module, kind, dims, pool, temperature, learned, channels.get(name))
        if isinstance(new, str):
            records.append(PoolSwap(name, kind, None, new))
            logger.warning("swap_pooling: left %s (%s) alone: %s", name, type(module).__name__, new)
            continue
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        # Works for attributes, nn.Sequential and nn.ModuleList alike: all keep children in _modules.
        setattr(parent, child_name, new)
        records.append(PoolSwap(name, kind, pool_kind(new)[0]))

    swapped = [r.name for r in records if r.swapped]
    if swapped:
        logger.info("swap_pooling: %d pool(s) -> %s: %s", len(swapped), pool, ", ".join(swapped))
    if report is not None:
        report.extend(records)
    return model


def learned_temperatures(model: nn.Module) -> dict[str, list[float]]:
    """Current temperatures of the SoftPools of ``model`` that learn theirs, by module name (one value,
    or one per channel); empty if none learns. Used to log them during training."""
    return {
        name: module.temperature.detach().float().cpu().reshape(-1).tolist()
        for name, module in model.named_modules()
        if getattr(module, "learn_temperature", False) is True and pool_kind(module) is not None
    }


def temperature_metrics(model: nn.Module, per_channel: bool = False) -> dict[str, float | list[float]]:
    """Epoch metrics of the learned temperatures: ``temperature/<layer>`` (the mean over channels, a
    number for CSV and TensorBoard) and, with ``per_channel``, ``temperatures/<layer>`` (every value)
    for the layers that learn one per channel."""
    metrics: dict[str, float | list[float]] = {}
    for name, values in learned_temperatures(model).items():
        metrics[f"temperature/{name}"] = sum(values) / len(values)
        if per_channel and len(values) > 1:
            metrics[f"temperatures/{name}"] = values
    return metrics
