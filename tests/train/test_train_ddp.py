"""torchrun DDP on CPU (gloo): 2 processes train and evaluate like 1 process on the same global batch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from softpool_video.train.config import compose_config
from softpool_video.train.evaluate import evaluate_checkpoint
from softpool_video.train.trainer import train

REPO = Path(__file__).resolve().parents[2]


def _torchrun(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _rows(run_dir):
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_same_global_batch(
    synthetic_root, tiny_overrides, subprocess_env, tmp_path
):
    common = [
        o
        for o in tiny_overrides(synthetic_root, tmp_path, "trainer.epochs=2", "logger=[csv]")
        if not o.startswith(("trainer=", "++data.batch_size"))
    ]

    # one process, batches of 4
    single = train(
        compose_config(
            "train", [*common, "trainer=cpu", "++data.batch_size=4", f"run_dir={tmp_path / 'one'}"]
        )
    )

    # two processes x batches of 2 = the same global batch; the DistributedSampler of each epoch
    # splits the same permutation the single process walks through, and BatchNorm is synchronized.
    ddp_dir = tmp_path / "two"
    ddp_args = [
        *common,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.precision=fp32",
        "++data.batch_size=2",
    ]
    done = _torchrun(["-m", "softpool_video.train.cli", *ddp_args, f"run_dir={ddp_dir}"], subprocess_env)
    assert "2 process(es), backend gloo" in done.stderr

    one = torch.load(single.last_checkpoint, weights_only=True)
    two = torch.load(ddp_dir / "checkpoints" / "last.pt", weights_only=True)
    assert one["step"] == two["step"] == 12
    for key, value in one["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(
                two["model"][key], value, rtol=1e-3, atol=1e-4, msg=f"weights differ at {key}"
            )
        else:
            assert torch.equal(two["model"][key], value), key  # BatchNorm batch counters
    for row_one, row_two in zip(_rows(single.run_dir), _rows(ddp_dir), strict=True):
        for key in ("train_loss", "val_loss", "lr"):
            assert float(row_two[key]) == pytest.approx(float(row_one[key]), rel=1e-3, abs=1e-5), key
        for key in ("train_top1", "val_top1", "val_video_top1"):
            assert float(row_two[key]) == pytest.approx(float(row_one[key]), abs=1e-6), key

    # evaluation: the views are sharded over 2 processes and gathered; same scores as 1 process
    reference = evaluate_checkpoint(
        compose_config(
            "eval", [f"checkpoint={single.last_checkpoint}", f"output_dir={tmp_path / 'eval_one'}"]
        )
    ).result
    _torchrun(
        [
            str(REPO / "tools" / "eval.py"),
            f"checkpoint={single.last_checkpoint}",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.precision=fp32",
            "batch_size=3",  # 16 views: uneven shards (8 + 8 views in 3 + 3 batches of <= 3)
            f"output_dir={tmp_path / 'eval_two'}",
        ],
        subprocess_env,
    )
    with (tmp_path / "eval_two" / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (tmp_path / "eval_one" / "predictions.csv").open(newline="") as handle:
        expected = list(csv.DictReader(handle))
    assert [r["video"] for r in rows] == [r["video"] for r in expected]
    assert [r["top1"] for r in rows] == [r["top1"] for r in expected]
    for row, ref in zip(rows, expected, strict=True):
        assert float(row["top1_score"]) == pytest.approx(float(ref["top1_score"]), abs=1e-5)
    assert reference.num_videos == len(rows) == 8


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_torchrun_trains_then_tests_with_one_process_group(
    processes, synthetic_root, tiny_overrides, subprocess_env, tmp_path
):
    """test=true under torchrun: the test evaluation reuses the training's process group (a second
    rendezvous fails with "connection refused" or hangs), in the precision the config gives the CPU.
    At exit no rank still runs gloo's threads: the session freed the process group (a group kept
    alive into interpreter shutdown now and then killed a rank with SIGABRT after the run)."""
    run_dir = tmp_path / "run"
    threads_dir = tmp_path / "threads_at_exit"
    overrides = [
        o
        for o in tiny_overrides(
            synthetic_root, tmp_path, "trainer.epochs=1", "logger=[csv]", f"run_dir={run_dir}"
        )
        if not o.startswith("trainer=")
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        str(Path(__file__).with_name("threads_at_exit.py")),
        str(threads_dir),
        "-m",
        "softpool_video.train.cli",
        *overrides,
        "trainer=ddp",  # accelerator auto, precision auto: fp32 on this CPU (not the GPU config's bf16)
        "device=cpu",
        "test=true",
    ]
    done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (
        f"{processes} process(es), backend {'gloo' if processes > 1 else 'none'}, precision fp32"
        in done.stderr
    )
    summary = json.loads((run_dir / "eval_test_last" / "summary.json").read_text())
    assert summary["settings"]["precision"] == "fp32" and summary["settings"]["world_size"] == processes
    assert summary["num_videos"] == 8 and summary["settings"]["split"] == "test"
    assert f"evaluating {run_dir / 'checkpoints' / 'last.pt'} (epoch 1" in done.stderr
    for rank in range(processes):
        threads = (threads_dir / f"rank{rank}.txt").read_text().split()
        assert threads and not [t for t in threads if "gloo" in t], (rank, threads)
