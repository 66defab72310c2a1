"""softpool_video: video action recognition with SoftPool.

The operator (``soft_pool{1,2,3}d``, ``SoftPool{1,2,3}d`` and adaptive variants) is imported
eagerly; models, data, training and tools live in subpackages that import their heavier
dependencies only when used.
"""

from softpool_video._version import __version__
from softpool_video.ops import (
    AdaptiveSoftPool1d,
    AdaptiveSoftPool2d,
    AdaptiveSoftPool3d,
    SoftPool1d,
    SoftPool2d,
    SoftPool3d,
    adaptive_soft_pool1d,
    adaptive_soft_pool2d,
    adaptive_soft_pool3d,
    soft_pool1d,
    soft_pool2d,
    soft_pool3d,
)

# Toolkit entry points, imported on first use so `import softpool_video` stays light.
_LAZY = {
    "swap_pooling": "softpool_video.models",
    "build_model": "softpool_video.models",
    "load_pretrained": "softpool_video.models",
    "Predictor": "softpool_video.predict",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'softpool_video' has no attribute {name!r}")


__all__ = [
    "__version__",
    "AdaptiveSoftPool1d",
    "Predictor",
    "build_model",
    "load_pretrained",
    "swap_pooling",
    "AdaptiveSoftPool2d",
    "AdaptiveSoftPool3d",
    "SoftPool1d",
    "SoftPool2d",
    "SoftPool3d",
    "adaptive_soft_pool1d",
    "adaptive_soft_pool2d",
    "adaptive_soft_pool3d",
    "soft_pool1d",
    "soft_pool2d",
    "soft_pool3d",
]
