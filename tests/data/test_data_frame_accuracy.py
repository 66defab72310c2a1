"""One definition of a frame, held by every backend on real-world encodings.

Frame k is the k-th frame in presentation order and its time is its stored presentation
timestamp. Each variant (see ``video_variants.py``) carries its frame numbers in its pixels, so
these tests read which frame a backend really returned, and compare times with the timestamps
demuxed independently by the fixture.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from softpool_video.data import ClipSampler, VideoClipDataset, VideoRecord, open_video
from softpool_video.data.decoders import available_backends
from softpool_video.data.frame_index import clear_frame_index_cache
from softpool_video.data.testing import read_numbers

BACKENDS = [b for b in ("pyav", "decord", "torchcodec") if b in available_backends()]
VARIANTS = [
    "mp4_h264_25",
    "mp4_h264_29.97",
    "mp4_h264_60",
    "mkv_h264_30",
    "webm_vp9_odd_size",
    "mkv_vfr",
    "mp4_vfr",
    "mkv_audio_longer",
    "mp4_audio_longer",
    "webm_audio_longer",
    "mkv_open_gop",
    "mkv_starts_at_1.5s",
    "avi_mpeg4_29.97",
    "avi_mpeg4_bframes",
    "avi_xvid_packed_bframes",
]
# decord and torchcodec seek by their own numbering, which is wrong on these: the files must go
# to pyav (decord also fails on open GOPs)
NOT_EXACT = {
    "decord": {"mkv_open_gop", "avi_mpeg4_bframes", "avi_xvid_packed_bframes"},
    "torchcodec": {"avi_mpeg4_bframes", "avi_xvid_packed_bframes"},
}


def test_torchcodec_is_installed_and_tested():
    """torchcodec is a first-class backend: CI installs it and FFmpeg's shared libraries."""
    assert BACKENDS == ["pyav", "decord", "torchcodec"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", VARIANTS)
def test_every_backend_returns_exactly_the_requested_frames(video_variants, name, backend):
    variant = video_variants[name]
    n = variant.num_frames
    rng = np.random.default_rng(len(name))
    requests = [
        [n - 1, 0, n // 2, n // 2, 1, n - 2],  # last first, repeats, unsorted
        list(range(5, 29, 3)),  # a strided clip across a keyframe
        sorted(rng.choice(n, 8, replace=False).tolist()),
        [3, 2, 1, 0],  # backwards after the jumps above
        list(range(n)),  # everything
    ]
    with open_video(variant.path, backend=backend) as video:
        assert video.info.num_frames == n
        assert (video.info.width, video.info.height) == (variant.width, variant.height)
        assert video.info.fps == pytest.approx(variant.fps, rel=1e-3)
        assert video.info.variable_frame_rate == variant.variable_frame_rate
        assert video.info.start_time == pytest.approx(variant.times[0], abs=1e-6)
        np.testing.assert_allclose(video.frame_times, variant.times, atol=1e-6)
        for wanted in requests:
            clip = video.decode(wanted)
            assert clip.frames.shape == (len(wanted), variant.height, variant.width, 3)
            assert clip.frames.dtype == torch.uint8
            assert read_numbers(clip.frames) == wanted, f"{name} / {video.backend}"
            assert clip.indices.tolist() == wanted
            np.testing.assert_allclose(clip.times.numpy(), variant.times[wanted], atol=1e-6)
        expected = "pyav" if name in NOT_EXACT.get(backend, ()) else backend
        assert video.backend == expected


@pytest.mark.parametrize("name", VARIANTS)
def test_pyav_is_exact_whether_the_index_is_cached_or_read_on_open(video_variants, name):
    """A cache miss reads the index with the container that then decodes (left at the file's end)."""
    variant = video_variants[name]
    wanted = [0, 1, variant.num_frames - 1, 5, 0]
    for cached in (False, True):
        if not cached:
            clear_frame_index_cache()
        with open_video(variant.path) as video:
            assert read_numbers(video.decode(wanted).frames) == wanted
            assert read_numbers(video.decode([0]).frames) == [0]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "pyav"])
