"""Exact resume: an interrupted, resumed run ends with the weights and metrics of an uninterrupted one."""

from __future__ import annotations

import csv

import pytest
import torch

from softpool_video.train.checkpoint import load_checkpoint
from softpool_video.train.trainer import TIMING_COLUMNS, Trainer, train


def _stop_after_epoch(monkeypatch, epochs_done: int) -> None:
    """Behave as if SIGTERM arrived while epoch ``epochs_done`` was being logged."""
    original = Trainer._log_epoch

    def log_then_stop(self, row):
        original(self, row)
        if row["epoch"] + 1 == epochs_done:
            self.stop.signal_name = "SIGTERM"

    monkeypatch.setattr(Trainer, "_log_epoch", log_then_stop)


def _stop_at_step(monkeypatch, step: int) -> None:
    """Behave as if SIGTERM arrived during optimizer step ``step`` (mid-epoch)."""
    original = Trainer._optimizer_step

    def step_then_stop(self):
        original(self)
        if self.step == step:
            self.stop.signal_name = "SIGTERM"

    monkeypatch.setattr(Trainer, "_optimizer_step", step_then_stop)


def _rows(run_dir):
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]


def _assert_same_training_state(a, b):
    state_a, state_b = load_checkpoint(a), load_checkpoint(b)
    assert state_a["epoch"] == state_b["epoch"] and state_a["step"] == state_b["step"]
    for key, tensor in state_a["model"].items():
        assert torch.equal(tensor, state_b["model"][key]), f"weights differ at {key}"
    momenta_a = [s["momentum_buffer"] for s in state_a["optimizer"]["state"].values()]
    momenta_b = [s["momentum_buffer"] for s in state_b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(momenta_a, momenta_b, strict=True))
    assert state_a["scheduler"]["last_epoch"] == state_b["scheduler"]["last_epoch"]
    assert state_a["best_metric"] == state_b["best_metric"]


@pytest.mark.slow
def test_resume_after_epoch_k_equals_uninterrupted_run(make_config, monkeypatch, tmp_path):
    full = train(make_config("trainer.epochs=3", f"run_dir={tmp_path / 'full'}"))
    assert full.stopped_by is None and full.epochs_completed == 3

    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 1)
        part = train(make_config("trainer.epochs=3", f"run_dir={tmp_path / 'part'}"))
    assert part.stopped_by == "SIGTERM" and part.epochs_completed == 1
    assert load_checkpoint(part.last_checkpoint)["epoch"] == 1

    resumed = train(
        make_config("trainer.epochs=3", f"resume={part.last_checkpoint}", f"run_dir={tmp_path / 'x'}")
    )
    assert resumed.run_dir == part.run_dir  # a checkpoint inside a run continues that run's directory
    assert resumed.epochs_completed == 3 and resumed.step == full.step
    _assert_same_training_state(full.last_checkpoint, resumed.last_checkpoint)
    assert _rows(resumed.run_dir) == _rows(full.run_dir)
    assert len(_rows(full.run_dir)) == 3
    assert resumed.best_metric == full.best_metric


@pytest.mark.slow
def test_resume_mid_epoch_equals_uninterrupted_run(make_config, monkeypatch, tmp_path):
    # 6 batches per epoch: stop after step 8 = batch 2 of epoch 2
    full = train(
        make_config("trainer.epochs=2", "trainer.eval_every_n_epochs=2", f"run_dir={tmp_path / 'full'}")
    )
    with monkeypatch.context() as patch:
        _stop_at_step(patch, 8)
        part = train(make_config("trainer.epochs=2", "trainer.eval_every_n_epochs=2"))  # default run_dir
    state = load_checkpoint(part.last_checkpoint)
    assert (state["epoch"], state["step"], state["batches_in_epoch"]) == (1, 8, 2)

    # resume=auto finds the newest last.pt of the same run name under output_root
    resumed = train(make_config("trainer.epochs=2", "trainer.eval_every_n_epochs=2", "resume=auto"))
    assert resumed.run_dir == part.run_dir
    _assert_same_training_state(full.last_checkpoint, resumed.last_checkpoint)
    assert _rows(resumed.run_dir) == _rows(full.run_dir)


def test_resume_auto_without_checkpoint_starts_fresh(make_config, tmp_path):
    result = train(make_config("trainer.epochs=1", "resume=auto", "trainer.limit_train_batches=1"))
    assert result.epochs_completed == 1 and result.step == 1
    assert (result.run_dir / "checkpoints" / "last.pt").is_file()
