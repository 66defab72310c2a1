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


@pytest.fixture
def make_config(synthetic_root, tiny_overrides, tmp_path):
    """``make_config(*overrides, drop=prefixes)`` -> the composed train config on the tiny dataset
    (``drop`` removes the tiny overrides starting with one of ``prefixes``)."""

    def make(*overrides: str, drop: tuple[str, ...] = ()):
        base = [o for o in tiny_overrides(synthetic_root, tmp_path / "runs") if not o.startswith(drop)]
        return compose_config("train", [*base, *overrides])

    return make


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m ...`` subprocesses: the repository importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    return env
