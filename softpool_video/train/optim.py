"""Optimizers (``optim/``: sgd, adamw) and learning-rate schedules (``schedule/``: cosine, multistep).

Schedules are stepped once per optimizer step (not per epoch), so warmup is smooth and a run resumed
mid-epoch lands on the same learning rate. Durations in the configs are in epochs (fractions allowed)
and converted to steps here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "CosineWithWarmup",
    "MultiStepWithWarmup",
    "build_optimizer",
    "build_scheduler",
    "parameter_groups",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")

# Parameters of these layers get no weight decay: decaying a norm's scale/shift only hurts.
_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def parameter_groups(model: nn.Module, weight_decay: float, no_decay_norm_and_bias: bool) -> list[dict]:
    """Split trainable parameters into a decayed group and a non-decayed one (norm layers and biases)."""
    if not no_decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, _NORM_TYPES) or name.endswith("bias") or param.ndim <= 1:
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, optim_cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``optim_cfg``: ``name`` (sgd | adamw), ``lr``, ``weight_decay``, ``no_decay_norm_and_bias`` and
    the optimizer's own keys (sgd: ``momentum``, ``nesterov``; adamw: ``betas``, ``eps``)."""
    name = optim_cfg.get("name")
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    lr = float(optim_cfg["lr"])
    if not lr > 0:
        raise ValueError(f"optim.lr must be > 0, got {lr}")
    groups = parameter_groups(
        model, float(optim_cfg.get("weight_decay", 0.0)), bool(optim_cfg.get("no_decay_norm_and_bias", True))
    )
    if name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=lr,
            momentum=float(optim_cfg.get("momentum", 0.9)),
            nesterov=bool(optim_cfg.get("nesterov", False)),
        )
    return torch.optim.AdamW(
        groups,
        lr=lr,
        betas=tuple(optim_cfg.get("betas", (0.9, 0.999))),
        eps=float(optim_cfg.get("eps", 1e-8)),
    )


class CosineWithWarmup:
    """LR multiplier: linear from ``warmup_start_factor`` to 1 over ``warmup_steps``, then cosine to
    ``min_lr_factor`` at ``total_steps``.

    A small class rather than a closure: ``LambdaLR.state_dict`` stores its ``__dict__`` (plain numbers),
    which keeps checkpoints ``weights_only``-loadable.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_factor: float, warmup_start_factor: float):
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.min_lr_factor = float(min_lr_factor)
        self.warmup_start_factor = float(warmup_start_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * step / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr_factor + (1.0 - self.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class MultiStepWithWarmup:
    """LR multiplier: linear warmup, then ``gamma ** (number of milestones passed)``."""

    def __init__(
        self, warmup_steps: int, milestones: Sequence[int], gamma: float, warmup_start_factor: float
    ):
        self.warmup_steps = int(warmup_steps)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.warmup_start_factor = float(warmup_start_factor)

    def __call__(self, step: int) -> float:
        factor = self.gamma ** sum(step >= m for m in self.milestones)
        if step < self.warmup_steps:
            factor *= self.warmup_start_factor + (1.0 - self.warmup_start_factor) * step / self.warmup_steps
        return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule_cfg: Mapping[str, Any], steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``schedule_cfg``: ``name`` (cosine | multistep | constant), ``warmup_epochs``,
    ``warmup_start_factor``; cosine: ``min_lr_factor``; multistep: ``milestones`` (epochs), ``gamma``."""
    name = schedule_cfg.get("name")
    if name not in SCHEDULES:
        raise ValueError(f"schedule.name must be one of {', '.join(SCHEDULES)}, got {name!r}")
    steps_per_epoch = max(int(steps_per_epoch), 1)
    warmup_steps = round(float(schedule_cfg.get("warmup_epochs", 0.0)) * steps_per_epoch)
    start = float(schedule_cfg.get("warmup_start_factor", 0.01))
    if name == "cosine":
        multiplier = CosineWithWarmup(
            warmup_steps, epochs * steps_per_epoch, float(schedule_cfg.get("min_lr_factor", 0.0)), start
        )
    elif name == "multistep":
        milestones = [round(float(m) * steps_per_epoch) for m in schedule_cfg.get("milestones", [])]
        multiplier = MultiStepWithWarmup(
            warmup_steps, milestones, float(schedule_cfg.get("gamma", 0.1)), start
        )
    else:
        multiplier = MultiStepWithWarmup(warmup_steps, [], 1.0, start)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
