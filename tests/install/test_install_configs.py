"""Packaged configs and your own: conf_dir(), --config-dir on the Hydra entry points, compose_config.

A user config directory comes *before* the packaged configs: a file there adds an option to its
group or replaces the packaged option of the same name (Hydra alone would silently keep ours).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from softpool_video.train.cli import eval_main, train_main
from softpool_video.train.config import (
    ConfigError,
    compose_config,
    conf_dir,
    config_dirs_in_argv,
    group_choices,
    user_configs_first,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_conf(tmp_path) -> Path:
    """experiment/mine.yaml (new), data/my_motion.yaml (extends a packaged option), data/ucf101.yaml
    (replaces the packaged one)."""
    root = tmp_path / "my_conf"
    (root / "experiment").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "experiment" / "mine.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /data: my_motion\n  - override /optim: adamw\n"
        "name: mine\ntrainer:\n  epochs: 3\n"
    )
    (root / "data" / "my_motion.yaml").write_text(
        "defaults:\n  - synthetic\n  - _self_\nname: my_motion\nnum_frames: 4\nroot: /my/videos\n"
    )
    (root / "data" / "ucf101.yaml").write_text("name: my_ucf101\nroot: /replaced\n")
    return root


def test_conf_dir_in_a_checkout_is_the_repository_conf():
    assert conf_dir() == REPO / "conf"
    assert (conf_dir() / "train.yaml").is_file() and (conf_dir() / "eval.yaml").is_file()


def test_compose_config_with_user_dirs(user_conf):
    cfg = compose_config("train", ["experiment=mine"], config_dirs=[user_conf])
    assert cfg.name == "mine" and cfg.trainer.epochs == 3 and cfg.optim.name == "adamw"
    # data/my_motion.yaml extends the packaged data/synthetic.yaml
    assert cfg.data.name == "my_motion" and cfg.data.num_frames == 4 and cfg.data.root == "/my/videos"
    assert cfg.data.format == "ucf101" and cfg.data.batch_size == 16  # inherited from synthetic
    # data/ucf101.yaml replaces the packaged option of the same name
    replaced = compose_config("train", ["data=ucf101"], config_dirs=[str(user_conf)])
    assert replaced.data.name == "my_ucf101" and replaced.data.root == "/replaced"


def test_compose_config_without_user_dirs_is_unaffected(user_conf):
    compose_config("train", ["experiment=mine"], config_dirs=[user_conf])
    assert compose_config("train", ["data=ucf101"]).data.name == "ucf101"
    with pytest.raises(Exception, match="experiment/mine"):
        compose_config("train", ["experiment=mine"])


def test_compose_config_refuses_a_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="nope"):
        compose_config("train", [], config_dirs=[tmp_path / "nope"])


def test_group_choices_include_user_options(user_conf):
    assert "my_motion" not in group_choices("data")
    assert {"my_motion", "ucf101", "synthetic"} <= set(group_choices("data", [user_conf]))


@pytest.mark.parametrize("form", ["--config-dir {}", "--config-dir={}", "-cd {}"])
def test_train_entry_point_takes_config_dir(user_conf, capsys, form):
    flag = form.format(user_conf).split(" ")
    assert train_main([*flag, "experiment=mine", "data=ucf101", "--cfg", "job"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["name"] == "mine" and printed["trainer"]["epochs"] == 3
    assert printed["data"]["name"] == "my_ucf101"  # the command line's data= after the experiment's


def test_train_entry_point_user_data_replaces_packaged(user_conf, capsys):
    assert train_main(["--config-dir", str(user_conf), "data=ucf101", "--cfg", "job"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["root"] == "/replaced"
    assert train_main(["data=ucf101", "--cfg", "job"]) == 0  # and without it, ours again
    assert yaml.safe_load(capsys.readouterr().out)["data"]["name"] == "ucf101"


def test_eval_entry_point_takes_config_dir(user_conf, capsys, tmp_path):
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"")
    assert (
        eval_main(
            ["--config-dir", str(user_conf), f"checkpoint={checkpoint}", "data=my_motion", "--cfg", "job"]
        )
        == 0
    )
    assert yaml.safe_load(capsys.readouterr().out)["data"]["name"] == "my_motion"


def test_relative_config_dir_is_relative_to_the_working_directory(user_conf, capsys, monkeypatch):
    monkeypatch.chdir(user_conf.parent)
    assert train_main(["--config-dir", user_conf.name, "experiment=mine", "--cfg", "job"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["name"] == "my_motion"


def test_config_dirs_in_argv():
    assert config_dirs_in_argv(["a=1", "--config-dir", "x", "b=2"]) == ["x"]
    assert config_dirs_in_argv(["--config-dir=y"]) == ["y"]
    assert config_dirs_in_argv(["-cd", "x", "--config-dir", "z"]) == ["z"]  # Hydra keeps the last
    assert config_dirs_in_argv(["config_dir=x", "--cfg", "job"]) == []


def test_other_hydra_apps_keep_their_search_path(user_conf, tmp_path):
    other = tmp_path / "other_app"
    (other / "data").mkdir(parents=True)
    (other / "config.yaml").write_text("defaults:\n  - data: ucf101\n")
    (other / "data" / "ucf101.yaml").write_text("name: other_app_ucf101\n")
    with user_configs_first([user_conf]), initialize_config_dir(str(other), version_base="1.3"):
        assert compose("config").data.name == "other_app_ucf101"
