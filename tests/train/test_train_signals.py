"""SIGTERM during training: the step finishes, last.pt is written (loadable, resumable), the exit is clean."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time

import pytest
import torch

from softpool_video.train.config import compose_config
from softpool_video.train.trainer import train


def _epoch_rows(path) -> int:
    if not path.is_file():
        return 0
    with path.open(newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


@pytest.mark.slow
def test_sigterm_leaves_a_loadable_checkpoint(synthetic_root, tiny_overrides, subprocess_env, tmp_path):
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(synthetic_root, tmp_path, "trainer.epochs=500", f"run_dir={run_dir}")
    process = subprocess.Popen(
        [sys.executable, "-m", "softpool_video.train.cli", *overrides],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while _epoch_rows(run_dir / "metrics.csv") < 1:  # training is under way
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM received: finishing the current step" in stderr
    assert "Continue with: resume=auto" in stderr
    assert "Traceback" not in stderr

    checkpoint = run_dir / "checkpoints" / "last.pt"
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["best.pt", "last.pt"]  # no temp files
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] >= 1 and state["step"] >= 6 * state["epoch"]
    assert state["step"] == 6 * state["epoch"] + state["batches_in_epoch"]  # 6 batches per epoch

    # The checkpoint resumes: finish the interrupted epoch and stop there.
    epochs = state["epoch"] + 1
    resumed = train(
        compose_config(
            "train",
            tiny_overrides(synthetic_root, tmp_path, f"trainer.epochs={epochs}", f"resume={checkpoint}"),
        )
    )
    assert resumed.run_dir == run_dir and resumed.stopped_by is None
    assert resumed.epochs_completed == epochs and resumed.step == 6 * epochs
