"""`softpool-visualize VIDEO mode=features`: a model's feature maps entering and leaving one pool.

The model (from the registry, a ``softpool-train`` checkpoint, or foreign weights) runs on a clip
of the video up to the chosen pooling layer; the features entering it are then pooled by the same
layer as max, avg and SoftPool (same kernel, stride, padding, via :func:`swap_pooling`). Each
feature map is shown as a heat map of its mean absolute activation over its C channels (the
channel reduction is written on the image), on one colour scale shared by all maps, with a colour
bar, next to the input clip:

    input clip | entering (C, T, H, W) | leaving, max | leaving, avg | leaving, SoftPool

Outputs: ``features_<layer>.mp4`` (each frame held so the clip plays at least
:data:`MIN_PLAYBACK_SECONDS`), ``features_<layer>.png`` (a still of a few time steps) and, when
asked, the GIF.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch import nn

from softpool_video.constants import POOL_KINDS
from softpool_video.visualize.render import label_frames, write_gif, write_mp4

__all__ = [
    "MIN_PLAYBACK_SECONDS",
    "FeaturesResult",
    "capture_pool_input",
    "describe_features",
    "feature_heatmap",
    "find_pool_layer",
    "visualize_features",
]


#: Short clips (8 frames are a quarter of a second) are held so the video lasts at least this long.
MIN_PLAYBACK_SECONDS = 4.0


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
        leaving: "max"/"avg"/"soft" -> the pooled features ``(C, T', H', W')``.
        value_range: ``(vmin, vmax)`` of the shared colour scale (mean |activation|).
        files: output name -> path.
    """

    model_name: str
    layer: str
    weights: str
    clip: torch.Tensor
    entering: torch.Tensor
    leaving: dict[str, torch.Tensor]
    files: dict[str, Path] = field(default_factory=dict)
    value_range: tuple[float, float] = (0.0, 1.0)


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
    for kind in POOL_KINDS:
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


_KIND_LABEL = {"max": "max pool", "avg": "avg pool", "soft": "SoftPool"}


def colour_bar(width: int, vmin: float, vmax: float, caption: str, colormap: str = "inferno") -> np.ndarray:
    """A ``(h, width, 3)`` uint8 strip: the colour scale from ``vmin`` to ``vmax``, ticks, a caption."""
    from PIL import Image, ImageDraw

    from softpool_video.visualize.render import _BACKGROUND, _TEXT, _font

    margin, bar_height, height = 12, 14, 58
    image = Image.new("RGB", (width, height), _BACKGROUND)
    ramp = matplotlib.colormaps[colormap](np.linspace(0, 1, max(2, width - 2 * margin)))[:, :3]
    strip = np.broadcast_to((ramp * 255).round().astype(np.uint8), (bar_height, *ramp.shape))
    image.paste(Image.fromarray(np.ascontiguousarray(strip)), (margin, 4))
    draw = ImageDraw.Draw(image)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = margin + round(fraction * (width - 2 * margin - 1))
        draw.line((x, 4 + bar_height, x, 8 + bar_height), fill=_TEXT)
        text = f"{vmin + fraction * (vmax - vmin):.3g}"
        offset = draw.textlength(text, font=_font(11)) * fraction
        draw.text((x - offset, 9 + bar_height), text, fill=_TEXT, font=_font(11))
    draw.text((margin, 24 + bar_height), caption, fill=_TEXT, font=_font(12))
    return np.asarray(image)


