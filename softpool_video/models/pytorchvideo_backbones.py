"""pytorchvideo backbones: SlowFast R50/R101, R(2+1)D R50, X3D XS/S/M.

pytorchvideo is optional (``pip install 'softpool_video[pytorchvideo]'``, which brings fvcore and
iopath): it is imported only when one of these models is built, and :func:`build_model` says how to
install it when it is missing. The other models need nothing extra.

Built with pytorchvideo's own ``create_*`` functions so that its Kinetics checkpoints load key for
key, with three changes made through their public arguments or by replacing a pool module:

* head pools are adaptive (output 1x1x1) instead of ``AvgPool3d`` kernels fixed for one clip size
  (``(8, 7, 7)`` fails on a 112x112 clip); at the designed clip size both average the whole map;
* heads return logits: no Softmax (pytorchvideo's R(2+1)D and X3D apply it by default, even while
  training, which breaks cross-entropy);
* SlowFast does not overwrite the caller's input list (pytorchvideo's first stage works in place).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from torch import nn

from softpool_video.models.registry import BuiltModel, MissingDependencyError, WeightsFile, register_model

_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"

#: What every model of this module needs (see ModelSpec.requires).
_REQUIRES = ("pytorchvideo",)


def _pytorchvideo_models(module: str) -> ModuleType:
    """``pytorchvideo.models.<module>``; an installed but broken pytorchvideo gets a clear error too."""
    try:
        return importlib.import_module(f"pytorchvideo.models.{module}")
    except ImportError as error:
        raise MissingDependencyError(
            f"the pytorchvideo models need a working pytorchvideo (pip install "
            f"'softpool_video[pytorchvideo]'); importing pytorchvideo.models.{module} failed: {error}"
        ) from error


# The averaging of class scores after a pytorchvideo head's projection: it is not feature pooling
# (and is 1x1x1 with adaptive head pools), so where="all" leaves it alone.
_SCORE_AVERAGING = ("*.output_pool",)


def _stem_max_pool() -> nn.MaxPool3d:
    """The ResNet stem pool, (1, 3, 3) window, stride (1, 2, 2): halves H and W, keeps T."""
    return nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))


def _check_divisible(num_frames: int, alpha: int, name: str) -> None:
    if alpha < 1 or num_frames % alpha:
        raise ValueError(
            f"{name}: num_frames ({num_frames}) must be a multiple of alpha ({alpha}); the slow "
            f"pathway sees num_frames / alpha frames"
        )


def _slowfast(
    name: str,
    depth: int,
    fusion_kernel: int,
    *,
    num_classes: int,
    num_frames: int,
    crop_size: int,
    alpha: int = 4,
    beta_inv: int = 8,
    dropout_rate: float = 0.5,
) -> BuiltModel:
    create_slowfast = _pytorchvideo_models("slowfast").create_slowfast
    _check_divisible(num_frames, alpha, name)
    if beta_inv < 1 or 64 % beta_inv:
        raise ValueError(f"{name}: beta_inv must divide the 64 stem channels, got {beta_inv}")
    model = create_slowfast(
        model_depth=depth,
        model_num_class=num_classes,
        dropout_rate=dropout_rate,
        # beta_inv: the fast pathway has 1/beta_inv of the slow pathway's channels, stem included.
        slowfast_channel_reduction_ratio=(beta_inv,),
        stem_dim_outs=(64, 64 // beta_inv),
        # The fast->slow lateral connection subsamples time by alpha.
        slowfast_fusion_conv_kernel_size=(fusion_kernel, 1, 1),
        slowfast_fusion_conv_stride=(alpha, 1, 1),
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
    )
    # pytorchvideo's first stage writes its outputs into the input list; a caller reusing
    # [slow, fast] would silently feed stem features the second time.
    model.blocks[0].inplace = False
    model.pathway_alpha = alpha
    return BuiltModel(
        model,
        stem_pools=("blocks.0.multipathway_blocks.*.pool",),
        head_pools=("blocks.5.pool.*",),
        keep_pools=_SCORE_AVERAGING,
    )


_SLOWFAST_DOC = (
    "SlowFast {depth} (pytorchvideo, 8x8 Kinetics setting). "
    "Input [slow (N, 3, T/alpha, H, W), fast (N, 3, T, H, W)]; "
    "2 stem max pools (1x3x3) and 2 per-pathway head pools."
)


@register_model(
    "slowfast_r50",
    num_frames=32,
    crop_size=224,
    alpha=4,
    weights={"kinetics400": WeightsFile("SLOWFAST_8x8_R50.pyth", f"{_ZOO}/SLOWFAST_8x8_R50.pyth", 400)},
    description=_SLOWFAST_DOC.format(depth="R50"),
    requires=_REQUIRES,
)
def slowfast_r50(**kwargs) -> BuiltModel:
    return _slowfast("slowfast_r50", 50, 7, **kwargs)


@register_model(
    "slowfast_r101",
    num_frames=32,
    crop_size=224,
    alpha=4,
    weights={"kinetics400": WeightsFile("SLOWFAST_8x8_R101.pyth", f"{_ZOO}/SLOWFAST_8x8_R101.pyth", 400)},
    description=_SLOWFAST_DOC.format(depth="R101"),
    requires=_REQUIRES,
)
def slowfast_r101(**kwargs) -> BuiltModel:
    # pytorchvideo's R101 checkpoint uses a 5-frame fusion kernel (R50: 7).
    return _slowfast("slowfast_r101", 101, 5, **kwargs)


@register_model(
    "r2plus1d_r50",
    num_frames=16,
    crop_size=224,
    weights={"kinetics400": WeightsFile("R2PLUS1D_16x4_R50.pyth", f"{_ZOO}/R2PLUS1D_16x4_R50.pyth", 400)},
    description="R(2+1)D R50 (pytorchvideo, 16x4 Kinetics setting); no stem pool unless stem_pool=True.",
    requires=_REQUIRES,
)
def r2plus1d_r50(
    *, num_classes: int, num_frames: int, crop_size: int, dropout_rate: float = 0.5, stem_pool: bool = False
) -> BuiltModel:
    create_r2plus1d = _pytorchvideo_models("r2plus1d").create_r2plus1d
    model = create_r2plus1d(
        model_num_class=num_classes,
        dropout_rate=dropout_rate,
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
        head_activation=None,
    )
    if stem_pool:
        model.blocks[0].pool = _stem_max_pool()
    return BuiltModel(
        model,
        stem_pools=("blocks.0.pool",) if stem_pool else (),
        head_pools=("blocks.5.pool",),
        keep_pools=_SCORE_AVERAGING,
    )


def _x3d(*, num_classes, num_frames, crop_size, dropout_rate=0.5, stem_pool=False) -> BuiltModel:
    create_x3d = _pytorchvideo_models("x3d").create_x3d
    model = create_x3d(
        input_clip_length=num_frames,
        input_crop_size=crop_size,
        model_num_class=num_classes,
        dropout_rate=dropout_rate,
        width_factor=2.0,
        depth_factor=2.2,
        head_activation=None,
    )
    head = model.blocks[5]
    # create_x3d sizes an AvgPool3d from input_clip_length/input_crop_size; adaptive takes any clip.
    head.pool.pool = nn.AdaptiveAvgPool3d(1)
    if stem_pool:
        model.blocks[0].pool = _stem_max_pool()
    return BuiltModel(
        model,
        stem_pools=("blocks.0.pool",) if stem_pool else (),
        head_pools=("blocks.5.pool.pool",),
        keep_pools=_SCORE_AVERAGING,
    )


# X3D-XS and X3D-S share the network; they differ in the clip they were trained on.
_X3D = {"x3d_xs": (4, 160, "X3D_XS"), "x3d_s": (13, 160, "X3D_S"), "x3d_m": (16, 224, "X3D_M")}


def _register_x3d(name: str, num_frames: int, crop_size: int, checkpoint: str) -> None:
    def builder(**kwargs) -> BuiltModel:
        return _x3d(**kwargs)

    builder.__name__ = name
    register_model(
        name,
        num_frames=num_frames,
        crop_size=crop_size,
        weights={"kinetics400": WeightsFile(f"{checkpoint}.pyth", f"{_ZOO}/{checkpoint}.pyth", 400)},
        description=f"{checkpoint.replace('_', '-')} (pytorchvideo), {num_frames}x{crop_size}x{crop_size} "
        "clips; no stem pool unless stem_pool=True, one head pool.",
        requires=_REQUIRES,
    )(builder)


for _name, (_frames, _crop, _checkpoint) in _X3D.items():
    _register_x3d(_name, _frames, _crop, _checkpoint)
