"""Clip transforms on video tensors, built on torchvision.transforms.v2.

The dataset calls its transform on a *sample dict*::

    {"video": tv_tensors.Video uint8 (T, C, H, W), "label": int, "video_index": int,
     "clip_index": int, "crop_index": int}

and expects the dict back with ``video`` turned into model input: float ``(C, T, H, W)``, or
``[slow (C, T // alpha, H, W), fast (C, T, H, W)]`` for SlowFast. torchvision v2 transforms
accept such dicts directly (they transform the ``Video`` and pass the ints through) and apply the
same random parameters to every frame, so any ``v2`` transform can be mixed with the few
video-specific ones here. Each transform here also accepts a bare tensor instead of a dict.

``build_transform(cfg, split)`` assembles the standard pipelines:

- train: random short-side scale in ``train_jitter_scales`` -> random crop (or random-resized
  crop) -> horizontal flip -> float in [0, 1] -> normalise -> ``(C, T, H, W)`` [-> pathways];
- val/test: short-side scale to ``test_scale`` -> crop ``crop_index`` of ``num_crops`` (centre,
  or left/centre/right along the long side) -> float -> normalise -> ``(C, T, H, W)`` [-> pathways].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from softpool_video.constants import SPLITS

# pytorchvideo's Kinetics statistics, used by its model zoo
DEFAULT_MEAN = (0.45, 0.45, 0.45)
DEFAULT_STD = (0.225, 0.225, 0.225)


def _video_of(sample: Any) -> torch.Tensor:
    return sample["video"] if isinstance(sample, Mapping) else sample


def _with_video(sample: Any, video: Any) -> Any:
    if isinstance(sample, Mapping):
        return {**sample, "video": video}
    return video


def _short_side_size(height: int, width: int, short_side: int) -> list[int]:
    if height <= width:
        return [short_side, max(1, round(width * short_side / height))]
    return [max(1, round(height * short_side / width)), short_side]


def to_video_tensor(frames: torch.Tensor) -> tv_tensors.Video:
    """uint8 ``(T, H, W, C)`` decoded frames -> ``tv_tensors.Video`` ``(T, C, H, W)``, no copy.

    The result is a channels-last view, which is what torchvision's fast uint8 resize wants.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got shape {tuple(frames.shape)}")
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


class ShortSideScale(v2.Transform):
    """Resize so the short side is ``size`` (aspect ratio kept). ``(..., C, H, W)`` in and out."""

    def __init__(self, size: int, antialias: bool = True):
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)
        self.antialias = antialias

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"size": self.size}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        height, width = inpt.shape[-2:]
        new_size = _short_side_size(height, width, params["size"])
        if new_size == [height, width]:
            return inpt
        return self._call_kernel(F.resize, inpt, new_size, antialias=self.antialias)


class RandomShortSideScale(ShortSideScale):
    """Resize so the short side is a random integer in ``[min_size, max_size]`` (scale jitter)."""

    def __init__(self, min_size: int, max_size: int, antialias: bool = True):
        if not 1 <= min_size <= max_size:
            raise ValueError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")
        super().__init__(min_size, antialias)
        self.min_size, self.max_size = int(min_size), int(max_size)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"size": int(torch.randint(self.min_size, self.max_size + 1, ()).item())}


class ViewCrop:
    """Square crop number ``crop_index`` of ``num_crops`` evenly spaced along the long side.

    ``num_crops=1`` is a centre crop; ``num_crops=3`` gives left/centre/right (top/centre/bottom
    for portrait videos), the standard 3-crop test. The index comes from the sample dict's
    ``crop_index`` (or ``crop_index`` given here for bare tensors).
    """

    def __init__(self, size: int, num_crops: int = 1, crop_index: int = 0):
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        self.size, self.num_crops, self.crop_index = int(size), num_crops, crop_index

    def __call__(self, sample: Any) -> Any:
        video = _video_of(sample)
        crop_index = (
            sample.get("crop_index", self.crop_index) if isinstance(sample, Mapping) else self.crop_index
        )
        if not 0 <= crop_index < self.num_crops:
            raise ValueError(f"crop_index must be in [0, {self.num_crops}), got {crop_index}")
        height, width = video.shape[-2:]
        if height < self.size or width < self.size:
            raise ValueError(
                f"cannot take a {self.size}px crop of {height}x{width} frames: scale the short side to "
                f">= {self.size} first (test_scale >= test_crop_size)"
            )
        top, left = (height - self.size) // 2, (width - self.size) // 2
        if self.num_crops == 3:
            position = [0.0, 0.5, 1.0][crop_index]
            if width >= height:
                left = round((width - self.size) * position)
            else:
                top = round((height - self.size) * position)
        return _with_video(sample, F.crop(video, top, left, self.size, self.size))

    def __repr__(self) -> str:
        return f"ViewCrop(size={self.size}, num_crops={self.num_crops})"


