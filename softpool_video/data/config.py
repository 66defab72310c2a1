"""Data configuration (the keys of ``conf/data/*.yaml``) and ``build_dataset``.

``build_dataset(cfg.data, "train")`` is the one call training code needs; ``DataConfig``
documents every key and checks the values, naming the offending key (``data.<key>``) in errors.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softpool_video.constants import DECODERS
from softpool_video.data.annotations import (
    Annotations,
    kinetics_class_names,
    parse_folder_per_class,
    parse_hmdb51,
    parse_kinetics_csv,
    parse_path_label_list,
    parse_ucf101,
    read_class_names,
)
from softpool_video.data.dataset import SPLITS, VideoClipDataset
from softpool_video.data.decoders import check_backend
from softpool_video.data.transforms import DEFAULT_MEAN, DEFAULT_STD, build_transform

logger = logging.getLogger(__name__)

FORMATS = ("kinetics", "ucf101", "hmdb51", "csv", "folder")


def _split_map(train: Any, val: Any, test: Any) -> Callable[[], dict[str, Any]]:
    return lambda: {"train": train, "val": val, "test": test}


@dataclass
class DataConfig:
    """Every data option. Paths that are relative are relative to ``root``.

    Dataset layout
        name: label used in messages and run names.
        format: ``kinetics`` | ``ucf101`` | ``hmdb51`` | ``csv`` | ``folder`` (parser to use).
        root: dataset directory (required; relative = to the directory training was started in).
        annotation_dir: annotation files (kinetics CSVs, UCF-101 lists, HMDB-51 split files,
            csv lists); default ``root``.
        video_dir: ucf101/hmdb51: directory of the ``<Class>/`` video folders; default ``root``.
        video_dirs: kinetics/folder: per-split video directory, ``{train, val, test}``.
        split_files: kinetics/csv: per-split list file in ``annotation_dir``; a list gives
            alternatives, the first existing one is used (``[validate.csv, val.csv]``).
        split: ucf101/hmdb51 official split number, 1, 2 or 3.
        classes_file: class names in index order (one per line or ``<index> <name>``);
            default from the annotations.
        num_classes: expected class count, checked against the annotations (``null`` = no check).
        skip_missing: drop listed but missing files with one warning instead of raising.
    Decoding and clips
        decoder: ``pyav`` | ``decord`` | ``torchcodec`` (files a backend cannot decode exactly go
            to pyav, see ``decoders.py``); decoder_threads: threads per decode.
        num_frames, sampling_rate: clip = ``num_frames`` frames every ``sampling_rate`` frames.
        target_fps: ``null`` = frame-index sampling (consecutive frame numbers); a rate =
            time-based sampling: clip frames are the frames on screen at instants
            ``sampling_rate / target_fps`` seconds apart on the presentation timeline (the same
            seconds at any frame rate, evenly spaced times in variable-frame-rate videos).
        num_clips, num_crops: val/test views per video (``num_crops`` 1 or 3).
    Augmentation
        train_crop: ``random`` (short-side scale jitter then random crop) or ``random_resized``.
        train_jitter_scales: ``[min, max]`` short side for ``random``; train_crop_size: output size.
        random_resized_scale, random_resized_ratio: area and aspect ranges of ``random_resized``.
        hflip_prob: horizontal flip probability (0 for direction-defined classes!).
        test_scale: val/test short side; test_crop_size: val/test crop size.
        mean, std: normalisation per channel; alpha: SlowFast speed ratio (``null`` = one pathway).
    Robustness
        max_retries: other videos tried for an item whose video is unreadable.
        max_failure_fraction: fraction of unreadable videos tolerated before stopping.
        seed: base of all sampling randomness.
    Loader (read by training code, passed to ``build_dataloader``)
        batch_size, num_workers, pin_memory, persistent_workers.
    Synthetic data
        generate: generate the synthetic motion dataset at ``root`` if it is absent: ``true``;
            ``null`` only at the default root of ``data=synthetic`` (``data/synthetic`` under the launch
            directory), so that a mistyped ``root`` never invents a dataset; ``false`` never
            (see :func:`synthetic_generation_reason`).
        synthetic: keyword arguments of ``generate_synthetic_dataset``.
    """

    name: str = "videos"
    format: str = "csv"
    root: str | None = None
    annotation_dir: str | None = None
    video_dir: str | None = None
    video_dirs: dict[str, Any] = field(default_factory=_split_map("train", "val", "test"))
    split_files: dict[str, Any] = field(
        default_factory=_split_map(
            ["train.csv", "train.txt"], ["val.csv", "validate.csv", "val.txt"], ["test.csv", "test.txt"]
        )
    )
    split: int = 1
    classes_file: str | None = None
    num_classes: int | None = None
    skip_missing: bool = True
    decoder: str = "pyav"
    decoder_threads: int = 1
    num_frames: int = 8
    sampling_rate: int = 8
    target_fps: float | None = None
    num_clips: int = 10
    num_crops: int = 3
    train_crop: str = "random"
    train_jitter_scales: list[int] = field(default_factory=lambda: [256, 320])
    train_crop_size: int = 224
    random_resized_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    random_resized_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip_prob: float = 0.5
    test_scale: int = 256
    test_crop_size: int = 256
    mean: list[float] = field(default_factory=lambda: list(DEFAULT_MEAN))
    std: list[float] = field(default_factory=lambda: list(DEFAULT_STD))
    alpha: int | None = None
    max_retries: int = 10
    max_failure_fraction: float = 0.05
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True
    generate: bool | None = None
    synthetic: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Any) -> DataConfig:
        """From a ``DictConfig`` (e.g. ``cfg.data``), a dict, or a ``DataConfig``; checks values.

        Unknown keys are ignored with a warning (they may belong to other code).
        """
        if isinstance(cfg, DataConfig):
            values = dataclasses.asdict(cfg)
        else:
            values = _to_plain_dict(cfg)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            logger.warning("data config: ignoring unknown keys %s", ", ".join(f"data.{k}" for k in unknown))
        # null for an option that has a non-null default means "use the default"
        given = {
            k: v
            for k, v in values.items()
            if k in fields and not (v is None and (fields[k].default is not None or k in _FACTORY_DEFAULTS))
        }
        config = cls(**given)
        config.validate()
        return config

    def validate(self) -> None:
        def fail(key: str, message: str) -> None:
            raise ValueError(f"data.{key} {message}")

        if self.format not in FORMATS:
            fail("format", f"must be one of {FORMATS}, got {self.format!r}")
        if self.root in (None, "", "???"):
            fail("root", "is not set: pass data.root=/path/to/the/dataset (see datasets/README.md)")
        if self.decoder not in DECODERS:
            fail("decoder", f"must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        try:
            check_backend(self.decoder)
        except ValueError as err:
            fail("decoder", f"={self.decoder}: {err}")
        if self.target_fps is not None and not (
            isinstance(self.target_fps, int | float)
            and not isinstance(self.target_fps, bool)
            and self.target_fps > 0
        ):
            fail(
                "target_fps",
                f"must be a frame rate > 0 or null (frame-index sampling), got {self.target_fps!r}",
            )
        if self.num_crops not in (1, 3):
            fail("num_crops", f"must be 1 or 3, got {self.num_crops}")
        for key in (
            "num_frames",
            "sampling_rate",
            "num_clips",
            "train_crop_size",
            "test_scale",
            "test_crop_size",
        ):
            if int(getattr(self, key)) < 1:
                fail(key, f"must be >= 1, got {getattr(self, key)}")
        if self.test_scale < self.test_crop_size:
            fail("test_scale", f"({self.test_scale}) must be >= data.test_crop_size ({self.test_crop_size})")
        if self.train_crop not in ("random", "random_resized"):
            fail("train_crop", f"must be 'random' or 'random_resized', got {self.train_crop!r}")
        if len(self.train_jitter_scales) != 2 or not (
            self.train_crop_size <= self.train_jitter_scales[0] <= self.train_jitter_scales[1]
        ):
            fail(
                "train_jitter_scales",
                f"must be [min, max] with train_crop_size <= min <= max, got {self.train_jitter_scales}",
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            fail("mean", f"and data.std need 3 values each (std > 0), got {self.mean}, {self.std}")
        if self.alpha is not None and not 1 <= self.alpha <= self.num_frames:
            fail("alpha", f"must be in [1, num_frames={self.num_frames}] or null, got {self.alpha}")
        if not 0.0 <= self.max_failure_fraction <= 1.0:
            fail("max_failure_fraction", f"must be in [0, 1], got {self.max_failure_fraction}")
        if self.format in ("ucf101", "hmdb51") and str(self.split) not in ("1", "2", "3"):
            fail("split", f"must be 1, 2 or 3 (official split of {self.format}), got {self.split!r}")

    def root_path(self) -> Path:
        """``root`` as an absolute path (relative roots are relative to where the run started)."""
        root = Path(str(self.root)).expanduser()
        if not root.is_absolute():
            root = _launch_directory() / root
        return root

    def resolve(self, value: str | None, default: Path) -> Path:
        """A path option: ``None`` -> ``default``; relative -> under ``root``."""
        if value in (None, ""):
            return default
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else self.root_path() / path


_FACTORY_DEFAULTS = {
    f.name for f in dataclasses.fields(DataConfig) if f.default_factory is not dataclasses.MISSING
}


def _to_plain_dict(cfg: Any) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        DictConfig = ()  # noqa: N806
    if DictConfig and isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    if isinstance(cfg, Mapping):
        if DictConfig:  # a dict copied out of a config may keep "${oc.select:model.num_frames,16}"
            return OmegaConf.to_container(OmegaConf.create(dict(cfg)), resolve=True, throw_on_missing=False)
        return dict(cfg)
    raise TypeError(f"data config must be a DictConfig, a dict or a DataConfig, got {type(cfg).__name__}")


def _launch_directory() -> Path:
    """The directory the program was started in (Hydra may have changed into a run directory)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.utils import get_original_cwd

        if HydraConfig.initialized():
            return Path(get_original_cwd())
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return Path.cwd()


