"""Model summary: parameters, FLOPs for one clip, and every pooling layer with its kind."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from softpool_video.models.inputs import example_input
from softpool_video.models.swap import pool_kind

__all__ = ["ModelSummary", "PoolInfo", "model_summary"]

_OTHER_POOLS = (nn.LPPool1d, nn.LPPool2d, nn.LPPool3d, nn.FractionalMaxPool2d, nn.FractionalMaxPool3d)


@dataclass(frozen=True)
class PoolInfo:
    """One pooling module: its name in the model, kind (``"soft"``, ``"max"``, ``"adaptive_avg"``, ...,
    or ``"other"``) and its settings as printed by the module."""

    name: str
    kind: str
    settings: str


@dataclass
class ModelSummary:
    name: str
    parameters: int
    trainable_parameters: int
    input_shapes: list[tuple[int, ...]]
    flops: int | None
    pools: list[PoolInfo] = field(default_factory=list)

    def pools_of_kind(self, *kinds: str) -> list[str]:
        """Names of the pools of the given kinds, in model order."""
        return [pool.name for pool in self.pools if pool.kind in kinds]

    def __str__(self) -> str:
        shapes = " + ".join(str(shape) for shape in self.input_shapes)
        flops = "n/a" if self.flops is None else f"{self.flops / 1e9:.2f} GFLOPs"
        lines = [
            f"{self.name}: {self.parameters / 1e6:.2f} M parameters "
            f"({self.trainable_parameters / 1e6:.2f} M trainable), {flops} for input {shapes}",
            f"{len(self.pools)} pooling layer(s):",
        ]
        width = max((len(pool.name) for pool in self.pools), default=0)
        lines += [f"  {pool.name:<{width}}  {pool.kind:<13}  {pool.settings}" for pool in self.pools]
        return "\n".join(lines)


def _pools(model: nn.Module) -> list[PoolInfo]:
    pools = []
    for name, module in model.named_modules():
        found = pool_kind(module)
        if found is not None:
            pools.append(PoolInfo(name, found[0], module.extra_repr()))
        elif isinstance(module, _OTHER_POOLS):
            pools.append(PoolInfo(name, "other", f"{type(module).__name__}({module.extra_repr()})"))
    return pools


def model_summary(
    model: nn.Module,
    batch_size: int = 1,
    num_frames: int | None = None,
    crop_size: int | None = None,
    count_flops: bool = True,
) -> ModelSummary:
    """Parameters, FLOPs of one forward pass and the pooling layers of ``model``.

    FLOPs are counted by ``torch.utils.flop_counter`` for a random input of
    ``(batch_size, 3, num_frames, crop_size, crop_size)`` (default: the clip the model was built for),
    in eval mode without gradients. Like fvcore, it counts a multiply-add as 2 FLOPs in convolutions and
    matrix products only: pooling (max, avg or SoftPool), normalisation and activations add 0.
    """
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    x = example_input(model, batch_size, num_frames, crop_size)
    shapes = [tuple(t.shape) for t in x] if isinstance(x, list) else [tuple(x.shape)]
    flops = None
    if count_flops:
        was_training = model.training
        model.eval()
        try:
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                model(x)
            flops = counter.get_total_flops()
        finally:
            model.train(was_training)
    name = getattr(model, "model_name", None) or type(model).__name__
    return ModelSummary(name, parameters, trainable, shapes, flops, _pools(model))
