"""mode=gradcam: class-activation maps checked against the hand-computed CAM, overlay video and PNG.

With an adaptive average head pool followed by a linear classifier, the gradient of class ``c``'s
score with respect to the pooled features is ``w_c / (T'H'W')`` at every position, so Grad-CAM
equals ``relu(sum_k w_ck A_k)`` (the CAM of Zhou et al.) up to the scale removed by normalising:
an independent reference computed here from the captured features and the classifier's weights.
"""

from __future__ import annotations

import math

import av
import pytest
import torch
from PIL import Image

from softpool_video.models import build_model, model_input
from softpool_video.visualize.cli import main
from softpool_video.visualize.features import MIN_PLAYBACK_SECONDS, capture_pool_input
from softpool_video.visualize.gradcam import class_activation_maps, find_cam_layers, visualize_gradcam

NAMES = ["archery", "bowling", "cooking", "dancing", "eating"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A pytorchvideo-style r2plus1d_tiny checkpoint for the 5 classes and its label file."""
    root = tmp_path_factory.mktemp("gradcam")
    torch.manual_seed(3)
    model = build_model("r2plus1d_tiny", num_classes=len(NAMES), pooling="original")
    weights = root / "tiny.pyth"
    torch.save({"model_state": model.state_dict()}, weights)
    labels = root / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    return weights, labels


def _reference_cam(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``relu(sum_k w_k A_k)`` scaled to a maximum of 1: features ``(C, T, H, W)``, weight ``(C,)``."""
    cam = torch.relu(torch.einsum("c,cthw->thw", weight.double(), features.double()))
    return cam / cam.max() if cam.max() > 0 else cam  # no position raises the score: all zeros


def test_single_pathway_map_is_the_class_activation_map():
    torch.manual_seed(0)
    model = build_model("r2plus1d_tiny", num_classes=4, pooling="original").eval()
    clip = torch.randn(1, 3, 8, 48, 48)
    layers = find_cam_layers(model)
    assert [name for name, _ in layers] == ["pool"]
    nonzero = 0
    for target in range(4):
        maps, chosen, probabilities, shapes = class_activation_maps(model, clip, layers, target)
        nonzero += bool(maps["pool"].any())
        features = capture_pool_input(model, layers[0][1], clip)[0]
        expected = _reference_cam(features, model.fc.weight[target].detach())
        assert chosen == target and shapes["pool"] == tuple(features.shape)
        torch.testing.assert_close(maps["pool"].double(), expected, atol=1e-5, rtol=1e-4)
    assert nonzero >= 2  # the comparison is not only between empty maps
    assert int(probabilities.argmax()) == class_activation_maps(model, clip, layers)[1]  # default: top-1


def test_slowfast_gets_one_map_per_pathway():
    pytest.importorskip("pytorchvideo")
    torch.manual_seed(0)
    model = build_model("slowfast_r50", num_classes=3, pooling="original").eval()
    layers = find_cam_layers(model)
    assert [name for name, _ in layers] == ["blocks.5.pool.0", "blocks.5.pool.1"]
    inputs = model_input(model, torch.randn(1, 3, 8, 64, 64))
    maps, target, _, shapes = class_activation_maps(model, inputs, layers, target=1, size=(8, 64, 64))
    assert shapes["blocks.5.pool.0"][1] == 2 and shapes["blocks.5.pool.1"][1] == 8  # slow T/4, fast T
    slow_channels = shapes["blocks.5.pool.0"][0]
    weight = model.blocks[6].proj.weight[target].detach()  # the classifier over [slow, fast] features
    for index, (name, module) in enumerate(layers):
        features = capture_pool_input(model, module, inputs)[0]
        part = weight[:slow_channels] if index == 0 else weight[slow_channels:]
        expected = _reference_cam(features, part)
        expected = torch.nn.functional.interpolate(
            expected[None, None].float(), size=(8, 64, 64), mode="trilinear", align_corners=False
        )[0, 0]
        expected = expected / expected.max() if expected.max() > 0 else expected
        assert maps[name].shape == (8, 64, 64)
        torch.testing.assert_close(maps[name], expected, atol=1e-4, rtol=1e-3)


def _video_facts(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return (
            count,
            stream.width,
            stream.height,
            float(stream.duration * stream.time_base),
            float(stream.average_rate),
        )


def test_overlay_video_and_png_for_foreign_weights(tmp_path, tiny_weights, sample_videos):
    weights, labels = tiny_weights
    result = visualize_gradcam(
        sample_videos["bikes"],
        model="r2plus1d_tiny",
        weights=weights,
        labels=labels,
        output=tmp_path,
        panel_side=128,
    )
    assert result.predicted and result.label in NAMES and result.clip.shape == (3, 8, 64, 64)
    count, width, height, duration, rate = _video_facts(result.files["gradcam.mp4"])
    assert result.hold == math.ceil(MIN_PLAYBACK_SECONDS * rate / 8)  # the clip's frames, held
    assert count == 8 * result.hold and duration >= MIN_PLAYBACK_SECONDS - 0.05
    assert width == 2 * 128  # input | Grad-CAM
    with Image.open(result.files["gradcam.png"]) as image:
        assert image.width >= 600 and image.height >= 400


def test_given_target_by_name_or_index(tmp_path, tiny_weights, sample_videos):
    weights, labels = tiny_weights
    common = dict(model="r2plus1d_tiny", weights=weights, labels=labels, output=tmp_path, panel_side=64)
    by_name = visualize_gradcam(sample_videos["bikes"], target="dancing", **common)
    by_index = visualize_gradcam(sample_videos["bikes"], target="3", **common)
    assert (by_name.target, by_name.label, by_name.predicted) == (3, "dancing", False)
    torch.testing.assert_close(by_name.maps["pool"], by_index.maps["pool"])
    with pytest.raises(ValueError, match="target='dancin' is not a class.*did you mean dancing"):
        visualize_gradcam(sample_videos["bikes"], target="dancin", **common)
    with pytest.raises(ValueError, match=r"target=7 must be a class index in \[0, 4\]"):
        visualize_gradcam(sample_videos["bikes"], target=7, **common)


@pytest.mark.slow
def test_cli_gradcam_slowfast(tmp_path, sample_videos, capsys):
    pytest.importorskip("pytorchvideo")
    argv = [
        str(sample_videos["carphone_pristine"]),
        "mode=gradcam",
        "model=slowfast_r50",
        "num_frames=8",
        "crop_size=64",
        f"output={tmp_path}",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "blocks.5.pool.0" in out and "blocks.5.pool.1" in out
    count, width, _, _, rate = _video_facts(tmp_path / "gradcam.mp4")
    assert count == 8 * math.ceil(MIN_PLAYBACK_SECONDS * rate / 8) and width == 3 * 224  # input | slow | fast
    assert (tmp_path / "gradcam.png").is_file()
    assert main([*argv, "target=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "target='nope'" in err and len(err.splitlines()) == 1
