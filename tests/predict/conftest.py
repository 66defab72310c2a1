"""Fixtures of the predict tests: a real checkpoint trained here on a tiny synthetic dataset, and
folders mixing real clips with unreadable files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# 4 motion classes x 2 videos of 16 frames at 48x48 (one train and one test group per class).
SYNTHETIC = {
    "num_classes": 4,
    "videos_per_class": 2,
    "clips_per_group": 1,
    "frames": 16,
    "size": 48,
    "seed": 0,
    "kinetics": False,
}
CLASS_NAMES = ["MoveLeft", "MoveRight", "MoveUp", "MoveDown"]
# The checkpoint's test setting: data.num_clips=2 x data.num_crops=1.
CHECKPOINT_VIEWS = 2


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, tiny_overrides) -> Path:
    """``best.pt`` of a real softpool-train run (2 epochs on the tiny synthetic dataset)."""
    from softpool_video.data.synthetic import generate_synthetic_dataset
    from softpool_video.train import compose_config, train

    root = tmp_path_factory.mktemp("predict")
    data = generate_synthetic_dataset(root / "synthetic", **SYNTHETIC)
    overrides = [*tiny_overrides(data, root / "runs"), "trainer.limit_val_batches=1", "logger=[csv]"]
    result = train(compose_config("train", overrides))
    path = result.best_checkpoint or result.last_checkpoint
    assert path is not None and path.is_file()
    return path


@pytest.fixture(scope="session")
def predictor(checkpoint):
    """A CPU predictor with the checkpoint's own settings and topk=3."""
    from softpool_video.predict import Predictor

    return Predictor(checkpoint, device="cpu", topk=3)


@pytest.fixture(scope="session")
def class_names() -> list[str]:
    """The classes the checkpoint was trained on."""
    return list(CLASS_NAMES)


@pytest.fixture(scope="session")
def checkpoint_views() -> int:
    """Views per video of the checkpoint's test setting."""
    return CHECKPOINT_VIEWS


def _write_unreadable(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    empty = directory / "empty.mp4"
    empty.write_bytes(b"")
    text = directory / "notes.mp4"
    text.write_text("these are not the frames you are looking for\n" * 20)
    return empty, text


@pytest.fixture
def unreadable_videos(tmp_path) -> tuple[Path, Path]:
    """A zero-byte ``.mp4`` and a text file named ``.mp4``, alone in a folder."""
    return _write_unreadable(tmp_path / "unreadable")


@pytest.fixture
def mixed_folder(tmp_path, sample_videos) -> Path:
    """Two real clips (one in a sub-folder) and two unreadable .mp4 files."""
    folder = tmp_path / "clips"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(sample_videos["bikes"], folder / "bikes.mp4")
    shutil.copy(sample_videos["carphone_distorted"], folder / "nested" / "carphone_distorted.mp4")
    _write_unreadable(folder)
    return folder


FOREIGN_CLASSES = ["archery", "bowling", "cooking", "dancing", "eating"]


@pytest.fixture(scope="session")
def foreign_tiny(tmp_path_factory) -> tuple[Path, Path]:
    """``(weights, labels)``: a pytorchvideo-style ``{"model_state": ...}`` file of an r2plus1d_tiny
    with random weights for 5 classes, and a one-class-per-line label file."""
    import torch

    from softpool_video.models import build_model

    root = tmp_path_factory.mktemp("foreign")
    torch.manual_seed(1)
    model = build_model("r2plus1d_tiny", num_classes=len(FOREIGN_CLASSES), pooling="original")
    weights = root / "tiny.pyth"
    torch.save({"model_state": model.state_dict(), "epoch": 3}, weights)
    labels = root / "labels.txt"
    labels.write_text("\n".join(FOREIGN_CLASSES) + "\n")
    return weights, labels
