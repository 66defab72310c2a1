"""See what pooling keeps of a video: `softpool-visualize` and its Python API.

    from softpool_video.visualize import decode_video, pool_levels, retention_rows, psnr, ssim

    clip = decode_video("clip.mp4", max_side=320)                 # frames (3, T, H, W) in [0, 1]
    pooled = {m: pool_levels(clip.frames, m, (2, 2, 2), levels=3) for m in ("max", "avg", "soft")}
    print(format_retention_table(retention_rows(clip.frames, pooled, (2, 2, 2))))

:func:`visualize_video` does all of it and writes the side-by-side MP4/GIF per level, the PNG
contact sheet, the x-t slices and ``retention.csv``; :func:`visualize_features` shows a model's
pooling layer, :func:`visualize_gradcam` where a model finds a class (Grad-CAM).
Videos are decoded by the project's one decoder (``softpool_video.data.decoders.decode_video``,
re-exported here). One module per concern: ``downsample`` (pooling, reference filter,
upsampling), ``quality`` (PSNR, SSIM), ``retention`` (the table), ``render`` (writers),
``pipeline`` (the command), ``features`` (mode=features), ``gradcam`` (mode=gradcam), ``models``
(the model and clip both look at), ``cli``.
"""

from softpool_video.data.decoders import VideoClip, VideoDecodeError, decode_video
from softpool_video.visualize.downsample import (
    POOLING_METHODS,
    REFERENCE_FILTERS,
    enlarge_for_display,
    pool_levels,
    pool_video,
    reference_downsample,
    upsample_to,
)
from softpool_video.visualize.pipeline import VisualizeResult, pool_all_methods, visualize_video
from softpool_video.visualize.quality import psnr, ssim
from softpool_video.visualize.retention import (
    RetentionRow,
    format_retention_table,
    retention_rows,
    write_retention_csv,
)


def __getattr__(name):
    # mode=features imports the model zoo; load it only when asked for
    if name in ("visualize_features", "FeaturesResult"):
        from softpool_video.visualize import features

        return getattr(features, name)
    if name in ("visualize_gradcam", "GradCamResult"):
        from softpool_video.visualize import gradcam

        return getattr(gradcam, name)
    raise AttributeError(f"module 'softpool_video.visualize' has no attribute {name!r}")


__all__ = [
    "POOLING_METHODS",
    "REFERENCE_FILTERS",
    "FeaturesResult",
    "GradCamResult",
    "RetentionRow",
    "VideoClip",
    "VideoDecodeError",
    "VisualizeResult",
    "decode_video",
    "enlarge_for_display",
    "format_retention_table",
    "pool_all_methods",
    "pool_levels",
    "pool_video",
    "psnr",
    "reference_downsample",
    "retention_rows",
    "ssim",
    "upsample_to",
    "visualize_features",
    "visualize_gradcam",
    "visualize_video",
    "write_retention_csv",
]
