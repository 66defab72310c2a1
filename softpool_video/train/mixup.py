"""Mixup and CutMix for video batches (optional; ``mixup.enabled=true``).

Each batch is mixed with itself reversed along the batch dimension. CutMix cuts one spatial box and
uses it in every frame (and in both SlowFast pathways, whose frames share the spatial size), so the
pasted region is a moving object, not flicker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MixVideo"]


class MixVideo:
    """Callable ``(video, labels) -> (video, soft_targets)``.

    Args:
        num_classes: K.
        mixup_alpha: Beta(alpha, alpha) for mixup; 0 disables mixup.
        cutmix_alpha: Beta(alpha, alpha) for the CutMix area; 0 disables CutMix.
        prob: probability that a batch is mixed at all.
        switch_prob: when both are enabled, probability of CutMix instead of mixup.
        label_smoothing: applied to the one-hot targets before mixing.

    ``video`` is ``(B, C, T, H, W)`` or a list of such tensors (SlowFast pathways); ``soft_targets`` is
    ``(B, K)`` float. Randomness comes from NumPy's global generator, which checkpoints save and restore.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.0,
    ):
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("mixup: set mixup_alpha > 0 or cutmix_alpha > 0 (or mixup.enabled=false)")
        self.num_classes = int(num_classes)
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], num_classes: int, label_smoothing: float) -> MixVideo:
        return cls(
            num_classes,
            mixup_alpha=cfg.get("mixup_alpha", 0.8),
            cutmix_alpha=cfg.get("cutmix_alpha", 1.0),
            prob=cfg.get("prob", 1.0),
            switch_prob=cfg.get("switch_prob", 0.5),
            label_smoothing=label_smoothing,
        )

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        off = self.label_smoothing / self.num_classes
        one_hot = F.one_hot(labels, self.num_classes).float()
        return one_hot * (1.0 - self.label_smoothing) + off

    def __call__(self, video, labels: torch.Tensor):
        targets = self._targets(labels)
        if np.random.rand() >= self.prob:
            return video, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or np.random.rand() < self.switch_prob)
        pathways = video if isinstance(video, (list, tuple)) else [video]
        if use_cutmix:
            lam = float(np.random.beta(self.cutmix_alpha, self.cutmix_alpha))
            height, width = pathways[0].shape[-2:]
            cut_h, cut_w = int(height * np.sqrt(1 - lam)), int(width * np.sqrt(1 - lam))
            cy, cx = np.random.randint(height), np.random.randint(width)
            y0, y1 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
            x0, x1 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
            mixed = []
            for x in pathways:
                x = x.clone()
                x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
                mixed.append(x)
            lam = 1.0 - float((y1 - y0) * (x1 - x0)) / (height * width)  # the area actually pasted
        else:
            lam = float(np.random.beta(self.mixup_alpha, self.mixup_alpha))
            mixed = [x * lam + x.flip(0) * (1.0 - lam) for x in pathways]
        targets = targets * lam + targets.flip(0) * (1.0 - lam)
        out = mixed if isinstance(video, (list, tuple)) else mixed[0]
        return out, targets
