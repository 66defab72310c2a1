"""conf/model and conf/pooling: one config per registered model, each of which builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from softpool_video.models import (
    MODEL_REGISTRY,
    POOLING_CHOICES,
    WHERE_CHOICES,
    build_model_from_config,
    list_models,
    model_input,
    pool_kind,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
MODEL_KEYS = {"name", "num_frames", "crop_size", "alpha", "pretrained", "kwargs"}

pytestmark = pytest.mark.filterwarnings("ignore:'saved_variables' is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # On a busy machine a second OpenMP thread mostly spin-waits (5-10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_one_model_config_per_registered_model():
    assert sorted(path.stem for path in (CONF / "model").glob("*.yaml")) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_model_config_matches_the_registry_and_builds(name):
    cfg = OmegaConf.load(CONF / "model" / f"{name}.yaml")
    assert set(cfg) == MODEL_KEYS
    spec = MODEL_REGISTRY[name]
    assert cfg.name == name
    assert (cfg.num_frames, cfg.crop_size, cfg.alpha) == (spec.num_frames, spec.crop_size, spec.alpha)
    assert cfg.pretrained is None
    model = build_model_from_config(cfg, 3)  # every kwarg is one the builder accepts
    assert (model.model_name, model.num_frames, model.crop_size, model.pathway_alpha) == (
        name,
        cfg.num_frames,
        cfg.crop_size,
        cfg.alpha,
    )


def test_pooling_configs():
    names = sorted(path.stem for path in (CONF / "pooling").glob("*.yaml"))
    assert names == ["avg", "max", "original", "soft", "soft_learned"]
    model_cfg = OmegaConf.load(CONF / "model" / "r2plus1d_tiny.yaml")
    kinds, learned = {}, {}
    for name in names:
        cfg = OmegaConf.load(CONF / "pooling" / f"{name}.yaml")
        assert set(cfg) == {"pool", "where", "temperature", "learn_temperature", "temperature_per_channel"}
        assert cfg.pool == name.removesuffix("_learned") and cfg.pool in POOLING_CHOICES
        assert cfg.where in WHERE_CHOICES and cfg.temperature > 0
        model = build_model_from_config(model_cfg, 3, cfg)
        kinds[name] = (pool_kind(model.stem[3])[0], pool_kind(model.pool)[0])
        learned[name] = [getattr(m, "learn_temperature", False) for m in (model.stem[3], model.pool)]
    assert kinds == {
        "soft": ("soft", "adaptive_soft"),
        "soft_learned": ("soft", "adaptive_soft"),
        "max": ("max", "adaptive_max"),
        "avg": ("avg", "adaptive_avg"),
        "original": ("max", "adaptive_avg"),
    }
    assert learned == {name: [name == "soft_learned"] * 2 for name in names}


def test_config_overrides_reach_the_builder():
    model_cfg = OmegaConf.load(CONF / "model" / "slowfast_r50.yaml")
    model_cfg.alpha = 8
    model_cfg.kwargs.beta_inv = 4
    pooling_cfg = OmegaConf.create({"pool": "soft", "where": "stem", "temperature": 0.5})
    model = build_model_from_config(model_cfg, 5, pooling_cfg)
    assert model.pathway_alpha == 8
    stem_pool = model.blocks[0].multipathway_blocks[1].pool
    assert pool_kind(stem_pool)[0] == "soft" and stem_pool.temperature == 0.5
    assert pool_kind(model.blocks[5].pool[0])[0] == "adaptive_avg"
    # fast pathway width = slow width / beta_inv
    assert model.blocks[0].multipathway_blocks[1].conv.out_channels == 64 // 4
    with torch.no_grad():
        assert model.eval()(model_input(model, torch.randn(1, 3, 16, 32, 32))).shape == (1, 5)
