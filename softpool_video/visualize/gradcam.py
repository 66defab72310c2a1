"""`softpool-visualize VIDEO mode=gradcam`: where in space and time the model sees its class.

Grad-CAM (Selvaraju et al., 2017) on video: the feature map ``A`` entering the model's head pool,
``(C, T', H', W')``, is weighted per channel by the mean gradient of the class score over the
map, ``w_c = mean(d score / d A_c)``, and ``relu(sum_c w_c A_c)`` is the class-activation map,
upsampled (trilinearly) to the clip's frames and pixels and shown as a heat map over them. SlowFast
models get one map per pathway (each pathway has its own head pool).

The class is the predicted one (``target=None``) or a given one (a name from the class list or an
index). Outputs: ``gradcam.mp4`` (input | overlay per pathway, one frame per model input frame,
played at the clip's real rate) and ``gradcam.png`` (a few frames, with the colour scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from softpool_video.visualize.render import label_frames, pyplot, write_mp4

__all__ = [
    "GradCamResult",
    "class_activation_maps",
    "describe_gradcam",
    "find_cam_layers",
    "visualize_gradcam",
]

_COLORMAP = "jet"


@dataclass
class GradCamResult:
    """What :func:`visualize_gradcam` computed and wrote.

    Attributes:
        model_name, weights: the model and where its weights came from.
        target: the class index explained; ``label`` its name; ``probability`` its softmax value;
            ``predicted``: whether it is the model's top-1 (``target=None``).
        clip: the model input before normalisation, ``(3, T, S, S)`` in [0, 1].
        maps: layer name -> class-activation map ``(T, S, S)`` in [0, 1] (one per pathway).
        files: output name -> path.
        hold: how many video frames show each clip frame (``gradcam.mp4`` has ``T * hold``).
    """

    model_name: str
    weights: str
    target: int
    label: str
    probability: float
    predicted: bool
    clip: torch.Tensor
    maps: dict[str, torch.Tensor]
    layer_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    hold: int = 1  # video frames per clip frame (short clips are held to play long enough)


def find_cam_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The head pools whose inputs Grad-CAM explains: the last pooling module of the model (not the
    averaging of class scores after a pytorchvideo head), with its sibling pathways for SlowFast
    (``blocks.5.pool.0`` and ``blocks.5.pool.1``)."""
    from softpool_video.models import pool_kind

    pools = [
        (name, module)
        for name, module in model.named_modules()
        if pool_kind(module) is not None and not name.endswith("output_pool")
    ]
    if not pools:
        raise ValueError("the model has no pooling layer ahead of its classifier to explain")
    last_name = pools[-1][0]
    parent, _, tail = last_name.rpartition(".")
    if tail.isdigit():  # pathways held in a ModuleList: every sibling is a pathway's head pool
        return [(name, module) for name, module in pools if name.rpartition(".")[0] == parent]
    return [pools[-1]]


def _resolve_target(target: int | str | None, names: list[str], num_classes: int) -> int | None:
    if target is None:
        return None
    if isinstance(target, str) and not target.strip().lstrip("-").isdigit():
        if target not in names:
            from softpool_video.cli import did_you_mean

            raise ValueError(f"target={target!r} is not a class of the model{did_you_mean(target, names)}")
        return names.index(target)
    index = int(target)
    if not 0 <= index < num_classes:
        raise ValueError(f"target={index} must be a class index in [0, {num_classes - 1}]")
    return index


