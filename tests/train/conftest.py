"""Fixtures of the training tests: one tiny synthetic dataset per session, configs that train in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from softpool_video.train.config import compose_config

REPO = Path(__file__).resolve().parents[2]

# 4 motion classes x 8 videos of 16 frames at 48x48: 24 train videos, 8 test videos (UCF-101 layout).
SYNTHETIC = {"num_classes": 4, "videos_per_class": 8, "frames": 16, "size": 48, "seed": 0, "kinetics": False}


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """The tiny synthetic motion dataset, generated once per test session."""
    from softpool_video.data.synthetic import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("data") / "synthetic", **SYNTHETIC)


def _tiny_overrides(data_root: Path, output_root: Path) -> list[str]:
    """Overrides of conf/train.yaml for a run of a few seconds: 8x48x48 clips, 2 test clips, a narrow
    r2plus1d_tiny without dropout, batches of 4, no worker processes."""
    return [
        "data=synthetic",
        f"data.root={data_root}",
        "++data.format=ucf101",
        "++data.split=1",
        "++data.generate_if_missing=false",
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


@pytest.fixture
def make_config(synthetic_root, tmp_path):
    """``make_config(*overrides, drop=prefixes)`` -> the composed train config on the tiny dataset
    (``drop`` removes the tiny overrides starting with one of ``prefixes``)."""

    def make(*overrides: str, drop: tuple[str, ...] = ()):
        base = [o for o in _tiny_overrides(synthetic_root, tmp_path / "runs") if not o.startswith(drop)]
        return compose_config("train", [*base, *overrides])

    return make


@pytest.fixture(scope="session")
def tiny_overrides():
    """``tiny_overrides(data_root, output_root)`` -> the override list behind ``make_config``."""
    return _tiny_overrides


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m ...`` subprocesses: the repository importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    return env
