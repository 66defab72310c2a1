"""mode=features: a model's feature maps entering and leaving one pool, max vs SoftPool."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from softpool_video.visualize.cli import main
from softpool_video.visualize.features import MIN_PLAYBACK_SECONDS, visualize_features


def test_features_of_the_tiny_models_stem_pool(tmp_path, sample_videos):
    result = visualize_features(
        sample_videos["carphone_pristine"], model="r2plus1d_tiny", output=tmp_path, gif=False, panel_side=96
    )
    assert result.layer == "stem.3"
    assert result.clip.shape == (3, 8, 64, 64)
    channels, frames, height, width = result.entering.shape
    # both variants use the stem pool's own window, so they have the same (smaller) shape
    assert result.leaving["max"].shape == result.leaving["soft"].shape
    assert result.leaving["max"].shape[0] == channels and result.leaving["max"].shape[-1] < width
    # SoftPool is a weighted mean of each window: never above the max
    assert torch.all(result.leaving["soft"] <= result.leaving["max"] + 1e-5)
    assert set(result.leaving) == {"max", "avg", "soft"}  # every kind of constants.POOL_KINDS
    (video,) = [p for name, p in result.files.items() if name.endswith(".mp4")]
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        duration = float(stream.duration * stream.time_base)
        rate = float(stream.average_rate)
        last = decoded[-1].to_ndarray(format="rgb24")
    # each of the 8 clip frames is held so the video plays at least MIN_PLAYBACK_SECONDS
    hold = math.ceil(MIN_PLAYBACK_SECONDS * rate / 8)
    assert len(decoded) == 8 * hold and duration >= MIN_PLAYBACK_SECONDS - 0.05
    assert all(
        np.array_equal(
            decoded[k * hold].to_ndarray(format="rgb24"), decoded[k * hold + 1].to_ndarray(format="rgb24")
        )
        or np.abs(
            decoded[k * hold].to_ndarray(format="rgb24").astype(int)
            - decoded[k * hold + 1].to_ndarray(format="rgb24")
        ).mean()
        < 1.5
        for k in range(8)
    )  # held frames repeat (up to the encoder's noise)
    assert stream.width == 5 * 96  # input | entering | max | avg | soft
    # the colour bar below the panels runs from inferno's black to its yellow
    bar_row = last[-58 + 10]
    import matplotlib

    for x, value in ((14, 0.0), (-14, 1.0)):
        expected = np.array(matplotlib.colormaps["inferno"](value)[:3]) * 255
        assert np.abs(bar_row[x].astype(float) - expected).max() < 20, (x, bar_row[x], expected)
    still = result.files["features_stem_3.png"]
    with Image.open(still) as image:
        assert image.width >= 600 and image.height >= 600


def test_max_variant_matches_max_pool3d_of_the_captured_input(tmp_path, sample_videos):
    from softpool_video.models import build_model

    result = visualize_features(sample_videos["bikes"], model="r2plus1d_tiny", output=tmp_path, gif=False)
    stem_pool = dict(build_model("r2plus1d_tiny", num_classes=4, pooling="original").named_modules())[
        "stem.3"
    ]
    expected = F.max_pool3d(
        result.entering.unsqueeze(0), stem_pool.kernel_size, stem_pool.stride, stem_pool.padding
    )[0]
    torch.testing.assert_close(result.leaving["max"], expected)


def test_unknown_layer_lists_the_pools(tmp_path, sample_videos):
    with pytest.raises(ValueError, match=r"layer='head' is not a 3-D pooling module.*stem\.3"):
        visualize_features(
            sample_videos["carphone_pristine"], model="r2plus1d_tiny", layer="head", output=tmp_path
        )


def test_cli_features_mode(tmp_path, sample_videos, capsys):
    argv = [
        str(sample_videos["carphone_pristine"]),
        "mode=features",
        "model=r2plus1d_tiny",
        f"output={tmp_path}",
    ]
    assert main(argv + ["gif=false"]) == 0
    out = capsys.readouterr().out
    assert "pooling layer stem.3" in out and (tmp_path / "features_stem_3.mp4").is_file()
    assert main(argv + ["layer=nope"]) == 2
    assert "layer='nope'" in capsys.readouterr().err
    assert main(argv + ["levels=2"]) == 2
    assert "levels only applies to mode=pool" in capsys.readouterr().err
