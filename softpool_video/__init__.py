"""softpool_video: video action recognition with SoftPool.

The operator (``soft_pool{1,2,3}d``, ``SoftPool{1,2,3}d`` and adaptive variants) is imported
eagerly; models, data, training and tools live in subpackages that import their heavier
dependencies only when used.
"""

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

__version__ = "0.1.0"

__all__ = [
    "AdaptiveSoftPool1d",
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
