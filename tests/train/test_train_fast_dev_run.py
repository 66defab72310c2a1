"""fast_dev_run: one train and one val batch of every registered model on the synthetic set."""

from __future__ import annotations

import math

import pytest

from softpool_video.models import list_models
from softpool_video.models.registry import get_model_spec
from softpool_video.train.trainer import train

FAST = {"r2plus1d_tiny"}  # the others are full-size backbones: seconds to a minute per step on a CPU


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]
)
def test_fast_dev_run(make_config, name):
    alpha = get_model_spec(name).alpha
    result = train(
        make_config(
            f"model={name}",
            "model.pretrained=null",
            f"model.alpha={alpha if alpha is not None else 'null'}",
            "++data.batch_size=2",
            "trainer.fast_dev_run=1",
            drop=("model=", "++model.kwargs"),  # the tiny model's options do not apply to the others
        )
    )
    assert result.epochs_completed == 1 and result.step == 1
    (row,) = result.history
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
    assert 0.0 <= row["val_video_top1"] <= 100.0
    # fast_dev_run writes no checkpoint and no metrics, only the resolved config and the log
    assert result.last_checkpoint is None and result.best_checkpoint is None
    assert sorted(p.name for p in result.run_dir.iterdir()) == ["config.yaml", "train.log"]


def test_fast_dev_run_n_batches(make_config):
    result = train(make_config("trainer.fast_dev_run=3", "trainer.epochs=5"))
    assert result.epochs_completed == 1 and result.step == 3
