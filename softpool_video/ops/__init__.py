"""The SoftPool operator: functional API, modules, the reference implementation and build info."""

from softpool_video.ops._extension import HAVE_EXTENSION, extension_info
from softpool_video.ops._registration import cpu_kernel_variant, cpu_result_pool, set_cpu_result_pool
from softpool_video.ops.modules import (
    AdaptiveSoftPool1d,
    AdaptiveSoftPool2d,
    AdaptiveSoftPool3d,
    SoftPool1d,
    SoftPool2d,
    SoftPool3d,
)
from softpool_video.ops.pooling import (
    adaptive_soft_pool1d,
    adaptive_soft_pool2d,
    adaptive_soft_pool3d,
    pool_output_size,
    soft_pool1d,
    soft_pool2d,
    soft_pool3d,
)
from softpool_video.ops.reference import soft_pool3d_reference

__all__ = [
    "HAVE_EXTENSION",
    "AdaptiveSoftPool1d",
    "AdaptiveSoftPool2d",
    "AdaptiveSoftPool3d",
    "SoftPool1d",
    "SoftPool2d",
    "SoftPool3d",
    "adaptive_soft_pool1d",
    "adaptive_soft_pool2d",
    "adaptive_soft_pool3d",
    "cpu_kernel_variant",
    "cpu_result_pool",
    "set_cpu_result_pool",
    "extension_info",
    "pool_output_size",
    "soft_pool1d",
    "soft_pool2d",
    "soft_pool3d",
    "soft_pool3d_reference",
]
