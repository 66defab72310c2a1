"""Training features: run directory contents, AMP, accumulation, clipping, label smoothing, mixup, errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf

from softpool_video.train.mixup import MixVideo
from softpool_video.train.trainer import EPOCH_COLUMNS, Trainer, TrainingError, train


def test_run_directory_holds_config_logs_metrics_and_checkpoints(make_config):
    result = train(make_config("trainer.epochs=2", "trainer.eval_every_n_epochs=2"))
    run = result.run_dir
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.csv",
        "metrics.jsonl",
        "tensorboard",
        "train.log",
    ]
    config = OmegaConf.load(run / "config.yaml")
    assert config.run_dir == str(run) and config.model.name == "r2plus1d_tiny"  # resolved, no ${...}
    with (run / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == EPOCH_COLUMNS
    assert [row["step"] for row in rows] == ["6", "12"]
    assert rows[0]["val_video_top1"] == "" and rows[1]["val_video_top1"] != ""  # eval every 2 epochs
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1] and "val_loss" in lines[1]
    assert float(rows[1]["clips_per_s"]) > 0 and float(rows[1]["epoch_time"]) > 0
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    log = (run / "train.log").read_text()
    assert "epoch 2/2" in log and "video top-1" in log
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert state["epoch"] == 2 and state["best_metric"] == pytest.approx(float(rows[1]["val_video_top1"]))


def test_accumulation_clipping_smoothing_and_mixup(make_config):
    result = train(
        make_config(
            "trainer.accumulate_grad_batches=4",  # 6 batches: one group of 4, one of 2
            "trainer.grad_clip_norm=1.0",
            "loss.label_smoothing=0.1",
            "mixup.enabled=true",
            "trainer.epochs=1",
            "logger=[]",
        )
    )
    assert result.step == 2
    row = result.history[0]
    assert torch.isfinite(torch.tensor(row["train_loss"])) and torch.isfinite(torch.tensor(row["val_loss"]))


def test_out_of_memory_explains_what_to_change(make_config, monkeypatch):
    def out_of_memory(self, batch, group_size, last_of_group):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "_forward_backward", out_of_memory)
    hint = r"data.batch_size=4 per process .*data.batch_size=2.*accumulate_grad_batches=2"
    with pytest.raises(TrainingError, match=hint):
        train(make_config("trainer.epochs=1"))


def test_non_finite_loss_stops_with_a_hint(make_config):
    with pytest.raises(TrainingError, match="loss is nan at epoch 1.*lower optim.lr"):
        train(make_config("optim.lr=1e30", "schedule.warmup_epochs=0", "trainer.log_every_n_steps=1"))


def test_mixup_and_cutmix_targets():
    labels = torch.tensor([0, 1, 2, 3])
    video = torch.arange(4.0).reshape(4, 1, 1, 1, 1).expand(4, 3, 2, 8, 8).contiguous()
    plain = MixVideo(4, mixup_alpha=0.8, cutmix_alpha=0.0, prob=0.0, label_smoothing=0.2)
    same, targets = plain(video, labels)
    assert torch.equal(same, video)
    torch.testing.assert_close(targets[0], torch.tensor([0.85, 0.05, 0.05, 0.05]))

    mixup = MixVideo(4, mixup_alpha=0.8, cutmix_alpha=0.0)
    mixed, targets = mixup(video, labels)
    lam = float(targets[0, 0])  # sample 0 is mixed with sample 3 (the batch reversed)
    torch.testing.assert_close(mixed[0], video[0] * lam + video[3] * (1 - lam))
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(4))

    cutmix = MixVideo(4, mixup_alpha=0.0, cutmix_alpha=1.0)
    slow, fast = video[:, :, :1].clone(), video.clone()
    (mixed_slow, mixed_fast), targets = cutmix([slow, fast], labels)
    pasted = (mixed_fast[0, 0, 0] != 0).float().mean()  # sample 0 is all zeros, sample 3 all threes
    assert float(targets[0, 3]) == pytest.approx(float(pasted))
    # the same box in every frame and in both pathways
    assert torch.equal(mixed_fast[0, :, 0], mixed_fast[0, :, 1])
    assert torch.equal(mixed_slow[0, :, 0], mixed_fast[0, :, 0])
