"""The SoftPool temperature sweep of `softpool-bench retention`: small T tends to max pooling, large
T to average pooling (exact bounds on tiny inputs), and the sweep's table, CSV and plot hold the
temperatures asked for."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from softpool_video import soft_pool1d
from softpool_video.bench.cli import main as bench_main
from softpool_video.bench.retention import sweep_label
from softpool_video.visualize.downsample import pool_video


def test_two_taps_by_hand():
    """Window [0, 1]: softmax weights (1, e^(1/T)) / (1 + e^(1/T)), so y = 1 / (1 + e^(-1/T))."""
    x = torch.tensor([[[0.0, 1.0]]], dtype=torch.float64)
    for t in (0.03, 0.3, 3.0, 30.0):
        assert soft_pool1d(x, 2, temperature=t).item() == pytest.approx(1 / (1 + math.exp(-1 / t)), rel=1e-13)
    assert soft_pool1d(x, 2, temperature=0.03).item() > 1 - 1e-14  # max pooling gives 1
    assert abs(soft_pool1d(x, 2, temperature=30.0).item() - 0.5) < 0.0084  # avg pooling gives 0.5


def test_small_temperature_is_within_t_log_k_of_max_and_large_within_1_over_4t_of_avg():
    """Exact bounds for every window of K values in [0, 1]: y = T logsumexp(x / T) - T H(s), so
    y >= max - T ln K; and dy/d(1/T) is the window's softmax variance (<= 1/4), so |y - mean| <= 1/(4T)."""
    video = torch.rand(3, 8, 12, 12, dtype=torch.float64)
    peak = pool_video(video, "max", 2)
    mean = pool_video(video, "avg", 2)
    for t in (0.003, 0.03):
        soft = pool_video(video, "soft", 2, temperature=t)
        assert bool((soft <= peak + 1e-12).all())
        assert float((peak - soft).max()) <= t * math.log(8)
    for t in (3.0, 30.0):
        soft = pool_video(video, "soft", 2, temperature=t)
        assert float((soft - mean).abs().max()) <= 1 / (4 * t)
    errors = [
        float((pool_video(video, "soft", 2, temperature=t) - mean).abs().max()) for t in (0.1, 1, 10, 100)
    ]
    assert errors == sorted(errors, reverse=True)  # monotone towards avg as T grows


def test_sweep_on_a_sample_clip(tmp_path, sample_videos, capsys):
    output = tmp_path / "sweep"
    temperatures = ["0.01", "0.3", "100"]
    argv = ["retention", str(sample_videos["carphone_pristine"]), f"output={output}", "methods=soft"]
    argv += ["max_side=64", "max_frames=16", "levels=1", f"temperatures={','.join(temperatures)}"]
    assert bench_main(argv) == 0
    printed = capsys.readouterr().out
    with open(output / "temperature_sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["max", "avg", *(sweep_label(float(t)) for t in temperatures)]
    assert [row["temperature"] for row in rows][:2] == ["", ""]
    assert [float(row["temperature"]) for row in rows[2:]] == [float(t) for t in temperatures]
    psnr_up = {row["method"]: float(row["psnr_up_mean"]) for row in rows}
    cold, hot = psnr_up[sweep_label(0.01)], psnr_up[sweep_label(100.0)]
    assert abs(cold - psnr_up["max"]) < abs(cold - psnr_up["avg"])
    assert abs(hot - psnr_up["avg"]) < 0.05 < abs(hot - psnr_up["max"])
    for t in temperatures:
        assert sweep_label(float(t)) in printed
    assert "level 1 psnr_up: best soft T=" in printed
    assert (output / "temperature_sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("value", ["0", "-1,2", "hot"])
def test_bad_sweep_temperatures_exit_2_with_one_line(tmp_path, capsys, value):
    assert bench_main(["retention", f"output={tmp_path / 'out'}", f"temperatures={value}"]) == 2
    err = capsys.readouterr().err
    assert "temperatures" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
