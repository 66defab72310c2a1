"""Model inputs: one clip tensor, or the [slow, fast] pathway list that SlowFast models take."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["example_input", "model_input", "pack_pathways"]


def pack_pathways(clip: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """``(N, C, T, H, W)`` -> ``[slow (N, C, T // alpha, H, W), fast (N, C, T, H, W)]``.

    The slow pathway takes ``T // alpha`` frames spread evenly over the clip (first and last
    included), as PySlowFast does. Also accepts an unbatched ``(C, T, H, W)`` clip.
    """
    if clip.dim() not in (4, 5):
        raise ValueError(
            f"pack_pathways: clip must be (N, C, T, H, W) or (C, T, H, W), got {tuple(clip.shape)}"
        )
    time_dim = clip.dim() - 3
    frames = clip.shape[time_dim]
    if alpha < 1 or frames < alpha:
        raise ValueError(
            f"pack_pathways: need alpha >= 1 and at least alpha frames, got alpha={alpha}, T={frames}"
        )
    index = torch.linspace(0, frames - 1, frames // alpha, device=clip.device).long()
    return [clip.index_select(time_dim, index), clip]


def model_input(model: nn.Module, clip: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    """What ``model`` takes for ``clip`` ``(N, 3, T, H, W)``: the clip, or its pathways if the model
    has a ``pathway_alpha`` (SlowFast from :func:`build_model`)."""
    alpha = getattr(model, "pathway_alpha", None)
    return clip if alpha is None else pack_pathways(clip, alpha)


def example_input(
    model: nn.Module,
    batch_size: int = 1,
    num_frames: int | None = None,
    crop_size: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """A random input for ``model`` of ``(batch_size, 3, num_frames, crop_size, crop_size)``.

    Sizes default to the ``num_frames``/``crop_size`` the model was built for (8 and 64 otherwise).
    """
    num_frames = num_frames or getattr(model, "num_frames", None) or 8
    crop_size = crop_size or getattr(model, "crop_size", None) or 64
    if device is None:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else "cpu"
    clip = torch.randn(batch_size, 3, num_frames, crop_size, crop_size, device=device)
    return model_input(model, clip)
