"""Clip transforms on video tensors (torchvision.transforms.v2) and SlowFast packing."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from softpool_video.data import (
    PackPathway,
    RandomShortSideScale,
    ShortSideScale,
    ToCTHW,
    ViewCrop,
    build_transform,
)
from softpool_video.data.transforms import denormalize, to_video_tensor, uniform_temporal_subsample

CFG = {
    "train_jitter_scales": [64, 80],
    "train_crop_size": 56,
    "test_scale": 64,
    "test_crop_size": 56,
    "num_crops": 3,
    "hflip_prob": 0.5,
}


def moving_frames(t=8, h=72, w=96) -> torch.Tensor:
    """uint8 (T, H, W, 3): a horizontal ramp (brighter to the right) that shifts over time."""
    x = torch.arange(w, dtype=torch.float32)
    frames = torch.empty(t, h, w, 3, dtype=torch.uint8)
    for k in range(t):
        frames[k] = ((x + 3 * k) * 255 / (w + 3 * t)).round().to(torch.uint8).view(1, w, 1).expand(h, w, 3)
    return frames


def sample(frames, crop_index=0):
    return {
        "video": to_video_tensor(frames),
        "label": 4,
        "video_index": 2,
        "clip_index": 1,
        "crop_index": crop_index,
    }


def test_to_video_tensor_is_a_channels_last_view():
    frames = moving_frames()
    video = to_video_tensor(frames)
    assert isinstance(video, tv_tensors.Video) and video.shape == (8, 3, 72, 96)
    assert video.data_ptr() == frames.data_ptr()
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        to_video_tensor(frames.permute(0, 3, 1, 2))


def test_train_pipeline_output_shape_dtype_and_passthrough():
    out = build_transform(CFG, "train")(sample(moving_frames()))
    assert out["video"].shape == (3, 8, 56, 56) and out["video"].dtype == torch.float32
    assert type(out["video"]) is torch.Tensor  # plain tensor: collates and feeds any model
    assert (out["label"], out["video_index"], out["clip_index"]) == (4, 2, 1)
    # normalised: values of [0, 1] pixels with mean 0.45, std 0.225
    assert out["video"].min() >= (0 - 0.45) / 0.225 - 1e-5 and out["video"].max() <= (1 - 0.45) / 0.225 + 1e-5


def test_random_crop_and_flip_are_the_same_for_every_frame():
    still = moving_frames(t=1).expand(6, -1, -1, -1).contiguous()  # 6 identical frames
    transform = build_transform({**CFG, "hflip_prob": 1.0}, "train")
    for seed in range(5):
        torch.manual_seed(seed)
        video = transform(sample(still))["video"]
        assert all(torch.equal(video[:, 0], video[:, k]) for k in range(1, 6))
        # flipped: the ramp now gets darker to the right
        assert video[0, 0, :, 0].mean() > video[0, 0, :, -1].mean()


def test_scale_jitter_draws_short_sides_in_range_and_keeps_aspect():
    transform = RandomShortSideScale(64, 80)
    sizes = set()
    for seed in range(60):
        torch.manual_seed(seed)
        out = transform(to_video_tensor(moving_frames(h=72, w=96)))
        short, long = sorted(out.shape[-2:])
        assert 64 <= short <= 80 and long == round(short * 96 / 72)
        sizes.add(short)
    assert min(sizes) <= 66 and max(sizes) >= 78
    portrait = ShortSideScale(32)(to_video_tensor(moving_frames(h=96, w=48)))
    assert portrait.shape[-2:] == (64, 32)


def test_random_resized_crop_variant():
    cfg = {**CFG, "train_crop": "random_resized", "random_resized_scale": [0.3, 1.0]}
    out = build_transform(cfg, "train")(sample(moving_frames()))
    assert out["video"].shape == (3, 8, 56, 56)
    with pytest.raises(ValueError, match="train_crop"):
        build_transform({**CFG, "train_crop": "zoom"}, "train")


def test_three_crops_are_left_centre_right_and_top_centre_bottom():
    transform = build_transform(CFG, "test")
    means = [transform(sample(moving_frames(), k))["video"].mean().item() for k in range(3)]
    assert means[0] < means[1] < means[2]  # the ramp is brighter to the right
    crops = [ViewCrop(4, num_crops=3, crop_index=k)(torch.arange(10 * 6).view(1, 1, 10, 6)) for k in range(3)]
    # portrait 10x6 frame: crops slide down the long (vertical) side, centred horizontally
    assert [c[0, 0, 0, 0].item() for c in crops] == [0 * 6 + 1, 3 * 6 + 1, 6 * 6 + 1]
    centre = ViewCrop(4)(torch.arange(6 * 10).view(1, 1, 6, 10))
    assert centre[0, 0, 0, 0].item() == 1 * 10 + 3


def test_view_crop_errors():
    with pytest.raises(ValueError, match="num_crops must be 1 or 3"):
        ViewCrop(8, num_crops=2)
    with pytest.raises(ValueError, match=r"cannot take a 64px crop of 48x64"):
        ViewCrop(64)(torch.zeros(1, 3, 48, 64))
    with pytest.raises(ValueError, match="crop_index"):
        ViewCrop(8, 3)({"video": torch.zeros(1, 3, 16, 16), "crop_index": 3})


def test_test_pipeline_is_deterministic_and_normalises_gray_to_zero():
    gray = torch.full((4, 70, 90, 3), round(0.45 * 255), dtype=torch.uint8)
    transform = build_transform(CFG, "test")
    a = transform(sample(gray, 1))["video"]
    b = transform(sample(gray, 1))["video"]
    assert torch.equal(a, b)
    assert a.abs().max() < 0.01
    assert torch.allclose(denormalize(a), torch.full_like(a, 0.45), atol=0.003)


def test_pack_pathway_selects_evenly_spaced_slow_frames():
    clip = torch.arange(32, dtype=torch.float32).view(1, 32, 1, 1).expand(3, 32, 2, 2)
    slow, fast = PackPathway(alpha=4)(clip)
    assert slow.shape == (3, 8, 2, 2) and fast is clip
    assert slow[0, :, 0, 0].tolist() == torch.linspace(0, 31, 8).long().float().tolist()
    assert slow[0, 0, 0, 0] == 0 and slow[0, -1, 0, 0] == 31
    with pytest.raises(ValueError, match="too short"):
        PackPathway(8)(torch.zeros(3, 4, 2, 2))
    with pytest.raises(ValueError, match="after ToCTHW"):
        PackPathway(2)([clip, clip])


def test_slowfast_pipeline_from_config():
    out = build_transform({**CFG, "alpha": 4}, "test")(sample(moving_frames(t=16), 2))
    slow, fast = out["video"]
    assert slow.shape == (3, 4, 56, 56) and fast.shape == (3, 16, 56, 56)
    assert torch.equal(slow, fast[:, [0, 5, 10, 15]])


def test_custom_v2_pipelines_mix_with_ours():
    transform = v2.Compose(
        [v2.RandomCrop(40), v2.ToDtype(torch.float32, scale=True), v2.GaussianBlur(3), ToCTHW()]
    )
    out = transform(sample(moving_frames()))
    assert out["video"].shape == (3, 8, 40, 40) and out["crop_index"] == 0
    # bare tensors work too
    assert ToCTHW()(torch.zeros(5, 3, 4, 4)).shape == (3, 5, 4, 4)


def test_uniform_temporal_subsample():
    clip = torch.arange(10).view(1, 10, 1, 1)
    assert uniform_temporal_subsample(clip, 4).flatten().tolist() == [0, 3, 6, 9]
    assert uniform_temporal_subsample(clip, 12).flatten().tolist()[:3] == [0, 1, 2]


def test_config_validation_errors():
    with pytest.raises(ValueError, match="train_jitter_scales"):
        build_transform({**CFG, "train_jitter_scales": [32, 40]}, "train")
    with pytest.raises(ValueError, match="split"):
        build_transform(CFG, "holdout")
