"""Timelines: segment arithmetic, segments covering real videos, the PNG plot."""

from __future__ import annotations

import math

import av
import pytest
from PIL import Image

from softpool_video.predict import Predictor, timeline_segments


def stream_duration(path) -> tuple[float, float]:
    """(duration in seconds, fps) of the video stream, read with PyAV independently of the predictor."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        if stream.duration is not None:
            return float(stream.duration * stream.time_base), fps
        return stream.frames / fps, fps


@pytest.mark.parametrize(
    ("num_frames", "fps", "window", "stride"),
    [
        (250, 25.0, 2.0, 2.0),  # exact multiple
        (250, 25.0, 2.0, 1.5),  # last segment shorter
        (120, 30000 / 1001, 1.0, 1.0),  # NTSC rate: 120 / 29.97 is just over 4 strides
        (120, 30000 / 1001, 2.0, 0.5),  # overlapping windows
        (132, 25.0, 1.0, 3.0),  # stride longer than the window
        (10, 25.0, 2.0, 2.0),  # video shorter than one window
        (30, 30.0, 0.01, 0.01),  # stride shorter than a frame
        (1, 10.0, 2.0, 1.0),  # a single frame
    ],
)
def test_segments_cover_the_video(num_frames, fps, window, stride):
    spans = timeline_segments(num_frames, fps, window, stride)
    assert spans[0].start == 0.0 and spans[0].first == 0
    assert spans[-1].end == num_frames / fps and spans[-1].stop == num_frames
    for previous, current in zip(spans, spans[1:]):
        assert previous.end == current.start and previous.stop == current.first  # contiguous
    window_frames = min(num_frames, max(1, round(window * fps)))
    for index, span in enumerate(spans):
        assert span.end > span.start and span.stop > span.first
        # the segment's frames are exactly those whose time falls inside it
        times = [i / fps for i in range(num_frames)]
        inside = [i for i, t in enumerate(times) if span.start - 1e-9 <= t < span.end - 1e-9]
        assert inside == list(range(span.first, span.stop))
        if index < len(spans) - 1 and stride * fps >= 1:
            assert span.end - span.start == pytest.approx(stride)  # all but the last: one stride
        assert span.window_first >= 0 and span.window_stop <= num_frames
        assert span.window_stop - span.window_first == window_frames
        if span.window_first > 0 and span.window_stop < num_frames:
            # windows away from the ends are centred on their segment (to half a frame)
            centre = (span.window_first + span.window_stop) / 2 / fps
            assert abs(centre - (span.start + span.end) / 2) <= 0.5 / fps + 1e-9


@pytest.mark.parametrize(("window", "stride", "count"), [(2.0, None, 5), (2.0, 1.0, 10), (1.0, 3.0, 4)])
def test_timeline_of_a_real_video(predictor, sample_videos, class_names, window, stride, count):
    video = sample_videos["bikes"]  # 250 frames at 25 fps
    timeline = predictor.timeline(video, window=window, stride=stride)
    assert timeline.ok and timeline.video == str(video)
    assert timeline.stride == (stride or window) and timeline.window == window
    assert timeline.num_views == 1  # one clip per window by default, the checkpoint's single crop
    duration, fps = stream_duration(video)
    segments = timeline.segments
    assert len(segments) == count
    assert segments[0].start == 0.0
    assert abs(segments[-1].end - duration) <= 1 / fps + 1e-9
    assert timeline.duration == pytest.approx(segments[-1].end)
    for previous, current in zip(segments, segments[1:]):
        assert current.start == previous.end
    for segment in segments:
        assert segment.end > segment.start
        assert segment.window_end - segment.window_start == pytest.approx(window, abs=1 / fps)
        assert segment.window_start >= 0.0 and segment.window_end <= duration + 1e-9
        assert math.isclose(sum(segment.probabilities), 1.0, abs_tol=1e-6)
        assert segment.label in class_names and len(segment.topk) == 3
        assert segment.probabilities[class_names.index(segment.label)] == pytest.approx(segment.probability)


def test_timeline_at_ntsc_rate_ends_at_the_duration(predictor, sample_videos):
    video = sample_videos["carphone_distorted"]  # 29.97 fps
    timeline = predictor.timeline(video, window=1.0, stride=0.75)
    duration, fps = stream_duration(video)
    assert timeline.segments[0].start == 0.0
    assert abs(timeline.segments[-1].end - duration) <= 1 / fps + 1e-9
    assert all(a.end == b.start for a, b in zip(timeline.segments, timeline.segments[1:]))


def test_timeline_clips_per_window(checkpoint, sample_videos):
    predictor = Predictor(checkpoint, device="cpu", num_clips=2)
    timeline = predictor.timeline(sample_videos["carphone_distorted"], window=2.0)
    assert timeline.num_views == 2
    assert predictor.timeline(sample_videos["carphone_distorted"], num_clips=1).num_views == 1


def test_unreadable_video_gives_an_empty_timeline(predictor, unreadable_videos):
    for path in unreadable_videos:
        timeline = predictor.timeline(path)
        assert not timeline.ok and timeline.segments == [] and timeline.error


@pytest.mark.parametrize(("window", "stride", "argument"), [(0, None, "window"), (2.0, -1.0, "stride")])
def test_bad_window_or_stride(predictor, sample_videos, window, stride, argument):
    with pytest.raises(ValueError, match=argument):
        predictor.timeline(sample_videos["bikes"], window=window, stride=stride)


def test_timeline_plot(predictor, sample_videos, tmp_path):
    timeline = predictor.timeline(sample_videos["carphone_distorted"], window=1.0, stride=1.0)
    path = timeline.plot(tmp_path / "plots" / "timeline.png")
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 200


def _synthetic_timeline(video: str, labels: list[int], names: list[str]):
    from softpool_video.predict import Timeline, TimelineSegment

    segments = []
    for index, k in enumerate(labels):
        probabilities = [0.8 if j == k else 0.2 / (len(names) - 1) for j in range(len(names))]
        segments.append(
            TimelineSegment(index, index + 1.0, index, index + 1.0, [(names[k], 0.8)], probabilities)
        )
    return Timeline(
        video, 1.0, 1.0, names, float(len(labels)), segments, num_views=3, num_clips=1, num_crops=3
    )


def _pixels_of(path, colour) -> int:
    import numpy as np

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    target = np.round(np.array(colour) * 255).astype(int)
    return int((np.abs(pixels - target).max(axis=-1) <= 2).sum())


def test_a_class_has_the_same_colour_in_every_plot(tmp_path):
    from softpool_video.predict.timeline import class_colour

    names = ["archery", "bowling", "cooking", "dancing"]
    # "cooking" is the first top-1 class of one video and the second of the other
    first = _synthetic_timeline("a.mp4", [2, 2, 0, 0], names).plot(tmp_path / "a.png")
    second = _synthetic_timeline("b.mp4", [1, 1, 2, 2], names).plot(tmp_path / "b.png")
    cooking, archery, bowling = class_colour(2), class_colour(0), class_colour(1)
    assert len({cooking, archery, bowling, class_colour(3)}) == 4
    assert _pixels_of(first, cooking) > 500 and _pixels_of(second, cooking) > 500
    assert _pixels_of(first, archery) > 500 and _pixels_of(second, archery) < 50  # drawn where present
    assert _pixels_of(second, bowling) > 500
    # beyond 20 classes colours stay fixed per index and distinct from their neighbours
    assert class_colour(25) == class_colour(25) != class_colour(26)


def test_plot_header_names_the_views_used():
    timeline = _synthetic_timeline("a.mp4", [0, 1], ["archery", "bowling", "cooking"])
    assert timeline.views_text == "1 clip x 3 crops = 3 views"
    assert timeline.to_dict()["num_crops"] == 3


def test_real_timeline_records_clips_and_crops(checkpoint, sample_videos):
    timeline = Predictor(checkpoint, device="cpu", num_clips=2).timeline(sample_videos["carphone_distorted"])
    assert (timeline.num_clips, timeline.num_crops, timeline.num_views) == (2, 1, 2)
    assert timeline.views_text == "2 clips x 1 crop = 2 views"


def test_variable_frame_rate_segments_follow_the_presentation_times():
    # 10 frames 0.1 s apart, a burst of 10 frames 0.02 s apart, then 10 frames 0.1 s apart again:
    # frame times 0.0..0.9, 1.00..1.18, 1.2..2.1; the video ends at 2.2 s. By hand, with stride 0.5:
    # [0, 0.5) frames 0-4, [0.5, 1.0) 5-9, [1.0, 1.5) 10-22 (the burst and 1.2, 1.3, 1.4),
    # [1.5, 2.0) 23-27, [2.0, 2.2) 28-29. Numbering by index / average fps (30 / 2.2 = 13.6 fps)
    # would cut at frames 7, 14, 21 and 28 instead.
    times = [0.1 * k for k in range(10)] + [1.0 + 0.02 * k for k in range(10)]
    times += [1.2 + 0.1 * k for k in range(10)]
    spans = timeline_segments(30, 30 / 2.2, window=0.5, stride=0.5, frame_times=times, duration=2.2)
    assert [(s.first, s.stop) for s in spans] == [(0, 5), (5, 10), (10, 23), (23, 28), (28, 30)]
    assert [s.start for s in spans] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert spans[-1].end == pytest.approx(2.2)
    # each window holds the frames of the 0.5 s around its segment's centre, kept inside the video:
    # [1.0, 1.5) -> [1.0, 1.5) = frames 10-22; the last one [1.85, 2.35) is shifted to [1.7, 2.2)
    assert (spans[2].window_first, spans[2].window_stop) == (10, 23)
    assert (spans[4].window_first, spans[4].window_stop) == (25, 30)
    assert (spans[0].window_first, spans[0].window_stop) == (0, 5)


def test_timeline_of_a_variable_frame_rate_video_uses_real_times(predictor, tmp_path):
    from fractions import Fraction

    import numpy as np

    from softpool_video.data.testing import write_video

    # 40 frames of 64x64: 20 at 25 fps, a 1.2 s pause, 20 more at 25 fps; 2.8 s in all
    frames = np.zeros((40, 64, 64, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(40, dtype=np.uint8)[:, None, None] * 6
    pts = [40 * k for k in range(20)] + [800 + 1200 + 40 * k for k in range(20)]
    video = write_video(tmp_path / "vfr.mp4", frames, pts, Fraction(1, 1000), rate=25)
    timeline = predictor.timeline(video, window=1.0, stride=1.0)
    assert timeline.ok
    segments = timeline.segments
    # by real time: [0, 1) holds frames 0-19 (0-0.76 s); [1, 2) holds none (the pause), so it is
    # merged into the last one, [1, 2.8), frames 20-39 (2.0-2.76 s). Numbering frames by the average
    # rate (40 / 2.8 = 14.3 fps) would instead put frames 14-19 into the second segment.
    assert [(s.start, round(s.end, 2)) for s in segments] == [(0.0, 1.0), (1.0, 2.8)]
    # the model saw real frames of each segment: its window [1.4, 2.4) s holds frames 20-29
    assert segments[1].window_start == pytest.approx(2.0) and segments[1].window_end == pytest.approx(2.4)
    assert timeline.duration == pytest.approx(2.8, abs=0.05)
    for segment in segments:
        assert 0.0 <= segment.window_start < segment.window_end <= timeline.duration + 1e-6