class ToCTHW:
    """``(T, C, H, W)`` -> plain ``torch.Tensor`` ``(C, T, H, W)`` (a view), the layout 3D CNNs take."""

    def __call__(self, sample: Any) -> Any:
        video = _video_of(sample)
        if video.ndim != 4:
            raise ValueError(f"expected a (T, C, H, W) video, got shape {tuple(video.shape)}")
        # a view: collate's stack makes the batch contiguous, so copying here would be wasted
        return _with_video(sample, video.as_subclass(torch.Tensor).permute(1, 0, 2, 3))

    def __repr__(self) -> str:
        return "ToCTHW()"


class PackPathway:
    """SlowFast input: ``(C, T, H, W)`` -> ``[slow (C, T // alpha, H, W), fast (C, T, H, W)]``.

    The slow pathway takes ``T // alpha`` frames evenly spaced over the clip (first and last
    included), as in pytorchvideo's SlowFast recipe.
    """

    def __init__(self, alpha: int):
        if alpha < 1:
            raise ValueError(f"alpha must be >= 1, got {alpha}")
        self.alpha = int(alpha)

    def __call__(self, sample: Any) -> Any:
        fast = _video_of(sample)
        if isinstance(fast, (list, tuple)) or fast.ndim != 4:
            raise ValueError("PackPathway needs a (C, T, H, W) tensor: put it after ToCTHW")
        num_slow = fast.shape[1] // self.alpha
        if num_slow < 1:
            raise ValueError(f"a clip of {fast.shape[1]} frames is too short for alpha={self.alpha}")
        index = torch.linspace(0, fast.shape[1] - 1, num_slow).long()
        return _with_video(sample, [fast.index_select(1, index), fast])

    def __repr__(self) -> str:
        return f"PackPathway(alpha={self.alpha})"


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def build_transform(cfg: Any, split: str) -> v2.Compose:
    """The standard train or val/test pipeline from a data config (``conf/data/*.yaml`` keys).

    Keys used: ``train_jitter_scales``, ``train_crop_size``, ``train_crop`` (``random`` |
    ``random_resized``), ``random_resized_scale``, ``random_resized_ratio``, ``hflip_prob``,
    ``test_scale``, ``test_crop_size``, ``num_crops``, ``mean``, ``std``, ``alpha``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    mean = list(_get(cfg, "mean", None) or DEFAULT_MEAN)
    std = list(_get(cfg, "std", None) or DEFAULT_STD)
    steps: list[Any]
    if split == "train":
        crop_size = int(_get(cfg, "train_crop_size", 224))
        crop_kind = _get(cfg, "train_crop", "random")
        if crop_kind == "random":
            low, high = (int(v) for v in _get(cfg, "train_jitter_scales", (256, 320)))
            if low < crop_size:
                raise ValueError(f"train_jitter_scales {low}..{high} must be >= train_crop_size {crop_size}")
            steps = [RandomShortSideScale(low, high), v2.RandomCrop(crop_size)]
        elif crop_kind == "random_resized":
            scale = tuple(float(v) for v in _get(cfg, "random_resized_scale", (0.08, 1.0)))
            ratio = tuple(float(v) for v in _get(cfg, "random_resized_ratio", (3 / 4, 4 / 3)))
            steps = [v2.RandomResizedCrop(crop_size, scale=scale, ratio=ratio, antialias=True)]
        else:
            raise ValueError(f"train_crop must be 'random' or 'random_resized', got {crop_kind!r}")
        flip = float(_get(cfg, "hflip_prob", 0.5))
        if flip > 0:
            steps.append(v2.RandomHorizontalFlip(flip))
    else:
        crop_size = int(_get(cfg, "test_crop_size", 256))
        scale = int(_get(cfg, "test_scale", crop_size))
        steps = [ShortSideScale(scale), ViewCrop(crop_size, int(_get(cfg, "num_crops", 1)))]
    # float conversion after cropping: fewer pixels to convert
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), ToCTHW()]
    alpha = _get(cfg, "alpha", None)
    if alpha:
        steps.append(PackPathway(int(alpha)))
    return v2.Compose(steps)


def uniform_temporal_subsample(video: torch.Tensor, num_samples: int, dim: int = 1) -> torch.Tensor:
    """``num_samples`` evenly spaced frames along ``dim`` (first and last included)."""
    index = torch.linspace(0, video.shape[dim] - 1, num_samples).round().long()
    return video.index_select(dim, index)


def denormalize(
    video: torch.Tensor, mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD
):
    """Undo normalisation of a ``(C, T, H, W)`` or ``(B, C, T, H, W)`` clip -> values in [0, 1]."""
    shape = (-1, 1, 1, 1)
    m = torch.as_tensor(mean, dtype=video.dtype, device=video.device).view(shape)
    s = torch.as_tensor(std, dtype=video.dtype, device=video.device).view(shape)
    return (video * s + m).clamp(0, 1)
