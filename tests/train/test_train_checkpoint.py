"""Checkpoint files: atomic writes, weights_only loading, RNG state, clear errors."""

import random

import numpy as np
import pytest
import torch

from softpool_video.train import checkpoint as ckpt


def _state(value: float) -> dict:
    return {
        "format_version": ckpt.FORMAT_VERSION,
        "model": {"w": torch.full((3,), value)},
        "config": {"model": {"name": "r2plus1d_tiny"}, "list": [1, 2], "none": None},
        "class_names": ["a", "b"],
        "num_classes": 2,
        "rng": ckpt.capture_rng_state(),
    }


def test_roundtrip_loads_with_weights_only(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "run" / "last.pt", _state(1.0))
    raw = torch.load(path, weights_only=True)  # what any consumer may do
    assert torch.equal(raw["model"]["w"], torch.ones(3))
    assert raw["config"]["list"] == [1, 2]
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = ckpt.save_checkpoint(tmp_path / "last.pt", _state(1.0))
    real_save = torch.save

    def dying_save(obj, handle):
        real_save({"partial": torch.zeros(1000)}, handle)  # bytes hit the temp file ...
        raise KeyboardInterrupt  # ... then the process is interrupted

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, _state(2.0))
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(ckpt.load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"foreign\.pt lacks format_version"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match=r"cannot load checkpoint .*garbage\.pt"):
        ckpt.load_checkpoint(tmp_path / "garbage.pt")
    future = _state(0.0)
    future["format_version"] = ckpt.FORMAT_VERSION + 1
    ckpt.save_checkpoint(tmp_path / "future.pt", future)
    with pytest.raises(ckpt.CheckpointError, match="upgrade softpool_video"):
        ckpt.load_checkpoint(tmp_path / "future.pt")


def test_rng_state_roundtrip_through_a_file(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    ckpt.save_checkpoint(tmp_path / "rng.pt", _state(0.0))
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ckpt.restore_rng_state(ckpt.load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
