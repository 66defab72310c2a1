"""Exact resume: an interrupted, resumed run ends with the weights and metrics of an uninterrupted one."""

from __future__ import annotations

import csv
import shutil

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


def _with_unreadable_videos(synthetic_root, tmp_path, count: int = 2):
    """A copy of the tiny dataset whose first ``count`` training videos are garbage."""
    root = tmp_path / "with_bad_videos"
    shutil.copytree(synthetic_root, root)
    for listed in (root / "trainlist01.txt").read_text().split()[::2][:count]:  # "path label" lines
        (root / listed).write_bytes(b"\x00 not a video \x00" * 64)
    return root


@pytest.mark.slow
def test_resume_mid_epoch_with_persistent_workers_and_unreadable_videos(
    synthetic_root, make_config, monkeypatch, tmp_path
):
    """The default loader settings (2 persistent workers) and bad files in the data: still exact."""
    root = _with_unreadable_videos(synthetic_root, tmp_path)
    settings = (
        f"data.root={root}",
        "++data.num_workers=2",
        "++data.persistent_workers=true",
        "trainer.epochs=3",
        "++model.kwargs.dropout_rate=0.3",  # dropout draws from the global generator: it must line up
        "trainer.eval_every_n_epochs=1",
    )
    full = train(make_config(*settings, f"run_dir={tmp_path / 'full'}"))
    assert len(load_checkpoint(full.last_checkpoint)["failed_videos"]) == 2  # the known-bad list is kept

    with monkeypatch.context() as patch:
        _stop_at_step(patch, 9)  # 6 batches per epoch: batch 3 of epoch 2
        part = train(make_config(*settings))
    state = load_checkpoint(part.last_checkpoint)
    assert (state["epoch"], state["step"], state["batches_in_epoch"]) == (1, 9, 3)
    assert len(state["failed_videos"]) == 2
    resumed = train(make_config(*settings, "resume=auto"))
    assert resumed.run_dir == part.run_dir
    _assert_same_training_state(full.last_checkpoint, resumed.last_checkpoint)
    assert _rows(resumed.run_dir) == _rows(full.run_dir)


def test_best_is_saved_before_last_and_a_stop_between_them_resumes_exactly(
    make_config, monkeypatch, tmp_path
):
    import softpool_video.train.trainer as trainer_module

    # trainer.monitor=lr, mode min: the cosine schedule improves it every epoch, so both files are written
    settings = ("trainer.epochs=2", "trainer.monitor=lr", "++trainer.monitor_mode=min", "logger=[]")
    full = train(make_config(*settings, f"run_dir={tmp_path / 'full'}"))

    saved = []
    real_save = trainer_module.save_checkpoint

    def dies_after_best_of_epoch_2(path, state):
        saved.append((path.name, state["epoch"]))
        real_save(path, state)
        if path.name == "best.pt" and state["epoch"] == 2:
            raise SystemExit("killed between best.pt and last.pt")

    run_dir = tmp_path / "part"
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "save_checkpoint", dies_after_best_of_epoch_2)
        with pytest.raises(SystemExit):
            train(make_config(*settings, f"run_dir={run_dir}"))
    assert saved == [("best.pt", 1), ("last.pt", 1), ("best.pt", 2)]  # best first, every epoch
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1  # the pair is consistent:
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["epoch"] == 2  # last resumes into epoch 2

    resumed = train(make_config(*settings, f"run_dir={run_dir}", "resume=auto"))
    _assert_same_training_state(full.last_checkpoint, resumed.last_checkpoint)
    _assert_same_training_state(full.best_checkpoint, resumed.best_checkpoint)