def _first_existing(directory: Path, names: Any, key: str) -> Path:
    candidates = [names] if isinstance(names, str) else list(names or [])
    if not candidates:
        raise ValueError(f"data.{key} is not set")
    for name in candidates:
        path = Path(str(name))
        path = path if path.is_absolute() else directory / path
        if path.is_file():
            return path
    tried = ", ".join(str(p if Path(str(p)).is_absolute() else directory / str(p)) for p in candidates)
    raise FileNotFoundError(f"data.{key}: none of these annotation files exists: {tried}")


def load_annotations(cfg: DataConfig | Any, split: str) -> Annotations:
    """Parse the annotations of ``split`` (``train``/``val``/``test``) as ``cfg.format`` says."""
    if not isinstance(cfg, DataConfig):
        cfg = DataConfig.from_config(cfg)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = cfg.root_path()
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.root={cfg.root} ({root}) is not a directory: set data.root=/path/to/{cfg.name}"
        )
    annotation_dir = cfg.resolve(cfg.annotation_dir, root)
    class_names = read_class_names(cfg.resolve(cfg.classes_file, root)) if cfg.classes_file else None
    fmt = cfg.format
    if fmt == "kinetics":
        csv_path = _first_existing(annotation_dir, cfg.split_files.get(split), f"split_files.{split}")
        if class_names is None:
            train_csv = _first_existing(annotation_dir, cfg.split_files.get("train"), "split_files.train")
            class_names = kinetics_class_names(train_csv)
        video_dir = cfg.resolve(cfg.video_dirs.get(split), root)
        annotations = parse_kinetics_csv(csv_path, video_dir, class_names)
    elif fmt == "ucf101":
        video_dir = cfg.resolve(cfg.video_dir, root)
        annotations = parse_ucf101(
            annotation_dir, video_dir, int(cfg.split), "train" if split == "train" else "test"
        )
    elif fmt == "hmdb51":
        video_dir = cfg.resolve(cfg.video_dir, root)
        annotations = parse_hmdb51(
            annotation_dir, video_dir, int(cfg.split), "train" if split == "train" else "test"
        )
    elif fmt == "csv":
        list_path = _first_existing(annotation_dir, cfg.split_files.get(split), f"split_files.{split}")
        video_root = cfg.resolve(cfg.video_dir, root)
        if class_names is None and split != "train":
            # class indices must agree between splits: derive them from the train list
            train_list = _first_existing(annotation_dir, cfg.split_files.get("train"), "split_files.train")
            class_names = parse_path_label_list(train_list, video_root).class_names
        annotations = parse_path_label_list(list_path, video_root, class_names)
    else:  # folder
        video_dir = cfg.resolve(cfg.video_dirs.get(split), root)
        if class_names is None and split != "train":
            train_dir = cfg.resolve(cfg.video_dirs.get("train"), root)
            if train_dir.is_dir():
                class_names = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
        annotations = parse_folder_per_class(video_dir, class_names)
    if cfg.num_classes is not None and int(cfg.num_classes) != annotations.num_classes:
        raise ValueError(
            f"data.num_classes={cfg.num_classes} but {annotations.source} defines {annotations.num_classes} "
            "classes: fix data.num_classes (null skips the check) or data.classes_file"
        )
    return annotations


