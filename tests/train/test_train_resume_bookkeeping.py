"""train/resume.py alone: loaders that leave the global generator alone, skipping batches by index,
the resume point through a weights_only checkpoint, and which checkpoint resume=auto picks."""

from __future__ import annotations

import os
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from softpool_video.train.checkpoint import save_checkpoint
from softpool_video.train.config import ConfigError
from softpool_video.train.resume import (
    PROGRESS_KEYS,
    ResumePoint,
    find_resume_checkpoint,
    isolate_loader_rng,
    loader_skipping,
)


class Numbers(Dataset):
    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int) -> int:
        return index


def _loader(workers: int = 0, persistent: bool = False) -> DataLoader:
    generator = torch.Generator()
    generator.manual_seed(7)
    sampler = torch.utils.data.RandomSampler(Numbers(), generator=generator)
    extra = {"persistent_workers": persistent} if workers else {}
    return DataLoader(Numbers(), batch_size=3, sampler=sampler, num_workers=workers, drop_last=True, **extra)


def test_a_plain_loader_draws_from_the_global_generator_and_an_isolated_one_does_not():
    loader = _loader()
    state = torch.get_rng_state()
    iter(loader)
    assert not torch.equal(torch.get_rng_state(), state)  # the reference: DataLoader draws a seed

    isolate_loader_rng(loader, seed=0)
    state = torch.get_rng_state()
    for _ in range(3):
        list(loader)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("workers", [0, 2])
def test_skipping_batches_gives_the_rest_of_the_same_epoch(workers):
    loader = _loader(workers)
    isolate_loader_rng(loader, seed=0)
    loader.sampler.generator.manual_seed(11)  # what set_epoch does
    full = [batch.tolist() for batch in loader]
    loader.sampler.generator.manual_seed(11)
    skipping = loader_skipping(loader, 2)
    state = torch.get_rng_state()
    rest = [batch.tolist() for batch in skipping]
    assert rest == full[2:] and len(skipping) == len(full) - 2
    assert torch.equal(torch.get_rng_state(), state)
    assert len(loader_skipping(loader, 99)) == 0


def test_resume_point_roundtrip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    point = ResumePoint.capture(
        epoch=2,
        step=17,
        batches_in_epoch=5,
        epoch_progress={
            "loss_sum": 4.5,
            "top1": 3.0,
            "top5": 9.0,
            "samples": 20.0,
            "data_time": 1.0,
            "elapsed": 2.0,
        },
        failed_videos=[("/data/a.mp4", "cannot open"), ("/data/b.avi", "no frames")],
        best_metric=62.5,
        best_epoch=2,
    )
    expected = torch.rand(4)
    path = save_checkpoint(tmp_path / "last.pt", point.to_state())
    raw = torch.load(path, weights_only=True)
    back = ResumePoint.from_state(raw)
    assert (back.epoch, back.step, back.batches_in_epoch) == (2, 17, 5)
    assert back.failed_videos == [("/data/a.mp4", "cannot open"), ("/data/b.avi", "no frames")]
    assert (back.best_metric, back.best_epoch) == (62.5, 2)
    assert back.progress()["loss_sum"] == 4.5 and set(back.progress()) == set(PROGRESS_KEYS)
    torch.manual_seed(99)
    back.restore_rng()
    assert torch.equal(torch.rand(4), expected)

    at_boundary = ResumePoint.capture(epoch=3, step=20, epoch_progress={"loss_sum": 1.0})
    assert "epoch_progress" not in at_boundary.to_state()  # only mid-epoch points carry the sums
    assert ResumePoint.from_state(at_boundary.to_state()).progress() == dict.fromkeys(PROGRESS_KEYS, 0.0)


def _fake_run(root, name, stamp, seconds_ago):
    path = root / name / stamp / "checkpoints" / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    past = time.time() - seconds_ago
    os.utime(path, (past, past))
    return path


def test_find_resume_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    fresh = runs / "tiny" / "new"
    assert find_resume_checkpoint(fresh, None, runs, "tiny") == (fresh, None, None)
    run_dir, checkpoint, note = find_resume_checkpoint(fresh, "auto", runs, "tiny")
    assert (run_dir, checkpoint) == (fresh, None) and "no last.pt" in note

    older = _fake_run(runs, "tiny", "a", seconds_ago=100)
    newer = _fake_run(runs, "tiny", "b", seconds_ago=10)
    _fake_run(runs, "other-name", "c", seconds_ago=1)
    assert find_resume_checkpoint(fresh, "auto", runs, "tiny")[:2] == (newer.parent.parent, newer)
    assert find_resume_checkpoint(older.parent.parent, "auto", runs, "tiny")[:2] == (
        older.parent.parent,
        older,
    )
    # an explicit path inside a run continues that run's folder
    assert find_resume_checkpoint(fresh, str(older), runs, "tiny")[:2] == (older.parent.parent, older)
    with pytest.raises(ConfigError, match="already holds a run .*resume=auto"):
        find_resume_checkpoint(newer.parent.parent, None, runs, "tiny")
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        find_resume_checkpoint(fresh, str(tmp_path / "nope.pt"), runs, "tiny")