def class_activation_maps(
    model: nn.Module,
    inputs,
    layers: list[tuple[str, nn.Module]],
    target: int | None = None,
    size: tuple[int, int, int] | None = None,
) -> tuple[dict[str, torch.Tensor], int, torch.Tensor, dict[str, tuple[int, ...]]]:
    """Grad-CAM maps of ``target`` (default: the top-1 class) at the inputs of ``layers``.

    Args:
        inputs: what ``model`` takes for one clip (batch of 1; a pathway list for SlowFast).
        size: ``(T, H, W)`` to upsample each map to (default: the layer's own size).

    Returns:
        ``(maps, target, probabilities, shapes)``: layer -> ``(T, H, W)`` map scaled to [0, 1] by its
        maximum (all zeros when no position raises the class score); the class explained; the
        softmax ``(num_classes,)``; layer -> the ``(C, T', H', W')`` feature shape it explains.
    """
    activations: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, args):
            tensor = args[0]
            tensor.retain_grad()
            activations[name] = tensor

        return hook

    handles = [module.register_forward_pre_hook(keep(name)) for name, module in layers]
    try:
        with torch.enable_grad():
            logits = model(inputs)
            probabilities = logits.detach().float().softmax(dim=1)[0]
            target = int(probabilities.argmax()) if target is None else int(target)
            model.zero_grad(set_to_none=True)
            logits[0, target].backward()
    finally:
        for handle in handles:
            handle.remove()
    maps, shapes = {}, {}
    for name, _ in layers:
        features = activations[name].detach()[0]  # (C, T', H', W')
        gradients = activations[name].grad[0]
        weights = gradients.mean(dim=(1, 2, 3))
        cam = torch.relu((weights.view(-1, 1, 1, 1) * features).sum(dim=0)).float()  # (T', H', W')
        shapes[name] = tuple(features.shape)
        if size is not None:
            cam = F.interpolate(cam[None, None], size=size, mode="trilinear", align_corners=False)[0, 0]
        peak = cam.max()
        maps[name] = cam / peak if peak > 0 else torch.zeros_like(cam)
    return maps, target, probabilities, shapes


def _overlay(frames: torch.Tensor, cam: torch.Tensor) -> np.ndarray:
    """``(3, T, H, W)`` in [0, 1] and a ``(T, H, W)`` map in [0, 1] -> ``(T, H, W, 3)`` uint8 heat map
    blended over the frames (the frames dimmed where the map is cold, so hot regions stand out)."""
    picture = frames.permute(1, 2, 3, 0).numpy()
    heat = matplotlib.colormaps[_COLORMAP](cam.numpy())[..., :3]
    alpha = 0.25 + 0.45 * cam.numpy()[..., None]
    return ((1 - alpha) * picture + alpha * heat).clip(0, 1).__mul__(255).round().astype(np.uint8)


def _pathway_name(layer: str, count: int, index: int, cam: torch.Tensor | None = None) -> str:
    name = "Grad-CAM"
    if count > 1:
        name += f", {'slow' if index == 0 else 'fast' if index == 1 else f'pathway {index}'} pathway"
    if cam is not None and not bool(cam.any()):
        name += " (no positive evidence)"  # every position lowers the class score: relu gives 0
    return name


def _probability(value: float) -> str:
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


