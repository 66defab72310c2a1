"""`softpool-bench retention` on a real sample clip, plus the summary statistics."""

from __future__ import annotations

import csv
import math
import shutil

import pytest

from softpool_video.bench.cli import main as bench_main
from softpool_video.bench.retention import summarize


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_retention_bench_on_a_sample_clip(tmp_path, sample_videos, capsys):
    output = tmp_path / "retention"
    argv = ["retention", str(sample_videos["carphone_pristine"]), f"output={output}"]
    argv += ["max_side=64", "max_frames=32", "levels=2"]
    assert bench_main(argv) == 0
    printed = capsys.readouterr().out
    assert "carphone_pristine.mp4: 32 frames of 64x52" in printed
    assert "PSNR vs box" in printed

    per_video = read_csv(output / "per_video.csv")
    summary = read_csv(output / "summary.csv")
    assert len(per_video) == len(summary) == 3 * 2
    assert {row["videos"] for row in summary} == {"1"}
    for row in summary:
        assert float(row["psnr_up_std"]) == 0.0  # one video: no spread
        assert 0.0 < float(row["ssim_up_mean"]) <= 1.0
    by_method = {(r["method"], r["level"]): float(r["psnr_up_mean"]) for r in summary}
    assert by_method["max", "1"] < by_method["avg", "1"]
    for name in ("retention_max.png", "retention_avg.png", "retention_soft.png", "retention_methods.png"):
        assert (output / name).stat().st_size > 10_000


def test_retention_bench_skips_unreadable_files_in_a_folder(tmp_path, sample_videos, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(sample_videos["carphone_distorted"], folder / "good.mp4")
    (folder / "bad.mp4").write_bytes(b"not a video" * 50)
    argv = ["retention", str(folder), f"output={tmp_path / 'out'}", "plots=false"]
    argv += ["max_side=48", "max_frames=16", "levels=1"]
    assert bench_main(argv) == 0
    assert "skipping" in capsys.readouterr().err
    assert {row["video"] for row in read_csv(tmp_path / "out" / "per_video.csv")} == {"good.mp4"}

    (folder / "good.mp4").unlink()
    assert bench_main(argv) == 1
    assert "no video could be measured" in capsys.readouterr().err


def test_summarize_mean_and_sample_std():
    rows = [
        {"method": "soft", "level": 1, "psnr_down": 30.0, "ssim_down": 0.9, "psnr_up": 20.0, "ssim_up": 0.5},
        {"method": "soft", "level": 1, "psnr_down": 34.0, "ssim_down": 0.7, "psnr_up": 22.0, "ssim_up": 0.7},
        {
            "method": "avg",
            "level": 1,
            "psnr_down": math.inf,
            "ssim_down": 1.0,
            "psnr_up": 25.0,
            "ssim_up": 0.8,
        },
    ]
    soft, avg = summarize(rows)
    assert (soft.method, soft.videos) == ("soft", 2)
    assert soft.psnr_down_mean == pytest.approx(32.0)
    assert soft.psnr_down_std == pytest.approx(math.sqrt(8.0))  # sample std of 30, 34
    assert soft.ssim_up_std == pytest.approx(math.sqrt(0.02))
    assert math.isinf(avg.psnr_down_mean) and avg.psnr_up_std == 0.0
