"""build_dataloader: batches, epochs, worker failures, and DistributedSampler across 2 ranks."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.multiprocessing as mp

from softpool_video.data import (
    ShardedEvalSampler,
    VideoClipDataset,
    VideoRecord,
    build_dataloader,
    build_transform,
    collate_clips,
)

BATCH_KEYS = {"video", "label", "video_index", "clip_index", "crop_index"}
TRANSFORM_CFG = {
    "train_jitter_scales": [32, 40],
    "train_crop_size": 32,
    "test_scale": 32,
    "test_crop_size": 32,
}


@pytest.fixture
def records(tmp_path, make_video):
    return [
        VideoRecord(make_video(tmp_path / f"v{k}.mp4", num_frames=20 + 3 * k, fps=25, seed=k), label=k % 4)
        for k in range(10)
    ]


def make(records, split="train", **kwargs):
    options = {
        "num_frames": 4,
        "sampling_rate": 2,
        "transform": build_transform({**TRANSFORM_CFG, **kwargs.pop("transform_cfg", {})}, split),
        "max_failure_fraction": 0.5,
    }
    options.update(kwargs)
    return VideoClipDataset(records, ["a", "b", "c", "d"], split=split, **options)


def test_batches_have_the_documented_keys_shapes_and_types(records):
    loader = build_dataloader(make(records), batch_size=4, num_workers=0)
    assert loader.drop_last and len(loader) == 2  # training defaults: shuffle, drop the ragged batch
    batches = list(loader)
    for batch in batches:
        assert set(batch) == BATCH_KEYS
        assert batch["video"].shape == (4, 3, 4, 32, 32) and batch["video"].dtype == torch.float32
        for key in BATCH_KEYS - {"video"}:
            assert batch[key].dtype == torch.long and batch[key].shape == (4,)
        assert torch.equal(batch["label"], batch["video_index"] % 4)
    eval_loader = build_dataloader(make(records, "test", num_clips=2), batch_size=4)
    assert not eval_loader.drop_last and len(eval_loader) == 5
    views = torch.cat([torch.stack([b["video_index"], b["clip_index"]], 1) for b in eval_loader])
    assert views.tolist() == [[v, c] for v in range(10) for c in range(2)]  # in order, every view once


def test_slowfast_batches_are_lists_of_two_tensors(records):
    dataset = make(records, "val", num_frames=8, transform_cfg={"alpha": 4})
    batch = next(iter(build_dataloader(dataset, batch_size=3)))
    slow, fast = batch["video"]
    assert slow.shape == (3, 3, 2, 32, 32) and fast.shape == (3, 3, 8, 32, 32)


def test_collate_keeps_extra_keys():
    items = [
        {
            "video": torch.zeros(3, 2, 4, 4),
            "label": k,
            "video_index": k,
            "clip_index": 0,
            "crop_index": 0,
            "extra": k * 1.5,
        }
        for k in range(3)
    ]
    batch = collate_clips(items)
    assert batch["extra"].tolist() == [0.0, 1.5, 3.0] and batch["failed_videos"] == []


def test_set_epoch_gives_deterministic_order_and_clips(records):
    def epoch_batches(loader, epoch):
        loader.set_epoch(epoch)
        return [b for b in loader]

    a = build_dataloader(make(records), batch_size=5, seed=3)
    b = build_dataloader(make(records), batch_size=5, seed=3)
    first, again = epoch_batches(a, 0), epoch_batches(b, 0)
    assert all(
        torch.equal(x["video"], y["video"]) and torch.equal(x["video_index"], y["video_index"])
        for x, y in zip(first, again)
    )
    second = epoch_batches(a, 1)
    assert not all(torch.equal(x["video_index"], y["video_index"]) for x, y in zip(first, second))
    assert a.dataset.epoch == 1


def test_worker_count_does_not_change_the_data(records):
    """Item randomness depends on (seed, epoch, index) only, not on which worker made it."""
    in_process = list(build_dataloader(make(records), batch_size=5, num_workers=0, seed=1))
    with_workers = list(
        build_dataloader(make(records), batch_size=5, num_workers=2, seed=1, persistent_workers=False)
    )
    assert len(in_process) == len(with_workers) == 2
    for x, y in zip(in_process, with_workers):
        assert torch.equal(x["video_index"], y["video_index"]) and torch.equal(x["video"], y["video"])


def test_failures_in_workers_reach_the_main_process(records, bad_files):
    bad = [bad_files[k] for k in ("zero_byte", "text", "corrupt", "audio_only")]
    dataset = make(records + [VideoRecord(p, 0) for p in bad], "test", max_failure_fraction=0.5)
    loader = build_dataloader(dataset, batch_size=4, num_workers=2, persistent_workers=True)
    for epoch in range(2):  # persistent workers: the second epoch reuses them
        loader.set_epoch(epoch)
        seen = [b for b in loader]
        assert all(set(b) == BATCH_KEYS for b in seen)
        assert sum(len(b["label"]) for b in seen) == len(dataset)
        assert sorted(p for p, _ in dataset.failures) == sorted(str(p) for p in bad)
        assert not {int(i) for b in seen for i in b["video_index"]} & {10, 11, 12, 13}


def test_failure_budget_is_enforced_across_workers(records, bad_files):
    bad = [bad_files[k] for k in ("zero_byte", "text", "corrupt", "audio_only", "truncated")]
    # 5 of 15 bad > 0.3: each worker alone may stay under the limit, the main process may not
    dataset = make(records + [VideoRecord(p, 0) for p in bad], "test", max_failure_fraction=0.3)
    loader = build_dataloader(dataset, batch_size=2, num_workers=2)
    with pytest.raises(Exception, match="videos are unreadable") as info:
        list(loader)
    assert "max_failure_fraction=0.3" in str(info.value)


def test_distributed_requires_an_initialised_group(records):
    with pytest.raises(RuntimeError, match="init_process_group"):
        build_dataloader(make(records), batch_size=2, distributed=True)


def test_sharded_eval_sampler_never_repeats():
    for size in (7, 8):
        shards = [list(ShardedEvalSampler(range(size), num_replicas=3, rank=r)) for r in range(3)]
        assert sorted(i for s in shards for i in s) == list(range(size))
        assert [len(ShardedEvalSampler(range(size), num_replicas=3, rank=r)) for r in range(3)] == [
            len(s) for s in shards
        ]


def _rank_main(rank: int, world_size: int, init_file: str, records, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        result = {}
        for split, size in (("train", 10), ("test", 9)):
            dataset = make(records[:size], split)
            loader = build_dataloader(dataset, batch_size=2, distributed=True, seed=5, drop_last=False)
            result[split] = {}
            for epoch in (0, 1):
                loader.set_epoch(epoch)
                result[split][epoch] = [int(i) for b in loader for i in b["video_index"]]
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
            json.dump(result, handle)
    finally:
        torch.distributed.destroy_process_group()


def test_distributed_sampler_covers_everything_without_duplicates(records, tmp_path):
    """Two real gloo ranks: each video exactly once per epoch, different orders per epoch."""
    mp.start_processes(
        _rank_main, args=(2, str(tmp_path / "init"), records, str(tmp_path)), nprocs=2, start_method="fork"
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for split, size in (("train", 10), ("test", 9)):
        for epoch in ("0", "1"):
            shards = [r[split][epoch] for r in ranks]
            assert sorted(shards[0] + shards[1]) == list(range(size)), (split, epoch, shards)
            assert shards[0] and shards[1]
    assert ranks[0]["train"]["0"] != ranks[0]["train"]["1"]  # reshuffled per epoch
    assert ranks[0]["test"]["0"] == ranks[0]["test"]["1"] == [0, 2, 4, 6, 8]