def visualize_gradcam(
    video: str | Path,
    model: str = "slowfast_r50",
    checkpoint: str | None = None,
    pretrained: str | None = None,
    weights: str | None = None,
    labels: str | None = None,
    target: int | str | None = None,
    output: str | Path | None = None,
    start: float | None = None,
    num_frames: int | None = None,
    crop_size: int | None = None,
    sampling_rate: int | None = None,
    panel_side: int = 224,
    still_frames: int = 4,
) -> GradCamResult:
    """Grad-CAM of a model on a clip of ``video``: overlay video and PNG (see the module docstring).

    The model is a ``softpool-train`` ``checkpoint``, a registered ``model`` with ``weights`` and
    ``labels`` (another codebase's checkpoint), or ``model`` alone (``pretrained`` weights or random).
    The clip is ``num_frames`` frames every ``sampling_rate`` from ``start`` (defaults: the
    checkpoint's or the model's test recipe), short side scaled to ``crop_size`` and centre-cropped.
    """
    from softpool_video.models import model_input
    from softpool_video.visualize.models import load_visual_model, model_clip

    loaded = load_visual_model(model, checkpoint, pretrained, weights, labels)
    net = loaded.model
    num_frames = num_frames or loaded.num_frames
    crop_size = crop_size or loaded.crop_size
    sampling_rate = sampling_rate or loaded.sampling_rate
    prepared = model_clip(video, num_frames, crop_size, loaded.mean, loaded.std, start, sampling_rate)
    layers = find_cam_layers(net)
    names = loaded.class_names
    if names is None:  # a registry model without labels: the classifier's width, classes "class k"
        with torch.no_grad():
            names = [f"class {k}" for k in range(net(model_input(net, prepared.normalised)).shape[1])]
    num_classes = len(names)
    wanted = _resolve_target(target, names, num_classes)
    maps, chosen, probabilities, shapes = class_activation_maps(
        net, model_input(net, prepared.normalised), layers, wanted, size=tuple(prepared.frames.shape[1:])
    )
    result = GradCamResult(
        loaded.name,
        loaded.weights,
        chosen,
        names[chosen],
        float(probabilities[chosen]),
        wanted is None,
        prepared.frames,
        maps,
        shapes,
    )
    output = Path(output) if output is not None else Path("outputs") / "visualize" / prepared.clip.path.stem
    frames, steps = prepared.frames, prepared.frames.shape[1]
    from softpool_video.visualize.features import _enlarge, colour_bar

    which = "predicted" if result.predicted else "given"
    head = f"{result.label} ({which}, p = {_probability(result.probability)})"
    panels = [
        label_frames(
            _enlarge(
                (frames.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8),
                steps,
                panel_side,
                panel_side,
            ),
            ["input clip", f"{crop_size}x{crop_size} px, {steps} frames", f"{loaded.name}"],
        )
    ]
    for index, (name, cam) in enumerate(maps.items()):
        panels.append(
            label_frames(
                _enlarge(_overlay(frames, cam), steps, panel_side, panel_side),
                [
                    _pathway_name(name, len(maps), index, cam),
                    head,
                    f"{name} {'x'.join(map(str, shapes[name]))}",
                ],
            )
        )
    composite = np.concatenate(panels, axis=2)
    bar = colour_bar(composite.shape[2], 0.0, 1.0, "Grad-CAM, scaled to its maximum per pathway", _COLORMAP)
    composite = np.concatenate([composite, np.broadcast_to(bar, (steps, *bar.shape))], axis=1)
    from softpool_video.visualize.features import MIN_PLAYBACK_SECONDS

    result.hold = max(1, math.ceil(MIN_PLAYBACK_SECONDS * prepared.fps / steps))
    played = np.repeat(composite, result.hold, axis=0)
    result.files["gradcam.mp4"] = write_mp4(played, output / "gradcam.mp4", prepared.fps)
    result.files["gradcam.png"] = _still(result, output / "gradcam.png", prepared.fps, still_frames)
    return result


def _still(result: GradCamResult, path: Path, fps: float, columns: int) -> Path:
    plt = pyplot()
    steps = result.clip.shape[1]
    times = sorted(set(np.linspace(0, steps - 1, num=min(columns, steps)).round().astype(int).tolist()))
    rows = 1 + len(result.maps)
    fig, axes = plt.subplots(
        rows, len(times), figsize=(2.2 * len(times) + 1.4, 2.2 * rows + 0.7), squeeze=False
    )
    for column, t in enumerate(times):
        axes[0][column].imshow(result.clip[:, t].permute(1, 2, 0).numpy())
        axes[0][column].set_title(f"frame {t} ({t / fps:.2f} s)", fontsize=9)
        for row, cam in enumerate(result.maps.values(), start=1):
            axes[row][column].imshow(_overlay(result.clip[:, t : t + 1], cam[t : t + 1])[0])
    axes[0][0].set_ylabel("input clip", fontsize=9)
    for row, name in enumerate(result.maps, start=1):
        axes[row][0].set_ylabel(
            _pathway_name(name, len(result.maps), row - 1).replace(", ", "\n"), fontsize=9
        )
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    which = "predicted class" if result.predicted else "given class"
    fig.suptitle(
        f"{result.model_name}: Grad-CAM of {which} {result.label!r} (p = {result.probability:.2f})",
        fontsize=10,
    )
    mappable = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=_COLORMAP)
    fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.6, label="Grad-CAM (1 = its maximum)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def describe_gradcam(result: GradCamResult) -> str:
    """Human-readable summary of a :func:`visualize_gradcam` run."""
    which = "predicted" if result.predicted else "given"
    lines = [
        f"model {result.model_name}, weights {result.weights}",
        f"  class                {result.label} (index {result.target}, {which}), "
        f"probability {result.probability:.4f}",
        f"  input clip           {'x'.join(map(str, result.clip.shape))}",
    ]
    for name, shape in result.layer_shapes.items():
        lines.append(f"  explained layer      {name} {'x'.join(map(str, shape))}")
    lines += [f"wrote {path}" for path in result.files.values()]
    return "\n".join(lines)
