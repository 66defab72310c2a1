"""VideoClipDataset: items, views, determinism, short videos, and surviving bad files."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import read_barcode_cthw

from softpool_video.data import TooManyFailedVideosError, VideoClipDataset, VideoRecord, build_transform
from softpool_video.data import dataset as dataset_module
from softpool_video.data.dataset import FAILURES_KEY, decode_failures

LENGTHS = [60, 41, 5, 90, 33, 72]  # frames; the 5-frame video is shorter than a clip


@pytest.fixture
def barcode_records(tmp_path, make_video):
    records = []
    for k, length in enumerate(LENGTHS):
        extension = ".avi" if k == 3 else ".mp4"
        path = make_video(tmp_path / "videos" / f"v{k}{extension}", num_frames=length, fps=25, seed=k)
        records.append(VideoRecord(path, label=k % 3))
    return records


def make(records, **kwargs):
    options = {"num_frames": 8, "sampling_rate": 3, "transform": None, "max_failure_fraction": 0.5}
    options.update(kwargs)
    return VideoClipDataset(records, ["a", "b", "c"], **options)


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_train_items_are_one_random_clip_per_video(barcode_records, decoder):
    dataset = make(barcode_records, decoder=decoder)
    assert len(dataset) == len(LENGTHS) and dataset.num_classes == 3
    assert dataset.videos == [r.path for r in barcode_records]
    for index, length in enumerate(LENGTHS):
        item = dataset[index]
        assert set(item) == {"video", "label", "video_index", "clip_index", "crop_index", FAILURES_KEY}
        assert item["video"].dtype == torch.uint8 and item["video"].shape == (3, 8, 48, 64)
        assert (item["label"], item["video_index"], item["clip_index"], item["crop_index"]) == (
            index % 3,
            index,
            0,
            0,
        )
        frames = read_barcode_cthw(item["video"])
        if length >= 22:  # a full clip fits: stride 3 from a random start
            assert all(b - a == 3 for a, b in zip(frames, frames[1:]))
            assert frames[-1] < length
        else:  # short video: stretched over all 5 frames, frames repeated
            assert frames == [0, 1, 1, 2, 2, 3, 3, 4]
        assert item[FAILURES_KEY] == ""


def test_test_views_cover_clips_and_crops(barcode_records):
    dataset = make(barcode_records[:2], split="test", num_clips=3, num_crops=3, transform=None)
    assert len(dataset) == 2 * 3 * 3 and dataset.num_views == 9
    seen = []
    for index in range(len(dataset)):
        item = dataset[index]
        seen.append((item["video_index"], item["clip_index"], item["crop_index"]))
        frames = read_barcode_cthw(item["video"])
        length = LENGTHS[item["video_index"]]
        expected_start = [0, (length - 22) // 2, length - 22][item["clip_index"]]
        assert abs(frames[0] - expected_start) <= 1 and frames == list(range(frames[0], frames[0] + 22, 3))
    assert seen == [(v, c, k) for v in range(2) for c in range(3) for k in range(3)]
    assert dataset.view(13) == (1, 1, 1)
    with pytest.raises(IndexError):
        dataset[18]


def test_sampling_is_deterministic_given_seed_and_epoch(barcode_records):
    transform = build_transform({"train_jitter_scales": [48, 64], "train_crop_size": 40}, "train")
    a = make(barcode_records, transform=transform, seed=7)
    b = make(barcode_records, transform=transform, seed=7)
    torch.manual_seed(123)  # the caller's global generator must not matter ...
    first = [a[i]["video"] for i in range(len(a))]
    torch.manual_seed(999)
    state = torch.get_rng_state()
    second = [b[i]["video"] for i in reversed(range(len(b)))][::-1]
    assert torch.equal(torch.get_rng_state(), state)  # ... and is left untouched
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    a.set_epoch(1)
    assert a.epoch == 1
    moved = [not torch.equal(a[i]["video"], first[i]) for i in range(len(a))]
    assert sum(moved) >= len(a) - 1  # the 5-frame video may crop the same way by chance
    a.set_epoch(0)
    assert torch.equal(a[0]["video"], first[0])
    c = make(barcode_records, transform=transform, seed=8)
    assert not torch.equal(c[0]["video"], first[0])


def test_missing_files_are_reported_at_construction(barcode_records, tmp_path, caplog):
    missing = [VideoRecord(tmp_path / f"gone{k}.mp4", 0) for k in range(7)]
    with caplog.at_level(logging.WARNING):
        dataset = make(barcode_records + missing, skip_missing=True)
    assert len(dataset) == len(LENGTHS)
    assert "7 of 13 listed videos are missing" in caplog.text and "gone0.mp4" in caplog.text
    assert "2 more" in caplog.text  # first examples only
    with pytest.raises(FileNotFoundError, match=r"7 of 13 listed videos are missing.*data.skip_missing=true"):
        make(barcode_records + missing, skip_missing=False)
    with pytest.raises(FileNotFoundError, match="none exist"):
        make(missing)
    with pytest.raises(ValueError, match="label >= num_classes"):
        make([VideoRecord(barcode_records[0].path, 5)])


def test_every_bad_file_kind_is_skipped_counted_and_logged_once(
    barcode_records, bad_files, caplog, monkeypatch
):
    bad = {kind: path for kind, path in bad_files.items() if kind != "directory"}
    records = barcode_records + [VideoRecord(path, 0) for path in bad.values()]
    dataset = make(records, split="test", num_clips=2, max_failure_fraction=0.6)
    opened = []
    real_open = dataset_module.open_video
    monkeypatch.setattr(
        dataset_module, "open_video", lambda path, **kw: opened.append(str(path)) or real_open(path, **kw)
    )
    with caplog.at_level(logging.WARNING, logger="softpool_video.data.dataset"):
        items = [dataset[i] for i in range(len(dataset))]
    failed = {path for path, _ in dataset.failures}
    assert failed == {str(p) for p in bad.values()}
    assert all(message for _, message in dataset.failures)
    # truncated_indexed.mp4 decodes for its early clips: drawn as a substitute for such a clip
    # before its own failing clip is reached, it gives frames once (the substitute choice depends
    # only on the item's seed, not on which failures a process already knows: exact resume)
    partial = str(bad["truncated_indexed"])
    for path in failed:  # logged once, decoded once (until it fails), never returned once known bad
        assert sum(path in record.getMessage() for record in caplog.records) == 1
        assert opened.count(path) == 1 or (path == partial and opened.count(path) == 2)
    good_indices = set(range(len(barcode_records)))
    partial_index = len(barcode_records) + list(bad).index("truncated_indexed")
    assert {item["video_index"] for item in items} <= good_indices | {partial_index}
    reported = [pair for item in items for pair in decode_failures(item[FAILURES_KEY])]
    assert {path for path, _ in reported} == failed
    # a substitute keeps the requested view: its clip_index is the one asked for
    bad_item_index = (len(barcode_records) + 1) * 2 + 1  # second clip of the second bad video
    assert items[bad_item_index]["clip_index"] == 1


def test_too_many_failures_raise_one_summary(barcode_records, bad_files):
    records = barcode_records[:2] + [VideoRecord(bad_files[k], 0) for k in ("zero_byte", "text", "corrupt")]
    dataset = make(records, max_failure_fraction=0.4)  # 2 of 5 allowed, the 3rd stops
    with pytest.raises(TooManyFailedVideosError) as info:
        for index in range(len(dataset)):
            dataset[index]
    message = str(info.value)
    assert "3 of 5 videos are unreadable" in message and "max_failure_fraction=0.4" in message
    assert "zero.mp4" in message and "check_videos.py" in message


def test_retries_are_bounded(bad_files):
    records = [VideoRecord(bad_files[k], 0) for k in ("zero_byte", "text", "truncated", "corrupt")]
    dataset = make(records, max_retries=2, max_failure_fraction=1.0)
    with pytest.raises(TooManyFailedVideosError, match="failed 3 times in a row"):
        dataset[0]


def test_slowfast_items_and_repr(barcode_records):
    transform = build_transform({"test_scale": 48, "test_crop_size": 48, "num_crops": 1, "alpha": 4}, "val")
    dataset = make(barcode_records, split="val", num_frames=8, transform=transform)
    slow, fast = dataset[0]["video"]
    assert slow.shape == (3, 2, 48, 48) and fast.shape == (3, 8, 48, 48) and fast.dtype == torch.float32
    assert "split=val" in repr(dataset) and "clip=8x3" in repr(dataset)


def test_time_window_from_record(tmp_path, make_video):
    path = make_video(tmp_path / "long.mp4", num_frames=100, fps=10)
    dataset = make([VideoRecord(path, 1, start_sec=4.0, end_sec=6.0)], num_frames=4, sampling_rate=2)
    for epoch in range(10):
        dataset.set_epoch(epoch)
        frames = read_barcode_cthw(dataset[0]["video"])
        assert frames[0] >= 40 and frames[-1] < 60


def test_argument_errors(barcode_records):
    with pytest.raises(ValueError, match="split must be one of"):
        make(barcode_records, split="validation")
    with pytest.raises(ValueError, match="num_crops must be 1 or 3"):
        make(barcode_records, split="test", num_crops=2)
    with pytest.raises(ValueError, match="max_failure_fraction"):
        make(barcode_records, max_failure_fraction=1.5)
    with pytest.raises(ValueError, match="list no videos"):
        make([])
