"""Optimizer and LR-schedule builders."""

import math

import pytest
import torch
from torch import nn

from softpool_video.train.optim import build_optimizer, build_scheduler


def _model():
    return nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Flatten(), nn.Linear(4, 2))


def _lrs(scheduler, steps):
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_cosine_with_linear_warmup_values():
    opt = build_optimizer(_model(), {"name": "sgd", "lr": 1.0, "weight_decay": 0.0})
    sched = build_scheduler(
        opt, {"name": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.0, "min_lr_factor": 0.1}, 4, 3
    )
    lrs = _lrs(sched, 13)
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])  # warmup over 4 steps
    # cosine over the remaining 8 steps from 1.0 down to 0.1
    assert lrs[8] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert lrs[12] == pytest.approx(0.1)


def test_multistep_milestones_in_epochs():
    opt = build_optimizer(_model(), {"name": "sgd", "lr": 1.0})
    sched = build_scheduler(
        opt, {"name": "multistep", "warmup_epochs": 0, "milestones": [1, 2], "gamma": 0.1}, 2, 3
    )
    assert _lrs(sched, 6) == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])


def test_no_weight_decay_on_norms_and_biases():
    model = _model()
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05})
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert len(plain["params"]) == 4  # conv bias, BN weight and bias, linear bias


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="optim.name must be one of sgd, adamw, got 'adam'"):
        build_optimizer(_model(), {"name": "adam", "lr": 0.1})
    opt = build_optimizer(_model(), {"name": "sgd", "lr": 0.1})
    with pytest.raises(ValueError, match="schedule.name must be one of cosine, multistep"):
        build_scheduler(opt, {"name": "linear"}, 10, 1)
