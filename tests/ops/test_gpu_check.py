"""`softpool-bench gpu-check`: one line and a failure without a GPU; the report's structure with one."""

from __future__ import annotations

import subprocess
import types

import torch

from softpool_video.bench import cli as bench_cli
from softpool_video.bench import gpu_check


def test_without_a_gpu_says_so_in_one_line_and_fails(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = tmp_path / "report.md"
    assert bench_cli.main(["gpu-check", f"report={report}"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device on this machine" in lines[0]
    assert lines[0].startswith("softpool-bench gpu-check: error:")
    assert not report.exists()


def test_bad_report_path_is_a_usage_error(tmp_path, capsys):
    assert bench_cli.main(["gpu-check", f"report={tmp_path / 'report.txt'}"]) == 2
    assert "report" in capsys.readouterr().err


def test_listed_among_the_subcommands(capsys):
    assert bench_cli.main(["--help"]) == 0
    assert "gpu-check" in capsys.readouterr().out


def _fake_gpu(monkeypatch, failing_step: str | None):
    monkeypatch.setattr(gpu_check, "unavailable_reason", lambda device: None)
    properties = types.SimpleNamespace(name="Fake GPU", major=9, minor=0, total_memory=80 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: properties)
    commands = []

    def run(command, **kwargs):
        commands.append(command)
        failed = failing_step is not None and failing_step in " ".join(command)
        assert kwargs["timeout"] <= 300  # every step has a budget
        return subprocess.CompletedProcess(command, 1 if failed else 0, f"output of {command[2]}", "")

    monkeypatch.setattr(gpu_check.subprocess, "run", run)
    return commands


def test_runs_tests_benchmark_and_slowfast_step_into_one_report(tmp_path, monkeypatch):
    commands = _fake_gpu(monkeypatch, failing_step=None)
    report = tmp_path / "out" / "gpu.md"
    assert gpu_check.main([f"report={report}"]) == 0
    joined = [" ".join(c) for c in commands]
    assert "-m cuda" in joined[0] and "pytest" in joined[0]
    assert "softpool_video.bench.operator device=cuda" in joined[1]
    assert "cases=slowfast_r50 device=cuda" in joined[2]
    text = report.read_text()
    assert "Fake GPU (sm_90, 80 GiB)" in text
    assert text.count(": passed (") == 3
    assert sum(gpu_check.STEP_BUDGET_S.values()) < 8 * 60


def test_a_failing_step_fails_the_check_but_the_report_is_written(tmp_path, monkeypatch):
    _fake_gpu(monkeypatch, failing_step="pytest")
    report = tmp_path / "gpu.md"
    assert gpu_check.main([f"report={report}"]) == 1
    assert "## CUDA tests: FAILED (exit status 1" in report.read_text()
