"""kill -9 at any moment, then resume=auto: the same weights as a run that was never interrupted.

The default loader settings (2 persistent workers), unreadable videos in the data and dropout (which
draws from the global generator) make every way of losing exactness visible: re-created loader
iterators, a lost list of known-bad videos, a half-written checkpoint, best.pt and last.pt apart.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from softpool_video.train.config import compose_config
from softpool_video.train.trainer import TIMING_COLUMNS, train


def _checkpoint_epoch(path) -> int:
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu")["epoch"])
    except (OSError, RuntimeError, EOFError, KeyError):  # being replaced right now
        return -1


def _rows(run_dir):
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]


def _checkpoint_identity(path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns  # an atomic replace gives a new file


def _kill_during_epoch(command, env, run_dir, epoch: int, delay: float) -> None:
    """Start ``command``; once ``last.pt`` holds ``epoch - 1`` epochs, wait ``delay`` s and SIGKILL the
    whole process group (the trainer and its DataLoader workers) without warning. An epoch of the
    tiny run takes ~0.2 s, so on a fast machine the delay could outlast it: the wait ends early, and
    the kill lands at once, when ``last.pt`` is replaced (epoch ``epoch`` written)."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    try:
        while not (last.is_file() and _checkpoint_epoch(last) >= epoch - 1):
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the run did not reach the epoch in time"
            time.sleep(0.01)
        seen = _checkpoint_identity(last)
        stop = time.monotonic() + delay
        while time.monotonic() < stop and _checkpoint_identity(last) == seen:
            time.sleep(0.002)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_then_resume_auto_gives_the_uninterrupted_weights(
    synthetic_root, tiny_overrides, subprocess_env, tmp_path
):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    for listed in (root / "trainlist01.txt").read_text().split()[::2][:2]:  # "path label" lines
        (root / listed).write_bytes(b"\x00 not a video \x00" * 64)
    settings = [
        "trainer.epochs=3",
        "++data.batch_size=2",  # 12 steps per epoch: room to land a kill inside one
        "++data.num_workers=2",
        "++data.persistent_workers=true",
        "++model.kwargs.dropout_rate=0.3",
        "logger=[csv]",
    ]
    reference = train(
        compose_config(
            "train", tiny_overrides(root, tmp_path / "ref", *settings, f"run_dir={tmp_path / 'ref' / 'run'}")
        )
    )

    run_dir = tmp_path / "killed" / "run"
    overrides = tiny_overrides(root, tmp_path / "killed", *settings, f"run_dir={run_dir}")
    command = [sys.executable, "-m", "softpool_video.train.cli", *overrides]
    _kill_during_epoch(command, subprocess_env, run_dir, epoch=2, delay=0.4)  # in epoch 2
    first = _checkpoint_epoch(run_dir / "checkpoints" / "last.pt")
    assert first in (1, 2)  # (on a very slow machine the kill may land in epoch 2's validation)
    resume = [*overrides, "resume=auto"]  # the same command again, plus resume=auto
    command = [sys.executable, "-m", "softpool_video.train.cli", *resume]
    _kill_during_epoch(command, subprocess_env, run_dir, epoch=3, delay=0.1)  # early in epoch 3
    assert _checkpoint_epoch(run_dir / "checkpoints" / "last.pt") == 2
    done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {run_dir / 'checkpoints' / 'last.pt'}: epoch 2" in done.stderr
    assert "2 unreadable video(s) known" in done.stderr

    expected = torch.load(reference.last_checkpoint, weights_only=True)
    got = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (got["epoch"], got["step"]) == (expected["epoch"], expected["step"]) == (3, 36)
    for key, tensor in expected["model"].items():
        assert torch.equal(got["model"][key], tensor), f"weights differ at {key}"
    assert got["best_metric"] == expected["best_metric"] and got["best_epoch"] == expected["best_epoch"]
    assert _rows(run_dir) == _rows(reference.run_dir)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == got["best_epoch"]  # the pair agrees on which epoch is the best
