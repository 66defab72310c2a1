"""Video backbones with swappable pooling, the model registry and local weight loading.

    model = build_model("slowfast_r50", num_classes=10, pooling="soft", where="all",
                        num_frames=16, crop_size=112, pretrained="path/to/SLOWFAST_8x8_R50.pyth")
    logits = model(model_input(model, clip))        # clip (N, 3, T, H, W) -> logits (N, 10)

* :func:`swap_pooling` swaps the pools of any model (max/avg/adaptive-avg <-> SoftPool);
* :func:`build_model` builds a registered model (:func:`list_models`), swaps the pools chosen by
  ``pooling``/``where`` and loads weights; :func:`register_model` adds a builder;
* :func:`load_pretrained` reads pytorchvideo, torchvision, mmaction2, Lightning and this project's
  checkpoints from local files (``weights_only=True``, never downloads);
* :func:`load_model_from_checkpoint` rebuilds a ``softpool-train`` model, :func:`load_foreign_model`
  a registered backbone from another codebase's weights and a label file (``loading``);
* :func:`model_summary` lists parameters, FLOPs for a clip and the pools with their kinds.
"""

# Importing the builder modules registers their models.
from softpool_video.models import pytorchvideo_backbones, tiny, torchvision_backbones  # noqa: F401
from softpool_video.models.inputs import example_input, model_input, pack_pathways
from softpool_video.models.loading import (
    INFERENCE_DEFAULTS,
    CheckpointError,
    load_foreign_model,
    load_model_from_checkpoint,
    read_labels,
)
from softpool_video.models.pretrained import LoadReport, load_pretrained
from softpool_video.models.registry import (
    MODEL_REGISTRY,
    POOLING_CHOICES,
    WHERE_CHOICES,
    BuiltModel,
    MissingDependencyError,
    ModelSpec,
    WeightsFile,
    build_model,
    build_model_from_config,
    list_models,
    missing_dependencies,
    register_model,
)
from softpool_video.models.summary import ModelSummary, PoolInfo, model_summary
from softpool_video.models.swap import (
    MODULE_POOL_KINDS,
    PoolSwap,
    infer_pool_channels,
    pool_kind,
    swap_pooling,
)

__all__ = [
    "INFERENCE_DEFAULTS",
    "MODEL_REGISTRY",
    "POOLING_CHOICES",
    "MODULE_POOL_KINDS",
    "WHERE_CHOICES",
    "BuiltModel",
    "CheckpointError",
    "LoadReport",
    "MissingDependencyError",
    "ModelSpec",
    "ModelSummary",
    "PoolInfo",
    "PoolSwap",
    "WeightsFile",
    "build_model",
    "build_model_from_config",
    "example_input",
    "infer_pool_channels",
    "list_models",
    "load_foreign_model",
    "load_model_from_checkpoint",
    "load_pretrained",
    "missing_dependencies",
    "model_input",
    "model_summary",
    "pack_pathways",
    "pool_kind",
    "read_labels",
    "register_model",
    "swap_pooling",
]
