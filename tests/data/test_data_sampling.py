"""Clip sampling: which frame indices a training or test clip takes, in frame and time mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softpool_video.data import ClipSampler


def cfr(count: int, fps: float) -> np.ndarray:
    """Presentation times of a constant-rate video."""
    return np.arange(count) / fps


def test_train_clip_has_the_configured_stride_and_random_start():
    sampler = ClipSampler(num_frames=8, sampling_rate=4)
    starts = set()
    for seed in range(200):
        indices = sampler.train_indices(cfr(300, 30.0), np.random.default_rng(seed))
        assert indices.dtype == np.int64 and indices.shape == (8,)
        assert np.all(np.diff(indices) == 4)
        assert indices[0] >= 0 and indices[-1] < 300
        starts.add(int(indices[0]))
    # starts spread over the whole admissible range [0, 300 - 29]
    assert min(starts) < 15 and max(starts) > 255 and len(starts) > 100


def test_train_clip_is_a_function_of_the_generator_state():
    sampler = ClipSampler(8, 8)
    a = sampler.train_indices(cfr(1000, 30.0), np.random.default_rng([1, 2, 3]))
    b = sampler.train_indices(cfr(1000, 30.0), np.random.default_rng([1, 2, 3]))
    c = sampler.train_indices(cfr(1000, 30.0), np.random.default_rng([1, 2, 4]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_test_clips_are_evenly_spaced_from_first_to_last_frame():
    sampler = ClipSampler(num_frames=4, sampling_rate=2)  # span 7 frames
    clips = [sampler.test_indices(cfr(107, 25.0), k, num_clips=5) for k in range(5)]
    assert clips[0].tolist() == [0, 2, 4, 6]
    assert clips[-1].tolist() == [100, 102, 104, 106]  # ends on the last frame
    starts = [c[0] for c in clips]
    assert starts == [0, 25, 50, 75, 100]
    single = sampler.test_indices(cfr(107, 25.0), 0, num_clips=1)
    assert single.tolist() == [50, 52, 54, 56]  # centred
    with pytest.raises(ValueError, match="clip_index"):
        sampler.test_indices(cfr(107, 25.0), 5, num_clips=5)


def test_short_videos_stretch_the_clip_and_repeat_frames():
    sampler = ClipSampler(num_frames=8, sampling_rate=8)  # span 57
    stretched = sampler.train_indices(cfr(30, 30.0), np.random.default_rng(0))
    assert stretched.tolist() == np.floor(np.linspace(0, 29, 8) + 0.5).astype(int).tolist()
    assert stretched[0] == 0 and stretched[-1] == 29
    repeated = sampler.test_indices(cfr(3, 30.0), 1, num_clips=3)
    assert repeated.tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert sampler.train_indices(cfr(1, 30.0), np.random.default_rng(0)).tolist() == [0] * 8


def test_target_fps_samples_the_same_seconds_at_any_frame_rate():
    sampler = ClipSampler(num_frames=4, sampling_rate=2, target_fps=30)  # an instant every 1/15 s
    assert sampler.step_seconds == pytest.approx(1 / 15)
    # 200 frames at 60 fps: 3.3167 s; the 0.2 s clip centred: starts at 1.5583 s = frame 93.5
    assert sampler.test_indices(cfr(200, 60.0), 0, 1).tolist() == [93, 97, 101, 105]
    assert np.all(np.diff(sampler.test_indices(cfr(200, 30.0), 0, 1)) == 2)
    assert np.all(np.diff(sampler.test_indices(cfr(200, 15.0), 0, 1)) == 1)


def test_time_mode_takes_the_frame_on_screen_at_each_instant():
    # frames at 0, 0.1, 0.15, 0.5, 0.6 s; instants every 0.1 s from 0 (clip 0 of 2)
    times = np.array([0.0, 0.1, 0.15, 0.5, 0.6])
    sampler = ClipSampler(num_frames=5, sampling_rate=1, target_fps=10)
    assert sampler.test_indices(times, 0, 2).tolist() == [0, 1, 2, 2, 2]  # 0.3 and 0.4 s: still frame 2
    assert sampler.test_indices(times, 1, 2).tolist() == [2, 2, 2, 3, 4]  # 0.2 ... 0.6 s
    # shorter than the clip: instants spread from the first to the last frame
    assert ClipSampler(3, 4, target_fps=10).test_indices(times, 0, 1).tolist() == [0, 2, 4]


def test_window_restricts_sampling():
    sampler = ClipSampler(num_frames=4, sampling_rate=1)
    for seed in range(50):
        indices = sampler.train_indices(cfr(1000, 30.0), np.random.default_rng(seed), window=(100, 110))
        assert indices.min() >= 100 and indices.max() < 110
    assert sampler.test_indices(cfr(1000, 30.0), 1, 2, window=(100, 110)).tolist() == [106, 107, 108, 109]
    # a window outside the video falls back to the whole video rather than failing
    assert sampler.test_indices(cfr(20, 30.0), 0, 1, window=(500, 600)).tolist() == [8, 9, 10, 11]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_frames"):
        ClipSampler(0, 1)
    with pytest.raises(ValueError, match="sampling_rate"):
        ClipSampler(8, 0)
    with pytest.raises(ValueError, match="target_fps"):
        ClipSampler(8, 8, target_fps=0)
    with pytest.raises(ValueError, match="frame_times is empty"):
        ClipSampler(8, 8).train_indices(cfr(0, 30.0), np.random.default_rng(0))


@settings(max_examples=200, deadline=None)
@given(
    num_video_frames=st.integers(1, 400),
    num_frames=st.integers(1, 32),
    sampling_rate=st.integers(1, 10),
    fps=st.floats(5.0, 120.0),
    target_fps=st.one_of(st.none(), st.floats(5.0, 60.0)),
    num_clips=st.integers(1, 10),
    seed=st.integers(0, 2**31),
)
def test_indices_always_valid(num_video_frames, num_frames, sampling_rate, fps, target_fps, num_clips, seed):
    sampler = ClipSampler(num_frames, sampling_rate, target_fps)
    times = cfr(num_video_frames, fps)
    clips = [sampler.train_indices(times, np.random.default_rng(seed))]
    clips += [sampler.test_indices(times, k, num_clips) for k in range(num_clips)]
    for indices in clips:
        assert indices.shape == (num_frames,)
        assert indices.min() >= 0 and indices.max() < num_video_frames
        assert np.all(np.diff(indices) >= 0)  # time runs forward
    test_starts = [int(c[0]) for c in clips[1:]]
    assert test_starts == sorted(test_starts)
