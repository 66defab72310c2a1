"""torchvision backbones: R(2+1)D-18, R3D-18 and S3D, built with ``weights=None`` (never downloaded).

The networks are torchvision's own, so its Kinetics state dicts load key for key. torchvision's
video ResNets pool only in the head; ``stem_pool=True`` adds a (1, 3, 3)/(1, 2, 2) pool after the
stem (no parameters: the state dict is unchanged, the feature maps shrink by 2 in H and W). S3D's
``AvgPool3d((2, 7, 7))`` head pool, fixed for 16x224x224 clips, becomes adaptive.
"""

from __future__ import annotations

from torch import nn

from softpool_video.models.pytorchvideo_backbones import _stem_max_pool
from softpool_video.models.registry import BuiltModel, WeightsFile, register_model

_TV = "https://download.pytorch.org/models"


def _video_resnet(factory, *, num_classes: int, stem_pool: bool) -> BuiltModel:
    model = factory(weights=None, num_classes=num_classes)
    stem_pools: tuple[str, ...] = ()
    if stem_pool:
        model.stem.append(_stem_max_pool())
        stem_pools = (f"stem.{len(model.stem) - 1}",)
    return BuiltModel(model, stem_pools=stem_pools, head_pools=("avgpool",))


@register_model(
    "r2plus1d_18",
    num_frames=16,
    crop_size=112,
    weights={"kinetics400": WeightsFile("r2plus1d_18-91a641e6.pth", f"{_TV}/r2plus1d_18-91a641e6.pth", 400)},
    description="R(2+1)D-18 (torchvision); head pool only unless stem_pool=True.",
)
def r2plus1d_18(*, num_classes: int, num_frames: int, crop_size: int, stem_pool: bool = False) -> BuiltModel:
    from torchvision.models.video import r2plus1d_18 as factory

    return _video_resnet(factory, num_classes=num_classes, stem_pool=stem_pool)


@register_model(
    "r3d_18",
    num_frames=16,
    crop_size=112,
    weights={"kinetics400": WeightsFile("r3d_18-b3b3357e.pth", f"{_TV}/r3d_18-b3b3357e.pth", 400)},
    description="R3D-18 (torchvision); head pool only unless stem_pool=True.",
)
def r3d_18(*, num_classes: int, num_frames: int, crop_size: int, stem_pool: bool = False) -> BuiltModel:
    from torchvision.models.video import r3d_18 as factory

    return _video_resnet(factory, num_classes=num_classes, stem_pool=stem_pool)


@register_model(
    "s3d",
    num_frames=16,
    crop_size=224,
    weights={"kinetics400": WeightsFile("s3d-d76dad2f.pth", f"{_TV}/s3d-d76dad2f.pth", 400)},
    description="S3D (torchvision): 2 stem max pools, 11 max pools inside (9 Inception branches, 2 "
    "downsampling), 1 head pool. Needs T >= 5 and H, W >= 33.",
)
def s3d(*, num_classes: int, num_frames: int, crop_size: int, dropout_rate: float = 0.2) -> BuiltModel:
    from torchvision.models.video import s3d as factory

    model = factory(weights=None, num_classes=num_classes, dropout=dropout_rate)
    model.avgpool = nn.AdaptiveAvgPool3d(1)
    # features.1 and features.4 are the max pools between the stem convolutions.
    return BuiltModel(model, stem_pools=("features.1", "features.4"), head_pools=("avgpool",))
