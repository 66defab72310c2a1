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

Where to look: ``annotations`` (dataset layouts), ``frame_index`` (what a frame is: the
presentation timestamps of every frame, from the packets), ``decoders`` (the one decoder:
PyAV/decord/torchcodec held to the index), ``sampling`` (which frames: frame-index or time-based),
``transforms`` (augmentation), ``dataset`` (items, retries), ``loader`` (batches, distributed),
``config`` (the YAML keys), ``checking``/``prepare`` (the dataset tools), ``synthetic``
(generated data), ``testing`` (real-world test videos with frame-number marks).
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
    DEFAULT_BACKEND,
    DecodedClip,
    VideoClip,
    VideoDecodeError,
    VideoInfo,
    VideoSource,
    available_backends,
    decode_clip,
    decode_video,
    open_video,
)
from softpool_video.data.frame_index import FrameIndex, frame_index
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
    "DEFAULT_BACKEND",
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "Annotations",
    "ClipSampler",
    "DataConfig",
    "DecodedClip",
    "FrameIndex",
    "PackPathway",
    "RandomShortSideScale",
    "ShardedEvalSampler",
    "ShortSideScale",
    "ToCTHW",
    "TooManyFailedVideosError",
    "VideoClipDataset",
    "VideoDataLoader",
    "VideoClip",
    "VideoDecodeError",
    "VideoInfo",
    "VideoSource",
    "VideoRecord",
    "ViewCrop",
    "available_backends",
    "build_dataloader",
    "build_dataset",
    "build_transform",
    "collate_clips",
    "decode_clip",
    "decode_video",
    "ensure_synthetic_dataset",
    "frame_index",
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
