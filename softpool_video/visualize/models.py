"""The model and the clip that ``mode=features`` and ``mode=gradcam`` look at.

A model comes from a ``softpool-train`` checkpoint, from a registered backbone with another
codebase's weights and a label file (as ``softpool-predict model= weights= labels=``), or from the
registry alone (random or published weights). The clip is decoded through ``data/decoders.py``,
its short side scaled to the crop, centre-cropped and normalised as the model expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from softpool_video.data.decoders import VideoClip, decode_video

__all__ = ["LoadedModel", "ModelClip", "load_visual_model", "model_clip"]


@dataclass
class LoadedModel:
    """A model in eval mode and what its input needs: normalisation, clip size, class names."""

    model: nn.Module
    name: str
    weights: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_frames: int
    crop_size: int
    sampling_rate: int = 1
    class_names: list[str] | None = None


def load_visual_model(
    model: str = "slowfast_r50",
    checkpoint: str | None = None,
    pretrained: str | None = None,
    weights: str | None = None,
    labels: str | None = None,
    num_classes: int = 400,
) -> LoadedModel:
    """The model to look at; ``checkpoint`` wins, then ``weights`` + ``labels``, then the registry.

    ``pooling="original"`` everywhere: the pools shown are the model's own. ``num_classes`` sizes a
    registry model's head (400: Kinetics-400 checkpoints fit).
    """
    from softpool_video.data.transforms import DEFAULT_MEAN, DEFAULT_STD

    if checkpoint is not None:
        from softpool_video.models.loading import load_model_from_checkpoint

        net, config, names = load_model_from_checkpoint(checkpoint)
        data = config.get("data") or {}
        name = (config.get("model") or {}).get("name", "checkpoint")
        return LoadedModel(
            net,
            name,
            str(checkpoint),
            tuple(data.get("mean") or DEFAULT_MEAN),
            tuple(data.get("std") or DEFAULT_STD),
            int(data.get("num_frames") or getattr(net, "num_frames", 8)),
            int(data.get("test_crop_size") or getattr(net, "crop_size", 112)),
            int(data.get("sampling_rate") or 1),
            names,
        )
    if weights is not None:
        from softpool_video.models.loading import load_foreign_model

        if labels is None:
            raise ValueError("weights= needs labels= (the class names of the weights' classifier)")
        net, config, names = load_foreign_model(model, weights, labels)
        data = config["data"]
        return LoadedModel(
            net,
            model,
            str(weights),
            tuple(data["mean"]),
            tuple(data["std"]),
            data["num_frames"],
            data["test_crop_size"],
            data["sampling_rate"],
            names,
        )
    from softpool_video.models import build_model

    net = build_model(model, num_classes=num_classes, pooling="original", pretrained=pretrained)
    source = pretrained or "random initialisation (give checkpoint=, weights= or pretrained=)"
    return LoadedModel(
        net.eval(), model, str(source), DEFAULT_MEAN, DEFAULT_STD, net.num_frames, net.crop_size, 1, None
    )


@dataclass
class ModelClip:
    """``frames``: ``(3, T, crop, crop)`` in [0, 1] (for display); ``normalised``: the model input
    ``(1, 3, T, crop, crop)``; ``clip``: the decoded video it came from; ``fps``: the rate of ``frames``."""

    frames: torch.Tensor
    normalised: torch.Tensor
    clip: VideoClip
    fps: float


def model_clip(
    video: str | Path,
    num_frames: int,
    crop_size: int,
    mean,
    std,
    start: float | None = None,
    sampling_rate: int = 1,
) -> ModelClip:
    """``num_frames`` frames every ``sampling_rate`` frames from ``start``, the short side scaled to
    ``crop_size`` (small videos enlarged), centre-cropped to a square and normalised.

    Raises:
        ValueError: naming ``num_frames`` when the video is too short.
    """
    span = (num_frames - 1) * sampling_rate + 1
    clip = decode_video(video, start=start, max_frames=span, short_side=crop_size)
    if clip.num_frames < span:
        raise ValueError(
            f"num_frames={num_frames}: {clip.path} has only {clip.num_frames} frames from "
            f"{clip.start_time:.2f} s (a clip of {num_frames} frames every {sampling_rate} needs {span})"
        )
    frames = clip.frames[:, ::sampling_rate]
    if min(clip.height, clip.width) < crop_size:  # small videos: enlarge so the short side fits the crop
        scale = crop_size / min(clip.height, clip.width)
        size = (max(crop_size, round(clip.height * scale)), max(crop_size, round(clip.width * scale)))
        frames = torch.nn.functional.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        frames = frames.clamp(0, 1)
    height, width = frames.shape[-2:]
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    frames = frames[:, :, top : top + crop_size, left : left + crop_size].contiguous()
    normalised = (frames - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)
    return ModelClip(frames, normalised.unsqueeze(0), clip, float(clip.fps) / sampling_rate)
