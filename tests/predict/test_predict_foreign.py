"""Foreign weights: a registered backbone + another codebase's checkpoint + a label file.

Every checkpoint is written here in the layout of its codebase (no downloads), from a model built
in memory; the loaded model must compute exactly what that model computes.
"""

from __future__ import annotations

import json

import pytest
import torch

from softpool_video.models import INFERENCE_DEFAULTS, build_model, list_models, pool_kind
from softpool_video.models.loading import (
    CheckpointError,
    inference_data_config,
    load_foreign_model,
    read_labels,
)
from softpool_video.predict import Predictor, cli

NAMES = ["archery", "bowling", "cooking", "dancing", "eating"]


def _labels(tmp_path, names=NAMES):
    path = tmp_path / "labels.txt"
    path.write_text("# Kinetics-like label file\n" + "\n".join(names) + "\n\n")
    return path


def _same_outputs(reference: torch.nn.Module, loaded: torch.nn.Module, clip: torch.Tensor) -> None:
    from softpool_video.models import model_input

    reference.eval()
    with torch.no_grad():
        expected = reference(model_input(reference, clip))
        got = loaded(model_input(loaded, clip))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.fixture(scope="module")
def torchvision_r3d(tmp_path_factory):
    """``(model, path)``: torchvision's own r3d_18 (not the registry's) and its saved state dict."""
    from torchvision.models.video import r3d_18

    model = r3d_18(weights=None, num_classes=len(NAMES))
    path = tmp_path_factory.mktemp("torchvision") / "r3d_18.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_torchvision_state_dict_predicts_like_the_model_it_came_from(tmp_path, torchvision_r3d):
    reference, weights = torchvision_r3d
    model, config, names = load_foreign_model("r3d_18", weights, _labels(tmp_path))
    assert names == NAMES
    assert config["data"]["num_frames"] == 16 and config["data"]["test_crop_size"] == 112
    assert config["data"]["mean"] == list(INFERENCE_DEFAULTS["r3d_18"].mean)
    _same_outputs(reference, model, torch.randn(2, 3, 4, 32, 32))


@pytest.mark.parametrize("layout", ["pytorchvideo", "pyslowfast", "mmaction2", "ddp"])
def test_checkpoint_layouts_of_other_codebases_load(tmp_path, layout):
    reference = build_model("r2plus1d_tiny", num_classes=len(NAMES), pooling="original")
    state = reference.state_dict()
    if layout == "pytorchvideo":
        checkpoint = {"model_state": state}
    elif layout == "pyslowfast":
        checkpoint = {"epoch": 196, "model_state": state, "optimizer_state": {}, "cfg": "TRAIN: ..."}
    elif layout == "mmaction2":  # backbone.* + cls_head.fc_cls.*, next to the runner's meta
        checkpoint = {
            "meta": {"epoch": 100},
            "state_dict": {
                **{f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")},
                "cls_head.fc_cls.weight": state["fc.weight"],
                "cls_head.fc_cls.bias": state["fc.bias"],
            },
        }
    else:
        checkpoint = {f"module.{k}": v for k, v in state.items()}
    weights = tmp_path / "weights.pth"
    torch.save(checkpoint, weights)
    model, _, _ = load_foreign_model("r2plus1d_tiny", weights, _labels(tmp_path))
    _same_outputs(reference, model, torch.randn(2, 3, 8, 48, 48))


def test_pooling_soft_swaps_the_pools_after_loading(tmp_path):
    reference = build_model("r2plus1d_tiny", num_classes=len(NAMES), pooling="original")
    weights = tmp_path / "w.pth"
    torch.save({"model_state": reference.state_dict()}, weights)
    model, config, _ = load_foreign_model("r2plus1d_tiny", weights, _labels(tmp_path), pooling="soft")
    kinds = {name: pool_kind(m) for name, m in model.named_modules() if pool_kind(m) is not None}
    assert kinds and all(kind[0].startswith(("soft", "adaptive_soft")) for kind in kinds.values()), kinds
    assert config["pooling"]["pool"] == "soft"
    # the weights are the checkpoint's; only the pooling differs
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    clip = torch.rand(1, 3, 8, 48, 48)
    with torch.no_grad():
        assert not torch.equal(model(clip), reference.eval()(clip))


def test_slowfast_pyslowfast_layout_loads(tmp_path):
    pytest.importorskip("pytorchvideo")
    reference = build_model("slowfast_r50", num_classes=len(NAMES), pooling="original")
    weights = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"epoch": 1, "model_state": reference.state_dict()}, weights)
    model, config, _ = load_foreign_model("slowfast_r50", weights, _labels(tmp_path), num_frames=8)
    assert config["data"]["alpha"] == 4 and config["data"]["num_frames"] == 8
    _same_outputs(reference, model, torch.randn(1, 3, 8, 64, 64))