def test_a_backend_that_cannot_be_exact_is_replaced_with_one_log_line(video_variants, backend, caplog):
    from softpool_video.data import decoders

    decoders._ROUTED_REASONS.clear()
    paths = [video_variants[name].path for name in sorted(NOT_EXACT[backend])]
    with caplog.at_level(logging.DEBUG, logger="softpool_video.data.decoders"):
        for path in paths:
            with open_video(path, backend=backend) as video:
                assert video.backend == "pyav" and video.requested_backend == backend
    routed = [r for r in caplog.records if "cannot return exact frames" in r.getMessage()]
    assert len(routed) == len(paths)  # one line per file
    for record, path in zip(routed, paths):
        assert str(path) in record.getMessage()
    assert any(r.levelno == logging.WARNING for r in routed)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree_on_the_pixels(video_variants, backend):
    """Same frames, same colour conversion (within rounding) as pyav."""
    variant = video_variants["mp4_vfr"]
    wanted = [0, 7, 23, 40]
    with open_video(variant.path, "pyav") as reference, open_video(variant.path, backend) as other:
        a, b = reference.decode(wanted).frames.float(), other.decode(wanted).frames.float()
    assert (a - b).abs().mean() < 2.0


def test_audio_longer_than_the_video_is_not_a_truncated_video(video_variants):
    for name in ("mkv_audio_longer", "mp4_audio_longer", "webm_audio_longer"):
        variant = video_variants[name]
        for backend in BACKENDS:
            with open_video(variant.path, backend) as video:
                assert video.info.num_frames == variant.num_frames
                assert video.info.duration == pytest.approx(variant.num_frames / 25, abs=1e-3)
                assert video.count_decodable_frames() == variant.num_frames


def test_time_based_sampling_gives_evenly_spaced_times_on_vfr_video(video_variants):
    """target_fps lays clips on the presentation timeline: the frame on screen at evenly spaced
    instants, not evenly spaced frame numbers (which VFR bunches up or stretches)."""
    variant = video_variants["mkv_vfr"]
    times = variant.times
    sampler = ClipSampler(num_frames=8, sampling_rate=2, target_fps=10)  # one frame every 0.2 s
    slack = (times[-1] - times[0]) - 7 * 0.2  # how far the 1.4 s clip can move
    for clip_index in range(3):
        indices = sampler.test_indices(times, clip_index, 3)
        instants = times[0] + slack * clip_index / 2 + 0.2 * np.arange(8)
        # each sampled frame is the one on screen at its instant
        assert np.all(times[indices] <= instants + 1e-6)
        following = np.append(times, np.inf)[indices + 1]
        assert np.all(instants < following)
    # the frame-index mode on the same video spreads its frames unevenly in time
    by_index = ClipSampler(num_frames=8, sampling_rate=3).test_indices(times, 1, 3)
    assert np.ptp(np.diff(times[by_index])) > 0.2


@pytest.mark.parametrize("backend", BACKENDS)
def test_dataset_items_on_vfr_and_bframe_avi_files(video_variants, backend):
    """A dataset in time-based mode reads the frames its sampler chose, on every backend."""
    names = ["mkv_vfr", "mp4_vfr", "avi_xvid_packed_bframes", "avi_mpeg4_bframes", "mkv_open_gop"]
    records = [VideoRecord(video_variants[name].path, k) for k, name in enumerate(names)]
    dataset = VideoClipDataset(
        records,
        [str(k) for k in range(len(names))],
        split="test",
        num_frames=6,
        sampling_rate=3,
        target_fps=15,
        num_clips=2,
        decoder=backend,
        max_failure_fraction=0.0,
    )
    for item_index in range(len(dataset)):
        item = dataset[item_index]
        variant = video_variants[names[item["video_index"]]]
        expected = dataset.clip_sampler.test_indices(variant.times, item["clip_index"], 2)
        assert read_numbers(item["video"].permute(1, 2, 3, 0)) == expected.tolist()
    assert dataset.failures == []
