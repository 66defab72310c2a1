"""The core install needs only the core dependencies; optional parts fail with an install hint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from softpool_video.models import MODEL_REGISTRY, MissingDependencyError, build_model, missing_dependencies
from softpool_video.train.config import ConfigError, build_model_from_config, compose_config

REPO = Path(__file__).resolve().parents[2]
PYTORCHVIDEO_MODELS = {"slowfast_r50", "slowfast_r101", "r2plus1d_r50", "x3d_xs", "x3d_s", "x3d_m"}
# Everything outside the core dependencies that the package or its tests can use.
OPTIONAL = (
    "pytorchvideo",
    "fvcore",
    "iopath",
    "decord",
    "torchcodec",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "skvideo",
)


@pytest.fixture
def without_pytorchvideo(monkeypatch):
    """pytorchvideo (and anything imported from it) made unimportable for this test."""
    for name in [n for n in sys.modules if n == "pytorchvideo" or n.startswith("pytorchvideo.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pytorchvideo", None)


def test_only_the_pytorchvideo_backbones_require_it():
    assert {
        name for name, spec in MODEL_REGISTRY.items() if "pytorchvideo" in spec.requires
    } == PYTORCHVIDEO_MODELS
    assert all(spec.requires in ((), ("pytorchvideo",)) for spec in MODEL_REGISTRY.values())


@pytest.mark.parametrize("name", sorted(PYTORCHVIDEO_MODELS))
def test_missing_pytorchvideo_says_how_to_install_it(without_pytorchvideo, name):
    assert missing_dependencies(name) == ["pytorchvideo"]
    with pytest.raises(MissingDependencyError) as caught:
        build_model(name, num_classes=5)
    assert str(caught.value) == (
        f"model {name!r} needs pytorchvideo, which is not installed: "
        "pip install 'softpool_video[pytorchvideo]'"
    )
    assert isinstance(caught.value, ImportError)


def test_other_models_build_without_pytorchvideo(without_pytorchvideo):
    for name in ("r2plus1d_tiny", "s3d"):
        assert missing_dependencies(name) == []
        assert build_model(name, num_classes=5, num_frames=8, crop_size=32).model_name == name


def test_training_config_names_the_key(without_pytorchvideo):
    cfg = compose_config("train", ["model=slowfast_r50"])
    with pytest.raises(ConfigError, match=r"model\.name='slowfast_r50'.*softpool_video\[pytorchvideo\]"):
        build_model_from_config(cfg, num_classes=5)


_BLOCKED_IMPORT = r"""
import importlib, json, pkgutil, sys
from importlib.machinery import PathFinder

# As if these were not installed: sys.path lookups do not find them (find_spec gives None).
BLOCKED = set(sys.argv[1].split(","))
_find_spec = PathFinder.find_spec.__func__

def find_spec(cls, name, path=None, target=None):
    return None if name.split(".")[0] in BLOCKED else _find_spec(cls, name, path, target)

PathFinder.find_spec = classmethod(find_spec)
import torch
import softpool_video
imported = []
for module in pkgutil.walk_packages(softpool_video.__path__, "softpool_video."):
    if module.name.startswith("softpool_video.conf"):
        continue
    importlib.import_module(module.name)
    imported.append(module.name)
from softpool_video.models import build_model, list_models
model = build_model("r2plus1d_tiny", num_classes=3, num_frames=4, crop_size=32)
logits = model(torch.randn(1, 3, 4, 32, 32))
print(json.dumps({"imported": imported, "logits": list(logits.shape), "models": list_models(),
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
"""


def test_every_module_imports_without_the_optional_packages(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED_IMPORT, ",".join(OPTIONAL)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"softpool_video.models.pytorchvideo_backbones", "softpool_video.data.decoders"} <= set(
        result["imported"]
    )
    assert len(result["imported"]) > 30
    assert result["logits"] == [1, 3]
    assert set(result["models"]) >= PYTORCHVIDEO_MODELS  # listed, built only when pytorchvideo is there
    assert result["loaded"] == []
