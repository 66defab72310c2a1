"""`softpool-visualize VIDEO mode=features`: a model's feature maps entering and leaving one pool.

The model (from the registry or a ``softpool-train`` checkpoint) runs on a clip of the video up
to the chosen pooling layer; the features entering it are then pooled by the same layer as max
pooling and as SoftPool (same kernel, stride, padding, via :func:`swap_pooling`). Each feature map
is shown as a heat-map video of its mean absolute activation over channels, on one colour scale
shared by the three maps, next to the input clip:

    input clip | entering (C, T, H, W) | leaving, max pool | leaving, SoftPool
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch import nn

from softpool_video.data.decoders import decode_video
from softpool_video.visualize.render import label_frames, write_gif, write_mp4

__all__ = [
    "FeaturesResult",
    "capture_pool_input",
    "describe_features",
    "feature_heatmap",
    "find_pool_layer",
    "visualize_features",
]

_POOL_KINDS = ("max", "soft")


class _StopForward(Exception):
    """Raised by the capture hook: nothing after the pool needs to run."""


@dataclass
class FeaturesResult:
    """What :func:`visualize_features` computed and wrote.

    Attributes:
        model_name, layer: the model and the name of its pooling module.
        weights: where the weights came from (a file, a published name, or random initialisation).
        clip: the model input before normalisation, ``(3, T, H, W)`` in [0, 1].
        entering: features entering the pool, ``(C, T, H, W)``.
        leaving: "max"/"soft" -> the pooled features ``(C, T', H', W')``.
        files: output name -> path.
    """

    model_name: str
    layer: str
    weights: str
    clip: torch.Tensor
    entering: torch.Tensor
    leaving: dict[str, torch.Tensor]
    files: dict[str, Path] = field(default_factory=dict)


def find_pool_layer(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Module]:
    """``(name, module)`` of the pooling module ``layer``, or of the first non-adaptive pool.

    Raises:
        ValueError: naming ``layer`` and listing the model's pools when it is not one of them.
    """
    from softpool_video.models import pool_kind

    pools = {}
    for name, module in model.named_modules():
        kind = pool_kind(module)
        if kind is not None and not kind[0].startswith("adaptive") and kind[1] == 3:
            pools[name] = module
    if layer is None:
        if not pools:
            raise ValueError(
                "the model has no 3-D max/avg/soft pooling layer to show "
                "(registry models without a stem pool take stem_pool=True)"
            )
        return next(iter(pools.items()))
    if layer not in pools:
        raise ValueError(
            f"layer={layer!r} is not a 3-D pooling module of this model; its pools: {list(pools)}"
        )
    return layer, pools[layer]


def _pool_variants(module: nn.Module, temperature: float) -> dict[str, nn.Module]:
    """The pool as max pooling and as SoftPool, with the module's kernel/stride/padding."""
    from softpool_video.models import swap_pooling

    variants = {}
    for kind in _POOL_KINDS:
        holder = nn.Sequential(copy.deepcopy(module))
        swap_pooling(holder, pool=kind, temperature=temperature)
        variants[kind] = holder[0]
    return variants


def capture_pool_input(model: nn.Module, pool: nn.Module, inputs) -> torch.Tensor:
    """Run ``model(inputs)`` until ``pool`` is called and return the tensor it receives."""
    captured = []

    def hook(_module, args):
        captured.append(args[0].detach())
        raise _StopForward

    handle = pool.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(inputs)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the pooling layer was not called during the forward pass")
    return captured[0]


def feature_heatmap(
    features: torch.Tensor, vmin: float, vmax: float, colormap: str = "inferno"
) -> np.ndarray:
    """Mean |activation| over channels as colours: ``(C, T, H, W)`` -> ``(T, H, W, 3)`` uint8."""
    energy = features.abs().mean(dim=0)
    scaled = ((energy - vmin) / max(vmax - vmin, 1e-12)).clamp(0, 1).numpy()
    colours = matplotlib.colormaps[colormap](scaled)[..., :3]
    return (colours * 255).round().astype(np.uint8)


def _enlarge(frames: np.ndarray, time_steps: int, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of ``(T, h, w, 3)`` frames to ``(time_steps, height, width, 3)``."""
    t_index = (np.arange(time_steps) * frames.shape[0] // time_steps).clip(max=frames.shape[0] - 1)
    y_index = np.arange(height) * frames.shape[1] // height
    x_index = np.arange(width) * frames.shape[2] // width
    return frames[t_index][:, y_index][:, :, x_index]


def _build_model(model_name: str, checkpoint: str | None, pretrained: str | None):
    """(model in eval mode, name, normalisation mean, std)."""
    from softpool_video.data.transforms import DEFAULT_MEAN, DEFAULT_STD

    if checkpoint is not None:
        from softpool_video.models.loading import load_model_from_checkpoint

        model, config, _ = load_model_from_checkpoint(checkpoint)
        data = config.get("data") or {}
        name = (config.get("model") or {}).get("name", "checkpoint")
        return model, name, data.get("mean") or DEFAULT_MEAN, data.get("std") or DEFAULT_STD
    from softpool_video.models import build_model

    # pooling="original": the layer shown is the model's own pool, both variants are made from it;
    # the class count only sizes the head, which never runs here (400: Kinetics-400 checkpoints fit)
    model = build_model(model_name, num_classes=400, pooling="original", pretrained=pretrained)
    return model.eval(), model_name, DEFAULT_MEAN, DEFAULT_STD


def visualize_features(
    video: str | Path,
    model: str = "slowfast_r50",
    checkpoint: str | None = None,
    pretrained: str | None = None,
    layer: str | None = None,
    output: str | Path | None = None,
    start: float | None = None,
    num_frames: int | None = None,
    crop_size: int | None = None,
    temperature: float = 1.0,
    gif: bool = True,
    gif_width: int = 480,
    panel_side: int = 224,
) -> FeaturesResult:
    """Show the features entering and leaving one pooling layer of a model, for max vs SoftPool.

    The clip is ``num_frames`` consecutive frames from ``start`` (default: the model's frame count),
    shrunk so the short side is ``crop_size`` (default: the model's) and centre-cropped to a square.
    Writes ``features_<layer>.mp4`` (and ``.gif``) into ``output``
    (default ``outputs/visualize/<video stem>``).
    """
    from softpool_video.models import model_input

    net, model_name, mean, std = _build_model(model, checkpoint, pretrained)
    layer_name, pool = find_pool_layer(net, layer)
    num_frames = num_frames or getattr(net, "num_frames", None) or 8
    crop_size = crop_size or getattr(net, "crop_size", None) or 112

    clip = decode_video(video, start=start, max_frames=num_frames, short_side=crop_size)
    if clip.num_frames < num_frames:
        raise ValueError(
            f"num_frames={num_frames}: {clip.path} has only {clip.num_frames} frames "
            f"from {clip.start_time:.2f} s"
        )
    frames = clip.frames
    if min(clip.height, clip.width) < crop_size:  # small videos: enlarge so the short side fits the crop
        scale = crop_size / min(clip.height, clip.width)
        size = (max(crop_size, round(clip.height * scale)), max(crop_size, round(clip.width * scale)))
        frames = torch.nn.functional.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        frames = frames.clamp(0, 1)
    height, width = frames.shape[-2:]
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    frames = frames[:, :, top : top + crop_size, left : left + crop_size]
    normalised = (frames - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)

    entering = capture_pool_input(net, pool, model_input(net, normalised.unsqueeze(0)))
    with torch.no_grad():
        leaving = {kind: module(entering)[0] for kind, module in _pool_variants(pool, temperature).items()}
    entering = entering[0]
    weights = checkpoint or pretrained or "random initialisation (give checkpoint= or pretrained=)"
    result = FeaturesResult(model_name, layer_name, str(weights), frames, entering, leaving)

    # one colour scale for all maps (2nd..99.5th percentile of the entering energy)
    energy = entering.abs().mean(dim=0).flatten()
    sample = energy[torch.randperm(energy.numel())[:100_000]]
    vmin, vmax = torch.quantile(sample, 0.02).item(), torch.quantile(sample, 0.995).item()
    steps, side = frames.shape[1], panel_side
    panels = [
        label_frames(
            _enlarge((frames.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8), steps, side, side),
            ["input clip", f"{crop_size}x{crop_size} px, {steps} frames"],
        ),
        label_frames(
            _enlarge(feature_heatmap(entering, vmin, vmax), steps, side, side),
            ["entering the pool", "x".join(map(str, entering.shape))],
        ),
    ]
    for kind, pooled in leaving.items():
        label = "max pool" if kind == "max" else "SoftPool"
        panels.append(
            label_frames(
                _enlarge(feature_heatmap(pooled, vmin, vmax), steps, side, side),
                [f"leaving, {label}", "x".join(map(str, pooled.shape))],
            )
        )
    composite = np.concatenate(panels, axis=2)
    output = Path(output) if output is not None else Path("outputs") / "visualize" / clip.path.stem
    stem = "features_" + layer_name.replace(".", "_")
    result.files[f"{stem}.mp4"] = write_mp4(composite, output / f"{stem}.mp4", clip.fps)
    if gif:
        result.files[f"{stem}.gif"] = write_gif(
            composite, output / f"{stem}.gif", clip.fps, max_width=gif_width
        )
    return result


def describe_features(result: FeaturesResult) -> str:
    """Human-readable summary of a :func:`visualize_features` run."""
    shape = lambda t: "x".join(map(str, t.shape))
    lines = [
        f"model {result.model_name}, pooling layer {result.layer}",
        f"  weights              {result.weights}",
        f"  input clip           {shape(result.clip)}",
        f"  entering the pool    {shape(result.entering)}",
    ]
    for kind, pooled in result.leaving.items():
        energy = pooled.abs().mean().item()
        lines.append(f"  leaving, {kind:<4} pool   {shape(pooled)}  mean |activation| {energy:.4f}")
    lines += [f"wrote {path}" for path in result.files.values()]
    return "\n".join(lines)
