"""`softpool-bench models` runs end to end and writes its table and JSON (timings are not asserted)."""

from __future__ import annotations

import json

from softpool_video.bench.cli import main as bench_cli


def test_models_benchmark_runs_and_reports_both_clocks(tmp_path, capsys):
    out = tmp_path / "models.json"
    argv = ["models", "cases=r2plus1d_tiny", "batch_size=2", "num_frames=4"]
    argv += ["crop_size=32", "warmup=0", "repetitions=2", "threads=1", f"json={out}"]

    assert bench_cli(argv) == 0

    printed = capsys.readouterr().out
    assert "r2plus1d_tiny" in printed and "ratio CPU" in printed
    (result,) = json.loads(out.read_text())["results"]
    assert result["case"] == "r2plus1d_tiny" and result["pools_swapped"] == 2
    for clock in ("wall", "cpu"):
        assert result["original_ms"][clock] > 0 and result["soft_ms"][clock] > 0
        assert result["ratio"][clock] > 0
