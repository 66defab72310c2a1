"""Bad configurations fail early with the documented messages (the key and what is accepted)."""

from __future__ import annotations

import shutil

import pytest
from hydra.errors import MissingConfigException

from softpool_video.models import list_models
from softpool_video.train.checkpoint import load_checkpoint, save_checkpoint
from softpool_video.train.cli import eval_main, train_main
from softpool_video.train.config import ConfigError, compose_config, group_choices
from softpool_video.train.trainer import train


def test_unknown_model_name_lists_the_registered_models(make_config):
    with pytest.raises(ConfigError, match="model.name='resnet_9000' is not a registered model") as info:
        train(make_config("model.name=resnet_9000"))
    for name in list_models():
        assert name in str(info.value)


def test_unknown_group_option_lists_the_choices():
    with pytest.raises(MissingConfigException, match="Could not find 'data/nope'") as info:
        compose_config("train", ["data=nope"])
    for choice in group_choices("data"):
        assert choice in str(info.value)
    with pytest.raises(MissingConfigException, match="Available options in 'model'"):
        compose_config("train", ["model=nope"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.precision=int8", "trainer.precision='int8' is not one of auto, fp32, bf16, fp16"),
        ("trainer.precision=fp16", "trainer.precision=fp16 needs a CUDA device"),
        ("trainer.precision=bf16", "trainer.precision=bf16 is not supported for training on CPU"),
        ("optim.name=adam", "optim.name='adam' is not one of sgd, adamw"),
        ("schedule.name=linear", "schedule.name='linear' is not one of cosine, multistep, constant"),
        ("pooling.pool=median", "pooling.pool='median' is not one of soft, max, avg, original"),
        ("trainer.epochs=0", "trainer.epochs=0 must be an integer >= 1"),
        ("++eval.aggregation=median", "eval.aggregation='median' is not one of mean, sum, max"),
        ("resume=/no/such/last.pt", "resume='/no/such/last.pt': no such checkpoint file"),
        ("data.batch_size=64", "data.batch_size=64 x 1 process(es) is larger than the train split"),
        ("trainer.monitor=val_acc", "trainer.monitor='val_acc' is not a metric; choose from: lr, train_loss"),
        ("optim.lr=abc", "optim.lr='abc' must be a positive number"),
        ("optim.lr=0", "optim.lr=0 must be a positive number"),
        ("optim.momentum=1.5", "optim.momentum=1.5 must be a number in [0, 1)"),
        ("pooling.temperature=0", "pooling.temperature=0 must be a positive number"),
        ("pooling.temperature=-1", "pooling.temperature=-1 must be a positive number"),
        ("pooling.where=middle", "pooling.where='middle' is not one of stem, head, all, none"),
        ("data.num_workers=-1", "data.num_workers=-1 must be an integer >= 0"),
        ("trainer.accelerator=tpu", "trainer.accelerator='tpu' is not one of auto, cpu, gpu"),
        ("model.pretrained=/no/such/weights.pth", "model.pretrained=/no/such/weights.pth: no such file"),
        ("++model.kwargs.depth=3", "model.kwargs.depth: r2plus1d_tiny does not take this option"),
        (
            "++data.num_frames=16",
            "data.num_frames=16 but model.num_frames=8 (r2plus1d_tiny): they must agree",
        ),
        ("++data.train_crop_size=32", "data.train_crop_size=32 but model.crop_size=48"),
        ("++data.alpha=4", "data.alpha=4 makes [slow, fast] clips but model r2plus1d_tiny takes one tensor"),
        ("name=${nope}", "name: Interpolation key 'nope' not found"),
    ],
)
def test_bad_values_name_the_key(make_config, override, message, tmp_path):
    # trainer=cpu runs on the CPU even where a GPU is visible, so fp16 is refused everywhere here
    with pytest.raises(ConfigError) as info:
        train(make_config(override))
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists()  # no run folder for a configuration mistake


def test_cli_prints_one_line_and_exits_2(synthetic_root, tiny_overrides, tmp_path, capsys):
    code = train_main([*tiny_overrides(synthetic_root, tmp_path), "trainer.precision=int8"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("softpool-train: error: trainer.precision='int8'")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    assert eval_main([f"checkpoint={tmp_path / 'missing.pt'}"]) == 2
    assert f"checkpoint={tmp_path / 'missing.pt'}: no such file" in capsys.readouterr().err


def test_empty_split_is_a_config_error(make_config, synthetic_root, tmp_path):
    root = tmp_path / "empty"
    shutil.copytree(synthetic_root, root)
    (root / "trainlist01.txt").write_text("")
    with pytest.raises(ConfigError, match=r"data \(split=train\): .*no videos"):
        train(make_config(f"data.root={root}"))


def test_num_classes_mismatch_between_data_and_checkpoint(make_config, tmp_path):
    result = train(make_config("trainer.epochs=1", "trainer.limit_train_batches=1"))
    with pytest.raises(ConfigError, match="already holds a run .*pass resume=auto to continue it"):
        train(make_config("trainer.epochs=1", f"run_dir={result.run_dir}"))
    state = load_checkpoint(result.last_checkpoint)
    state["num_classes"] = 5
    state["class_names"] = [*state["class_names"], "Extra"]
    bad = save_checkpoint(tmp_path / "five_classes.pt", state)
    with pytest.raises(
        ConfigError, match=r"num_classes mismatch: checkpoint .*five_classes.pt has 5 classes.* has 4"
    ):
        train(make_config(f"resume={bad}"))
