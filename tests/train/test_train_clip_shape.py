"""Model and data agree on frames, crop size and SlowFast alpha: derived with a note, or an error."""

from __future__ import annotations

import pytest

from softpool_video.train.config import ConfigError, compose_config, reconcile_clip_shape


@pytest.mark.parametrize(
    ("model", "data", "frames", "crop", "alpha"),
    [
        ("slowfast_r50", "kinetics400", 32, 224, 4),  # 0.1 trained this on the data config's 8 frames
        ("r2plus1d_18", "ucf101", 16, 112, None),
        ("x3d_xs", "kinetics600", 4, 160, None),
        ("r2plus1d_tiny", "synthetic", 8, 64, None),
    ],
)
def test_the_data_takes_the_models_clip_shape(model, data, frames, crop, alpha):
    cfg = compose_config("train", [f"model={model}", f"data={data}"])
    notes = reconcile_clip_shape(cfg)
    assert (cfg.data.num_frames, cfg.data.train_crop_size, cfg.data.alpha) == (frames, crop, alpha)
    assert f"data.num_frames={frames} (from the model: {model} takes clips of {frames})" in notes
    assert any(note.startswith(f"data.train_crop_size={crop}") for note in notes)
    if alpha is not None:
        assert any(note.startswith(f"data.alpha={alpha}") for note in notes)
    # what is derived once is agreed on the next time: no notes
    assert reconcile_clip_shape(cfg) == []


def test_setting_both_sides_to_the_same_value_is_fine_and_different_values_are_an_error():
    cfg = compose_config(
        "train", ["model=slowfast_r50", "data=kinetics400", "model.num_frames=16", "data.num_frames=16"]
    )
    reconcile_clip_shape(cfg)
    assert cfg.data.num_frames == 16
    cfg = compose_config("train", ["model=slowfast_r50", "data=kinetics400", "data.num_frames=16"])
    with pytest.raises(ConfigError, match=r"data.num_frames=16 but model.num_frames=32 \(slowfast_r50\)"):
        reconcile_clip_shape(cfg)
    cfg = compose_config("train", ["model=slowfast_r50", "data=kinetics400", "model.num_frames=30"])
    with pytest.raises(ConfigError, match="not a multiple of the SlowFast alpha=4"):
        reconcile_clip_shape(cfg)
    cfg = compose_config("train", ["model=r3d_18", "data=ucf101", "data.train_crop_size=128"])
    with pytest.raises(ConfigError, match=r"data.train_crop_size=128 but model.crop_size=112"):
        reconcile_clip_shape(cfg)
    cfg = compose_config("train", ["model=slowfast_r50", "data=kinetics400", "data.alpha=8"])
    with pytest.raises(ConfigError, match="data.alpha=8 but model slowfast_r50 has alpha=4"):
        reconcile_clip_shape(cfg)


def test_a_model_value_left_unset_takes_the_datas():
    cfg = compose_config(
        "train", ["model=r2plus1d_18", "data=ucf101", "model.num_frames=null", "data.num_frames=24"]
    )
    notes = reconcile_clip_shape(cfg)
    assert cfg.model.num_frames == 24 and "model.num_frames=24 (from data.num_frames)" in notes


def test_evaluation_with_another_data_config_takes_the_checkpoints_model():
    from softpool_video.train.evaluate import resolve_eval_data_config

    cfg = compose_config("eval", ["checkpoint=x.pt", "data=kinetics400", "data.root=/k400"])
    checkpoint_config = {"model": {"name": "slowfast_r50", "num_frames": 32, "crop_size": 224, "alpha": 4}}
    data = resolve_eval_data_config(cfg, checkpoint_config)
    assert (data.num_frames, data.train_crop_size, data.alpha) == (32, 224, 4)
    assert "generate" not in data and "generate_if_missing" not in data
    cfg = compose_config("eval", ["checkpoint=x.pt", "data=kinetics400", "+data_overrides.num_frames=8"])
    with pytest.raises(ConfigError, match="data.num_frames=8 but model.num_frames=32"):
        resolve_eval_data_config(cfg, checkpoint_config)
