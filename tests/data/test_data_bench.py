"""`softpool-bench data` runs end to end on a tiny configuration and writes its table and JSON."""

from __future__ import annotations

import json

from softpool_video.bench.cli import main as bench_main
from softpool_video.bench.data import Result, format_table


def test_bench_data_smoke(small_synthetic, tmp_path, capsys):
    output = tmp_path / "data.json"
    argv = [
        "data",
        "datasets=synthetic",
        f"synthetic_root={small_synthetic}",
        "synthetic_clips=8",
        "decode_clips=2",
        "decoders=pyav",
        "workers=0",
        "rounds=1",
        f"output={output}",
    ]
    assert bench_main(argv) == 0
    report = json.loads(output.read_text())
    (row,) = report["results"]
    assert (row["dataset"], row["decoder"], row["workers"]) == ("synthetic", "pyav", 0)
    assert row["ours_clips_per_s"] > 0 and row["pytorchvideo_clips_per_s"] > 0 and row["ours_decode_ms"] > 0
    assert row["ratio_clips_per_s"] == row["ours_clips_per_s"] / row["pytorchvideo_clips_per_s"]
    assert report["clip_settings"]["synthetic"]["clips"] == 8
    assert "ours clips/s" in capsys.readouterr().out


def test_format_table_ratios():
    table = format_table(
        [
            Result("samples", "decord", 2, 30.0, 10.0, None, None),
            Result("samples", "pyav", 0, 8.0, 16.0, 50.0, 100.0),
        ]
    )
    lines = table.splitlines()
    assert "3.00x" in lines[2] and lines[2].rstrip().endswith("|")
    assert "0.50x" in lines[3] and lines[3].rstrip().endswith("2.00x")