def test_a_label_file_with_another_class_count_is_refused(tmp_path, torchvision_r3d):
    _, weights = torchvision_r3d
    with pytest.raises(CheckpointError, match=r"names 3 classes but the classifier of .* has 5 classes"):
        load_foreign_model("r3d_18", weights, _labels(tmp_path, NAMES[:3]))


def test_weights_of_another_architecture_are_refused(tmp_path, torchvision_r3d):
    _, weights = torchvision_r3d
    with pytest.raises(CheckpointError, match="weights="):
        load_foreign_model("r2plus1d_tiny", weights, _labels(tmp_path))


@pytest.mark.parametrize(
    "document",
    [
        NAMES,  # a JSON list
        {name: k for k, name in enumerate(NAMES)},  # name -> index (PySlowFast's Kinetics file)
        {str(k): name for k, name in enumerate(NAMES)},  # index -> name
        {name: k for k, name in reversed(list(enumerate(NAMES)))},  # any key order
    ],
)
def test_label_files_in_json(tmp_path, document):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(document))
    assert read_labels(path) == NAMES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no class names"),
        ('{"a": 0, "b": 2}', "indices must be 0..1"),
        ("a\nb\na\n", "repeated: a"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_label_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_labels(path)
    assert str(path) in str(error.value)


def test_every_registered_model_has_test_time_defaults():
    assert set(INFERENCE_DEFAULTS) == set(list_models())
    data = inference_data_config("x3d_s", sampling_rate=3, crop_size=200, mean=[0.5, 0.5, 0.5])
    assert (data["num_frames"], data["sampling_rate"], data["test_crop_size"]) == (13, 3, 200)
    assert data["test_scale"] == 200 and data["mean"] == [0.5, 0.5, 0.5]


def test_predictor_uses_the_recipe_and_its_overrides(tmp_path, foreign_tiny, sample_videos):
    weights, labels = foreign_tiny
    predictor = Predictor(
        model="r2plus1d_tiny", weights=weights, labels=labels, device="cpu", num_frames=4, crop_size=40
    )
    assert predictor.class_names == NAMES and predictor.settings["weights"] == str(weights)
    with predictor.view_maker.open(sample_videos["carphone_pristine"]) as video:
        views = predictor.view_maker.views(video, 1)
    assert tuple(views.shape) == (1, 3, 4, 40, 40)
    # the probabilities are the in-memory model's softmax on those views
    reference = build_model("r2plus1d_tiny", num_classes=len(NAMES), pooling="original")
    reference.load_state_dict(torch.load(weights, weights_only=True)["model_state"])
    with torch.no_grad():
        expected = reference.eval()(views).double().softmax(dim=1)[0]
    prediction = predictor.predict(sample_videos["carphone_pristine"])
    torch.testing.assert_close(
        torch.tensor(prediction.probabilities, dtype=torch.float64), expected, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["model=r2plus1d_tiny"], "weights="),
        (["model=r2plus1d_tiny", "weights=missing.pth", "labels=LABELS"], "weights=missing.pth"),
        (["model=nonesuch", "weights=W", "labels=LABELS"], "model"),
        (["checkpoint=W", "model=r2plus1d_tiny", "weights=W", "labels=LABELS"], "exclude each other"),
        (["checkpoint=W", "pooling=soft"], "pooling="),
        (["model=r2plus1d_tiny", "weights=W", "labels=LABELS", "mean=1,2"], "mean"),
    ],
)
def test_cli_bad_foreign_arguments_exit_2_naming_the_key(
    tmp_path, foreign_tiny, sample_videos, capsys, argv, named
):
    weights, labels = foreign_tiny
    argv = [a.replace("=W", f"={weights}").replace("LABELS", str(labels)) for a in argv]
    status = cli.main([str(sample_videos["carphone_pristine"]), *argv])
    err = capsys.readouterr().err.strip()
    assert status == 2 and named in err and len(err.splitlines()) == 1, err


def test_cli_refuses_mismatched_labels_with_exit_1(tmp_path, foreign_tiny, sample_videos, capsys):
    weights, _ = foreign_tiny
    status = cli.main(
        [str(sample_videos["carphone_pristine"]), "model=r2plus1d_tiny", f"weights={weights}",
         f"labels={_labels(tmp_path, NAMES[:2])}", "device=cpu"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 1 and "names 2 classes" in err and len(err.splitlines()) == 1, err