def _still(result: FeaturesResult, path: Path, fps: float, columns: int = 4) -> Path:
    """PNG: rows input / entering / leaving per kind, ``columns`` time steps, one colour bar."""
    from softpool_video.visualize.render import pyplot as _pyplot

    plt = _pyplot()
    steps = result.clip.shape[1]
    times = sorted(set(np.linspace(0, steps - 1, num=min(columns, steps)).round().astype(int).tolist()))
    maps = [("entering the pool", result.entering)] + [
        (f"leaving, {_KIND_LABEL[kind]}", pooled) for kind, pooled in result.leaving.items()
    ]
    vmin, vmax = result.value_range
    fig, axes = plt.subplots(
        1 + len(maps),
        len(times),
        figsize=(2.1 * len(times) + 1.2, 2.1 * (1 + len(maps)) + 0.6),
        squeeze=False,
    )
    image = None
    for column, t in enumerate(times):
        axes[0][column].imshow(result.clip[:, t].permute(1, 2, 0).numpy())
        axes[0][column].set_title(f"frame {t} ({t / fps:.2f} s)", fontsize=9)
        for row, (_, features) in enumerate(maps, start=1):
            energy = features.abs().mean(dim=0)
            index = min(t * energy.shape[0] // steps, energy.shape[0] - 1)  # the pooled step covering t
            image = axes[row][column].imshow(energy[index].numpy(), cmap="inferno", vmin=vmin, vmax=vmax)
    labels = ["input clip"] + [f"{name}\n{'x'.join(map(str, f.shape))}" for name, f in maps]
    for row, label in enumerate(labels):
        axes[row][0].set_ylabel(label, fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    channels = result.entering.shape[0]
    fig.suptitle(
        f"{result.model_name}, pool {result.layer}: mean |activation| over the {channels} channels "
        f"(weights: {Path(result.weights).name if Path(result.weights).exists() else result.weights})",
        fontsize=10,
    )
    fig.colorbar(
        image, ax=axes.ravel().tolist(), shrink=0.6, label=f"mean |activation| over {channels} channels"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    gif: bool = False,
    gif_width: int = 480,
    panel_side: int = 224,
    weights: str | None = None,
    labels: str | None = None,
) -> FeaturesResult:
    """Show the features entering and leaving one pooling layer of a model, for max, avg and SoftPool.

    The clip is ``num_frames`` consecutive frames from ``start`` (default: the model's frame count),
    shrunk so the short side is ``crop_size`` (default: the model's) and centre-cropped to a square.
    Writes ``features_<layer>.mp4``, ``features_<layer>.png`` (and ``.gif`` when ``gif``) into
    ``output`` (default ``outputs/visualize/<video stem>``).
    """
    from softpool_video.models import model_input
    from softpool_video.visualize.models import load_visual_model, model_clip

    loaded = load_visual_model(model, checkpoint, pretrained, weights, labels)
    net = loaded.model
    layer_name, pool = find_pool_layer(net, layer)
    num_frames = num_frames or getattr(net, "num_frames", None) or 8
    crop_size = crop_size or getattr(net, "crop_size", None) or 112

    prepared = model_clip(video, num_frames, crop_size, loaded.mean, loaded.std, start=start)
    frames = prepared.frames
    entering = capture_pool_input(net, pool, model_input(net, prepared.normalised))
    with torch.no_grad():
        leaving = {kind: module(entering)[0] for kind, module in _pool_variants(pool, temperature).items()}
    entering = entering[0]
    result = FeaturesResult(loaded.name, layer_name, loaded.weights, frames, entering, leaving)

    # one colour scale for all maps (2nd..99.5th percentile of the entering energy)
    energy = entering.abs().mean(dim=0).flatten()
    sample = energy[torch.randperm(energy.numel())[:100_000]]
    vmin, vmax = torch.quantile(sample, 0.02).item(), torch.quantile(sample, 0.995).item()
    result.value_range = (vmin, vmax)
    steps, side = frames.shape[1], panel_side
    channels = entering.shape[0]
    reduction = f"mean |act| of {channels} ch"
    panels = [
        label_frames(
            _enlarge((frames.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8), steps, side, side),
            ["input clip", f"{crop_size}x{crop_size} px, {steps} frames"],
        ),
        label_frames(
            _enlarge(feature_heatmap(entering, vmin, vmax), steps, side, side),
            ["entering the pool", "x".join(map(str, entering.shape)), reduction],
        ),
    ]
    for kind, pooled in leaving.items():
        panels.append(
            label_frames(
                _enlarge(feature_heatmap(pooled, vmin, vmax), steps, side, side),
                [f"leaving, {_KIND_LABEL[kind]}", "x".join(map(str, pooled.shape)), reduction],
            )
        )
    height = max(panel.shape[1] for panel in panels)
    panels = [
        np.pad(p, ((0, 0), (0, height - p.shape[1]), (0, 0), (0, 0)), constant_values=24) for p in panels
    ]
    composite = np.concatenate(panels, axis=2)
    bar = colour_bar(
        composite.shape[2],
        vmin,
        vmax,
        f"colour: mean |activation| over the {channels} channels (shared scale)",
    )
    composite = np.concatenate([composite, np.broadcast_to(bar, (steps, *bar.shape))], axis=1)
    # hold each frame so a short clip plays long enough to follow
    hold = max(1, math.ceil(MIN_PLAYBACK_SECONDS * prepared.fps / steps))
    played = np.repeat(composite, hold, axis=0)
    output = Path(output) if output is not None else Path("outputs") / "visualize" / prepared.clip.path.stem
    stem = "features_" + layer_name.replace(".", "_")
    result.files[f"{stem}.mp4"] = write_mp4(played, output / f"{stem}.mp4", prepared.fps)
    result.files[f"{stem}.png"] = _still(result, output / f"{stem}.png", prepared.fps)
    if gif:
        width = max(gif_width, 200 * len(panels))
        result.files[f"{stem}.gif"] = write_gif(played, output / f"{stem}.gif", prepared.fps, max_width=width)
    return result


def describe_features(result: FeaturesResult) -> str:
    """Human-readable summary of a :func:`visualize_features` run."""
    shape = lambda t: "x".join(map(str, t.shape))  # noqa: E731
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