def synthetic_generation_reason(cfg: DataConfig | Any) -> str | None:
    """Why the synthetic dataset should be generated at ``cfg.root`` now, or ``None``.

    Only where it was asked for: ``generate=true``, or ``generate=null`` with ``name=synthetic`` at
    its default root (``SYNTHETIC_DEFAULT_ROOT`` under the launch directory). A dataset already there
    is then only checked (same generator parameters), not written again.
    """
    from softpool_video.constants import SYNTHETIC_DEFAULT_ROOT

    if not isinstance(cfg, DataConfig):
        cfg = DataConfig.from_config(cfg)
    root = cfg.root_path()
    if cfg.generate is False or not cfg.synthetic:
        return None
    if cfg.generate:
        return "data.generate=true"
    default_root = (_launch_directory() / SYNTHETIC_DEFAULT_ROOT).absolute()
    if cfg.name == "synthetic" and root.absolute() == default_root:
        return f"data=synthetic at its default root {SYNTHETIC_DEFAULT_ROOT}"
    return None


def build_dataset(
    data_cfg: Any, split: str, transform: Callable[[dict], dict] | None = None
) -> VideoClipDataset:
    """The ``VideoClipDataset`` of ``split`` (``train``/``val``/``test``) described by ``data_cfg``.

    ``data_cfg``: ``cfg.data`` of a Hydra config, a dict with the same keys, or a ``DataConfig``.
    ``transform``: replaces the standard one from ``build_transform(data_cfg, split)``.
    """
    cfg = DataConfig.from_config(data_cfg)
    if synthetic_generation_reason(cfg) is not None:
        from softpool_video.data.synthetic import INFO_FILE, ensure_synthetic_dataset

        if not (cfg.root_path() / INFO_FILE).is_file():
            logger.info("generating the synthetic motion dataset in %s", cfg.root_path())
        ensure_synthetic_dataset(cfg.root_path(), **cfg.synthetic)
    annotations = load_annotations(cfg, split)
    if transform is None:
        transform = build_transform(cfg, split)
    return VideoClipDataset(
        annotations.records,
        annotations.class_names,
        split=split,
        num_frames=cfg.num_frames,
        sampling_rate=cfg.sampling_rate,
        target_fps=cfg.target_fps,
        num_clips=cfg.num_clips,
        num_crops=cfg.num_crops,
        transform=transform,
        decoder=cfg.decoder,
        decoder_threads=cfg.decoder_threads,
        skip_missing=cfg.skip_missing,
        max_retries=cfg.max_retries,
        max_failure_fraction=cfg.max_failure_fraction,
        seed=cfg.seed,
        name=f"{cfg.name}/{split}",
    )
