"""Weights from local files: equivalence with the library models, every checkpoint format, head
dropping, published names (never downloaded) and refusal of malicious pickles."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from softpool_video.models import build_model, load_pretrained, model_input

pytestmark = pytest.mark.filterwarnings("ignore:'saved_variables' is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These clips are tiny: on a busy machine a second OpenMP thread mostly spin-waits (5-10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download: {args}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _randomise_buffers(model: nn.Module) -> nn.Module:
    """Give BatchNorm non-default statistics so that loading buffers is checked too."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def _assert_same_state(model: nn.Module, state: dict[str, torch.Tensor], skip=()) -> None:
    own = model.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        if key not in skip:
            assert torch.equal(own[key], value), key


# ---------------------------------------------------------------- equivalence with the libraries


@pytest.mark.parametrize("name", ["r2plus1d_18", "r3d_18"])
def test_torchvision_weights_reproduce_the_torchvision_model_exactly(name, tmp_path):
    import torchvision.models.video as tv

    library = _randomise_buffers(getattr(tv, name)(weights=None, num_classes=7)).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(library.state_dict(), path)

    ours = build_model(name, 7, pooling="original", pretrained=str(path)).eval()
    clip = torch.randn(1, 3, 4, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip), library(clip), rtol=0, atol=0)

    soft = build_model(name, 7, pooling="soft").eval()
    report = load_pretrained(soft, path)
    assert report.missing == [] and report.unexpected == [] and report.dropped_head == []
    _assert_same_state(soft, library.state_dict())
    with torch.no_grad():
        soft_logits = soft(clip)
    assert torch.isfinite(soft_logits).all()
    assert not torch.allclose(soft_logits, library(clip))  # the head pool really changed


def _slowfast_input(alpha=4):
    clip = torch.randn(1, 3, 8, 32, 32)
    # pytorchvideo's SlowFast overwrites its input list, so each call gets a fresh one
    return lambda: [clip[:, :, ::alpha].clone(), clip.clone()]


def test_pytorchvideo_slowfast_weights_reproduce_the_library_model_exactly(tmp_path):
    from pytorchvideo.models.slowfast import create_slowfast

    # pytorchvideo's own adaptive head option: the same network as slowfast_r50 with pooling="max".
    library = create_slowfast(model_num_class=7, head_pool=nn.AdaptiveAvgPool3d, head_output_size=(1, 1, 1))
    library = _randomise_buffers(library).eval()
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": library.state_dict(), "epoch": 196, "cfg": "TRAIN:\n  ENABLE: True\n"}, path)
    inputs = _slowfast_input()

    for pooling, where in (("max", "stem"), ("original", "all")):
        ours = build_model("slowfast_r50", 7, pooling=pooling, where=where, pretrained=str(path)).eval()
        with torch.no_grad():
            torch.testing.assert_close(ours(inputs()), library(inputs()), rtol=0, atol=0)

    # pytorchvideo's default head, an AvgPool3d sized for the clip: the same average, other rounding
    fixed = create_slowfast(model_num_class=7, head_pool_kernel_sizes=((2, 1, 1), (8, 1, 1))).eval()
    fixed.load_state_dict(library.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours(inputs()), fixed(inputs()), rtol=1e-5, atol=1e-6)

    soft = build_model("slowfast_r50", 7).eval()
    report = load_pretrained(soft, path)
    assert report.missing == [] and report.unexpected == []
    _assert_same_state(soft, library.state_dict())


