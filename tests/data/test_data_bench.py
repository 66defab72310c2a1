"""`softpool-bench data` runs end to end on a tiny configuration and writes its tables and JSON."""

from __future__ import annotations

import json

from softpool_video.bench.cli import main as bench_main
from softpool_video.bench.data import DecodeResult, LoaderResult, format_tables


def test_bench_data_smoke(small_synthetic, tmp_path, capsys):
    output = tmp_path / "data.json"
    argv = [
        "data",
        "datasets=synthetic",
        f"synthetic_root={small_synthetic}",
        "synthetic_clips=8",
        "decode_clips=2",
        "decoders=pyav,torchcodec",
        "workers=0",
        "rounds=1",
        f"output={output}",
    ]
    assert bench_main(argv) == 0
    report = json.loads(output.read_text())
    rows = report["loaders"]
    assert [(r["dataset"], r["decoder"], r["workers"]) for r in rows] == [
        ("synthetic", "pyav", 0),
        ("synthetic", "torchcodec", 0),
    ]
    for row in rows:
        assert row["ours_clips_per_s"] > 0 and row["pytorchvideo_clips_per_s"] > 0
        assert row["ratio_clips_per_s"] == row["ours_clips_per_s"] / row["pytorchvideo_clips_per_s"]
    assert rows[1]["pytorchvideo_decoder"] == "pyav"  # pytorchvideo has no torchcodec decoder
    for row in report["decoding"]:
        assert row["ours_ms"] > 0 and row["hand_ms"] > 0 and row["pytorchvideo_ms"] > 0
        assert row["ours_exact"] is None  # the synthetic videos carry no frame numbers
    assert report["clip_settings"]["synthetic"]["clips"] == 8
    assert "ours clips/s" in capsys.readouterr().out


def test_bench_realworld_decoding_counts_exact_clips(tmp_path):
    output = tmp_path / "data.json"
    argv = ["data", "datasets=realworld", "realworld_frames=48", "realworld_scale=1"]
    argv += ["decode_clips=15", "decoders=decord"]
    assert bench_main([*argv, "loaders=false", "rounds=1", f"output={output}"]) == 0
    (row,) = json.loads(output.read_text())["decoding"]
    assert row["ours_exact"] == 1.0  # every clip: exactly the frames on screen at its instants
    assert row["hand_exact"] < 1.0  # frame = time x fps: wrong on VFR, open GOP and packed AVI


def test_format_tables_ratios():
    table = format_tables(
        [
            LoaderResult("samples", "decord", 2, 30.0, 10.0, "decord"),
            LoaderResult("realworld", "pyav", 0, 8.0, None, "pyav"),
        ],
        [DecodeResult("realworld", "pyav", 50.0, 100.0, 150.0, 1.0, 0.5)],
    )
    lines = table.splitlines()
    assert "3.00x" in lines[3] and "fails" in lines[4] and lines[4].rstrip().endswith("-")
    row = next(line for line in lines if line.startswith("realworld  pyav       |"))
    assert "2.00x" in row and "3.00x" in row and "100%" in row and "50%" in row
