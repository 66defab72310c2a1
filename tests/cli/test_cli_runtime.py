"""Runtime failures exit 1 with one error line (the traceback in the run's log); the synthetic dataset
is generated only where it was asked for, with one log line; the test evaluation never swaps best.pt
for last.pt and says which checkpoint it tests."""

from __future__ import annotations

import re
import shutil

import pytest
from cli_tools import files_under, run_tool

from softpool_video.train.cli import train_main

# A synthetic dataset small enough to generate in a couple of seconds, with the tiny model.
SMALL_SYNTHETIC = [
    "data.synthetic.num_classes=2",
    "data.synthetic.videos_per_class=4",
    "data.synthetic.frames=16",
    "data.synthetic.size=48",
    "data.synthetic.kinetics=false",
    "data.num_classes=2",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.train_jitter_scales=[48,56]",
    "data.test_scale=48",
    "data.test_crop_size=48",
    "model.crop_size=48",
    "model.kwargs.width=8",
    "trainer.fast_dev_run=1",
    "trainer.progress_bar=false",
    "trainer.num_threads=1",
]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


def _generation_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "generating the synthetic motion dataset" in line]


def test_synthetic_data_is_generated_only_at_its_default_root(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train_main(SMALL_SYNTHETIC) == 0
    err = capsys.readouterr().err
    (line,) = _generation_lines(err)  # one line says where and why
    assert str(tmp_path / "data" / "synthetic") in line and "default root data/synthetic" in line
    assert (tmp_path / "data" / "synthetic" / "synthetic.json").is_file()
    # there now: used, not generated again
    assert train_main(SMALL_SYNTHETIC) == 0
    assert _generation_lines(capsys.readouterr().err) == []

    # anywhere else only when asked for; a mistyped root is an error and creates nothing
    elsewhere = tmp_path / "elsewhere" / "synthetic"
    assert train_main([*SMALL_SYNTHETIC, f"data.root={elsewhere}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist; pass data.generate=true" in err and not elsewhere.parent.exists()
    assert train_main([*SMALL_SYNTHETIC, f"data.root={elsewhere}", "data.generate=true"]) == 0
    (line,) = _generation_lines(capsys.readouterr().err)
    assert str(elsewhere) in line and "data.generate=true" in line
    assert (elsewhere / "synthetic.json").is_file()
    # data.generate=false: not even at the default root
    shutil.rmtree(tmp_path / "data")
    assert train_main([*SMALL_SYNTHETIC, "data.generate=false"]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "data").exists()


def test_a_non_finite_loss_exits_1_with_the_traceback_in_the_log(cli_data, tiny_overrides, tmp_path, capsys):
    overrides = tiny_overrides(
        cli_data,
        tmp_path / "runs",
        "optim.lr=1e30",
        "schedule.warmup_epochs=0",
        "trainer.log_every_n_steps=1",
    )
    assert train_main(overrides) == 1
    err = capsys.readouterr().err
    (line,) = _error_lines(err)
    assert re.match(r"softpool-train: error: loss is nan at epoch 1, step \d+: lower optim.lr", line), line
    assert "Traceback" not in err
    (log,) = (tmp_path / "runs").glob("*/*/train.log")
    assert f"details in {log}" in line
    assert "Traceback (most recent call last)" in log.read_text() and "TrainingError" in log.read_text()


@pytest.mark.slow
def test_too_many_unreadable_videos_in_workers_is_one_line(cli_data, tiny_overrides, tmp_path):
    """The error raised inside a DataLoader worker comes back as the worker's message, not 40 lines."""
    root = tmp_path / "broken"
    shutil.copytree(cli_data, root)
    for listed in (root / "trainlist01.txt").read_text().split()[::2][:6]:
        (root / listed).write_bytes(b"\x00 not a video \x00" * 50)
    overrides = tiny_overrides(
        root, tmp_path / "runs", "++data.num_workers=2", "++data.max_failure_fraction=0.1", "trainer.epochs=1"
    )
    run = run_tool("softpool-train", overrides, tmp_path / "cwd")
    assert run.returncode == 1, run.stderr[-3000:]
    (line,) = _error_lines(run.stderr)
    assert "videos are unreadable, more than max_failure_fraction=0.1 allows" in line
    assert "Traceback" not in run.stderr and "DataLoader worker" not in run.stderr
    (log,) = (tmp_path / "runs").glob("*/*/train.log")
    assert "TooManyFailedVideosError" in log.read_text()


def test_test_checkpoint_best_never_tests_last_and_says_what_it_tests(
    cli_data, tiny_overrides, tmp_path, capsys
):
    # trainer.monitor=lr (mode max): the cosine schedule makes epoch 1 the best; later epochs never improve
    run_dir = tmp_path / "run"
    common = ["trainer.monitor=lr", "++trainer.monitor_mode=max", f"run_dir={run_dir}", "logger=[]"]
    assert train_main(tiny_overrides(cli_data, tmp_path, "trainer.epochs=1", *common)) == 0
    capsys.readouterr()
    (run_dir / "checkpoints" / "best.pt").unlink()  # lost (a kill, a cleanup): never silently replaced
    overrides = [*common, "trainer.epochs=2", "resume=auto", "test=true", "eval.test_checkpoint=best"]
    assert train_main(tiny_overrides(cli_data, tmp_path, *overrides)) == 1
    err = capsys.readouterr().err
    assert "checkpoints/best.pt (epoch 1, lr=" in err and "is missing" in err  # said at resume
    (line,) = _error_lines(err)
    assert "eval.test_checkpoint=best:" in line and "best.pt was not written" in line
    assert "eval.test_checkpoint=last" in line
    assert not list(run_dir.glob("eval_test_*"))

    # with last: tested, and the log says which checkpoint (file, epoch, step)
    overrides = [*common, "trainer.epochs=2", "resume=auto", "test=true", "eval.test_checkpoint=last"]
    assert train_main(tiny_overrides(cli_data, tmp_path, *overrides)) == 0
    err = capsys.readouterr().err
    last = run_dir / "checkpoints" / "last.pt"
    assert re.search(rf"evaluating {re.escape(str(last))} \(epoch 2, step \d+", err), err
    assert f"{last} (epoch 2" in (run_dir / "eval_test_last" / "eval.log").read_text()
    assert files_under(run_dir / "checkpoints") == ["last.pt"]


def test_train_help_lists_groups_and_options(capsys):
    assert train_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"model=\s+r2plus1d_18, .*slowfast_r50", out)
    assert "device=X" in out and "--cfg job" in out and "exit status" in out


def test_device_shortcut_is_trainer_accelerator(cli_data, tiny_overrides, tmp_path, capsys):
    overrides = tiny_overrides(cli_data, tmp_path / "runs", "trainer.fast_dev_run=1", "device=cpu")
    overrides = [o for o in overrides if not o.startswith("trainer=")]
    assert train_main(overrides) == 0
    assert "device cpu, 1 process(es)" in capsys.readouterr().err
