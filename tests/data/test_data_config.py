"""conf/data/*.yaml, DataConfig and build_dataset, through Hydra as training composes them."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from softpool_video.data import DataConfig, build_dataset

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
CONFIG_NAMES = ["kinetics400", "kinetics600", "kinetics700", "ucf101", "hmdb51", "csv", "synthetic"]
# the layout keys each parser reads; every other key is spelled out in every YAML
LAYOUT_KEYS = {"annotation_dir", "video_dir", "video_dirs", "split_files", "split"}
USED_LAYOUT_KEYS = {
    "kinetics": {"annotation_dir", "video_dirs", "split_files"},
    "ucf101": {"annotation_dir", "video_dir", "split"},
    "hmdb51": {"annotation_dir", "video_dir", "split"},
    "csv": {"annotation_dir", "video_dir", "video_dirs", "split_files"},
}
TINY_SYNTHETIC = {"num_classes": 3, "videos_per_class": 4, "frames": 10, "size": 32, "fps": 8, "seed": 1}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_yaml_is_a_valid_complete_data_config(name):
    cfg = OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml")
    known = {f.name for f in dataclasses.fields(DataConfig)}
    expected = (known - LAYOUT_KEYS - {"synthetic"}) | USED_LAYOUT_KEYS[cfg.format]
    if name == "synthetic":
        expected.add("synthetic")
    assert set(cfg) == expected, (set(cfg) - expected, expected - set(cfg))
    if name != "synthetic":
        assert OmegaConf.is_missing(cfg, "root")
        cfg.root = "/some/where"
    config = DataConfig.from_config(cfg)
    assert config.name == name
    if name == "synthetic":
        assert config.synthetic["num_classes"] == config.num_classes
    assert (
        config.num_classes
        == {
            "kinetics400": 400,
            "kinetics600": 600,
            "kinetics700": 700,
            "ucf101": 101,
            "hmdb51": 51,
            "csv": None,
            "synthetic": 8,
        }[name]
    )


def test_hydra_compose_with_root_override_and_clear_missing_root_error(tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=["+data=ucf101"])
        with pytest.raises(ValueError, match=r"data.root is not set: pass data.root="):
            build_dataset(cfg.data, "train")
        cfg = compose(overrides=["+data=ucf101", f"data.root={tmp_path}", "data.split=3"])
    assert cfg.data.root == str(tmp_path) and cfg.data.split == 3
    with pytest.raises(FileNotFoundError, match=r"annotation file .*classInd.txt"):
        build_dataset(cfg.data, "train")
    with pytest.raises(FileNotFoundError, match=r"data.root=/does/not/exist .* is not a directory"):
        build_dataset({**OmegaConf.to_container(cfg.data), "root": "/does/not/exist"}, "train")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"root": None}, "data.root is not set"),
        ({"format": "imagenet"}, "data.format must be one of"),
        ({"decoder": "opencv"}, "data.decoder must be one of"),
        ({"num_crops": 2}, "data.num_crops must be 1 or 3"),
        ({"test_scale": 100, "test_crop_size": 112}, "data.test_scale"),
        ({"train_jitter_scales": [100, 90]}, "data.train_jitter_scales"),
        ({"alpha": 64}, "data.alpha"),
        ({"format": "ucf101", "split": 4}, "data.split must be 1, 2 or 3"),
        ({"max_failure_fraction": -0.1}, "data.max_failure_fraction"),
    ],
)
def test_invalid_values_name_the_key(override, message):
    values = {
        "root": "/x",
        "train_crop_size": 96,
        "train_jitter_scales": [100, 120],
        "test_scale": 128,
        "test_crop_size": 112,
        **override,
    }
    with pytest.raises(ValueError, match=message):
        DataConfig.from_config(values)


def test_unknown_keys_warn_and_nulls_mean_defaults(caplog):
    with caplog.at_level(logging.WARNING):
        config = DataConfig.from_config({"root": "/x", "shufle": True, "mean": None, "decoder_threads": None})
    assert "data.shufle" in caplog.text
    assert config.mean == [0.45, 0.45, 0.45] and config.decoder_threads == 1


def test_relative_root_is_relative_to_the_launch_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert DataConfig(root="data/x").root_path() == tmp_path / "data" / "x"
    assert (
        DataConfig(root=str(tmp_path / "abs")).resolve("lists", Path("/unused")) == tmp_path / "abs" / "lists"
    )


def test_synthetic_config_generates_on_first_use_and_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = OmegaConf.load(CONF_DIR / "data" / "synthetic.yaml")
    cfg.synthetic = TINY_SYNTHETIC
    cfg.num_classes = 3
    cfg.train_jitter_scales, cfg.train_crop_size, cfg.test_scale, cfg.test_crop_size = [32, 36], 32, 32, 32
    train = build_dataset(cfg, "train")  # generates data/synthetic under the working directory
    assert (tmp_path / "data" / "synthetic" / "synthetic.json").is_file()
    test = build_dataset(cfg, "test")  # reuses it
    assert train.class_names == test.class_names == ["MoveLeft", "MoveRight", "MoveUp"]
    assert not {str(p) for p in train.videos} & {str(p) for p in test.videos}
    assert len(test) == len(test.videos) * cfg.num_clips * cfg.num_crops
    item = train[0]
    assert item["video"].shape == (3, cfg.num_frames, 32, 32) and item["video"].dtype == torch.float32
    # a different generator configuration at the same root is refused, not silently mixed
    cfg.synthetic = {**TINY_SYNTHETIC, "seed": 2}
    with pytest.raises(FileExistsError, match="data.root=.*different|made with"):
        build_dataset(cfg, "train")