@pytest.mark.parametrize("name", ["r2plus1d_r50", "x3d_xs"])
def test_pytorchvideo_softmax_heads_become_logits(name, tmp_path):
    """pytorchvideo's R(2+1)D and X3D end in Softmax with a clip-sized AvgPool3d; ours give the logits."""
    if name == "r2plus1d_r50":
        from pytorchvideo.models.r2plus1d import create_r2plus1d

        library = create_r2plus1d(model_num_class=7, dropout_rate=0.5, head_pool_kernel_size=(1, 2, 2))
    else:
        from pytorchvideo.models.x3d import create_x3d

        library = create_x3d(input_clip_length=4, input_crop_size=64, model_num_class=7)
    library = _randomise_buffers(library).eval()
    path = tmp_path / "checkpoint.pyth"
    torch.save({"model_state": library.state_dict()}, path)

    ours = build_model(name, 7, pooling="original", pretrained=str(path)).eval()
    clip = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        logits = ours(clip)
        probabilities = library(clip)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(2))
    torch.testing.assert_close(logits.softmax(1), probabilities, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- checkpoint formats


def _tiny(num_classes=5, seed=0, **kwargs):
    torch.manual_seed(seed)
    return _randomise_buffers(build_model("r2plus1d_tiny", num_classes, **kwargs))


def _formats(state):
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    return {
        "torchvision.pth": state,
        "pytorchvideo.pyth": {"model_state": state, "optimizer_state": {}, "epoch": 3, "cfg": "MODEL: {}"},
        "mmaction2.pth": {
            "meta": {"epoch": 5, "mmengine_version": "0.10.4"},
            "state_dict": {
                **{f"backbone.{k}": v for k, v in backbone.items()},
                "cls_head.fc_cls.weight": state["fc.weight"],
                "cls_head.fc_cls.bias": state["fc.bias"],
            },
        },
        "lightning.ckpt": {
            "state_dict": {f"model.{k}": v for k, v in state.items()},
            "epoch": 2,
            "global_step": 120,
            "pytorch-lightning_version": "2.4.0",
            "hyper_parameters": {"lr": 0.1, "num_classes": 5},
            "optimizer_states": [],
            "lr_schedulers": [],
        },
        "project.pt": {
            "model": state,
            "config": {"model": {"name": "r2plus1d_tiny"}, "pooling": {"pool": "soft"}},
            "class_names": ["a", "b", "c", "d", "e"],
            "epoch": 4,
        },
        "dataparallel.pth": {f"module.{k}": v for k, v in state.items()},
        "compiled.pth": {f"_orig_mod.{k}": v for k, v in state.items()},
    }


@pytest.mark.parametrize("fmt", list(_formats({"fc.weight": None, "fc.bias": None})))
def test_every_checkpoint_format_loads(fmt, tmp_path):
    source = _tiny(pooling="original").state_dict()
    target = _tiny(seed=1)
    assert not torch.equal(target.state_dict()["stage1.conv1.0.weight"], source["stage1.conv1.0.weight"])
    path = tmp_path / fmt
    torch.save(_formats(source)[fmt], path)

    report = load_pretrained(target, path)

    assert report.missing == [] and report.unexpected == [] and report.dropped_head == []
    assert len(report.loaded) == len(source)
    _assert_same_state(target, source)


def test_loading_into_a_wrapped_model_reaches_the_network(tmp_path):
    source = _tiny(pooling="original").state_dict()
    path = tmp_path / "weights.pth"
    torch.save(source, path)
    target = _tiny(seed=1)
    report = load_pretrained(nn.DataParallel(target), path)
    assert report.missing == [] and report.unexpected == []
    _assert_same_state(target, source)


def test_a_different_class_count_drops_the_head_with_a_message(tmp_path, caplog):
    source = _tiny(num_classes=400).state_dict()
    target = _tiny(num_classes=10, seed=1)
    fresh_head = target.fc.weight.detach().clone()
    path = tmp_path / "kinetics.pyth"
    torch.save({"model_state": source}, path)

    with caplog.at_level(logging.WARNING, logger="softpool_video.models.pretrained"):
        report = load_pretrained(target, path)

    assert report.dropped_head == ["fc.bias", "fc.weight"]
    assert report.missing == [] and report.unexpected == []
    assert "400 classes" in caplog.text and "fc.weight" in caplog.text
    assert torch.equal(target.fc.weight, fresh_head)
    _assert_same_state(
        target, {**source, "fc.weight": fresh_head, "fc.bias": target.fc.bias}, skip=("fc.bias",)
    )


def test_missing_and_unexpected_keys_are_reported_and_strict_refuses_them(tmp_path):
    source = _tiny().state_dict()
    del source["stage3.bn2.weight"]
    source["extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(source, path)

    report = load_pretrained(_tiny(seed=1), path)
    assert report.missing == ["stage3.bn2.weight"]
    assert report.unexpected == ["extra.weight"]
    assert "stage3.bn2.weight" in str(report)
    with pytest.raises(ValueError, match="strict=True"):
        load_pretrained(_tiny(seed=1), path, strict=True)


def test_another_architecture_is_an_error_not_a_silent_partial_load(tmp_path):
    path = tmp_path / "narrow.pth"
    torch.save(_tiny(width=16).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit this architecture.*stage1"):
        load_pretrained(_tiny(), path)
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"encoder.layer0.weight": torch.zeros(2)}, unrelated)
    with pytest.raises(ValueError, match="no tensor"):
        load_pretrained(_tiny(), unrelated)
    not_weights = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(ValueError, match="no state dict found"):
        load_pretrained(_tiny(), not_weights)


class _Payload:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_a_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pyth"
    torch.save({"model_state": _Payload(marker)}, path)

    with pytest.raises(ValueError, match="refused to load checkpoint"):
        load_pretrained(_tiny(), path)
    assert not marker.exists()

    # the payload is armed: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


# ------------------------------------------------------------------------- published weight names


def test_a_weight_name_without_local_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "X3D_XS.pyth"
    with pytest.raises(FileNotFoundError) as error:
        build_model("x3d_xs", 400, pretrained="kinetics400")
    message = str(error.value)
    assert str(expected) in message
    assert "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_XS.pyth" in message
    assert "Nothing is downloaded" in message


def test_a_weight_name_loads_the_file_from_the_torch_hub_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = _randomise_buffers(build_model("x3d_xs", 400, pooling="original")).state_dict()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({"model_state": source}, tmp_path / "hub" / "checkpoints" / "X3D_XS.pyth")

    same_classes = build_model("x3d_xs", 400, pretrained="kinetics400")
    _assert_same_state(same_classes, source)

    with caplog.at_level(logging.WARNING, logger="softpool_video.models.pretrained"):
        fine_tune = build_model("x3d_xs", 10, pretrained="kinetics400")
    assert "blocks.5.proj.weight" in caplog.text
    assert fine_tune.blocks[5].proj.out_features == 10
    assert torch.equal(
        fine_tune.state_dict()["blocks.1.res_blocks.0.branch2.conv_a.weight"],
        source["blocks.1.res_blocks.0.branch2.conv_a.weight"],
    )


def test_unknown_weight_names_and_paths_are_errors():
    with pytest.raises(ValueError, match="known names: kinetics400"):
        build_model("x3d_xs", 400, pretrained="imagenet21k")
    with pytest.raises(ValueError, match="weight names need a model made by build_model"):
        load_pretrained(nn.Linear(2, 2), "kinetics400")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(_tiny(), "no/such/file.pth")


def test_slowfast_input_helper_matches_what_the_data_pipeline_feeds():
    model = build_model("slowfast_r50", 3, num_frames=8, crop_size=32)
    clip = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(1, 3, 8, 32, 32)
    slow, fast = model_input(model, clip)
    assert fast is clip
    assert slow[0, 0, :, 0, 0].tolist() == [0.0, 7.0]  # spread over the clip, first and last frame
