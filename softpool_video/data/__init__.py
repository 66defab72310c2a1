"""Video data pipeline: annotations, decoding, clip sampling, transforms, datasets, loaders.

Training code needs two calls::

    from softpool_video.data import build_dataset, build_dataloader

    dataset = build_dataset(cfg.data, "train")          # conf/data/*.yaml keys
    loader = build_dataloader(dataset, cfg.data.batch_size, num_workers=cfg.data.num_workers)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:                            # batch["video"]: (B, C, T, H, W)
            ...
    print(dataset.failures)                             # unreadable videos, from all workers

Where to look: ``annotations`` (dataset layouts), ``decoders`` (PyAV/decord/torchcodec),
``sampling`` (which frames), ``transforms`` (augmentation), ``dataset`` (items, retries),
``loader`` (batches, distributed), ``config`` (the YAML keys), ``synthetic`` (generated data).
"""

from softpool_video.data.annotations import (
    VIDEO_EXTENSIONS,
    AnnotationError,
    Annotations,
    VideoRecord,
    parse_folder_per_class,
    parse_hmdb51,
    parse_kinetics_csv,
    parse_path_label_list,
    parse_ucf101,
    read_class_names,
)
from softpool_video.data.config import DataConfig, build_dataset, load_annotations
from softpool_video.data.dataset import TooManyFailedVideosError, VideoClipDataset
from softpool_video.data.decoders import (
    DecodedClip,
    VideoDecodeError,
    VideoInfo,
    available_backends,
    decode_clip,
    open_video,
)
from softpool_video.data.loader import ShardedEvalSampler, VideoDataLoader, build_dataloader, collate_clips
from softpool_video.data.sampling import ClipSampler
from softpool_video.data.transforms import (
    DEFAULT_MEAN,
    DEFAULT_STD,
    PackPathway,
    RandomShortSideScale,
    ShortSideScale,
    ToCTHW,
    ViewCrop,
    build_transform,
)


def __getattr__(name):
    # the generator pulls in PIL and the encoder; import it only when asked for
    if name in ("generate_synthetic_dataset", "ensure_synthetic_dataset"):
        from softpool_video.data import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module 'softpool_video.data' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "Annotations",
    "ClipSampler",
    "DataConfig",
    "DecodedClip",
    "PackPathway",
    "RandomShortSideScale",
    "ShardedEvalSampler",
    "ShortSideScale",
    "ToCTHW",
    "TooManyFailedVideosError",
    "VideoClipDataset",
    "VideoDataLoader",
    "VideoDecodeError",
    "VideoInfo",
    "VideoRecord",
    "ViewCrop",
    "available_backends",
    "build_dataloader",
    "build_dataset",
    "build_transform",
    "collate_clips",
    "decode_clip",
    "ensure_synthetic_dataset",
    "generate_synthetic_dataset",
    "load_annotations",
    "open_video",
    "parse_folder_per_class",
    "parse_hmdb51",
    "parse_kinetics_csv",
    "parse_path_label_list",
    "parse_ucf101",
    "read_class_names",
]
