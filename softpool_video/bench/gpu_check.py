"""`softpool-bench gpu-check`: every CUDA check of the operator in one run, with one report file.

On a machine with a GPU (and the CUDA kernels built), it runs, within a time budget of about
8 minutes:

1. every test marked ``cuda`` (CUDA against CPU for all dtypes and layouts, determinism, gradcheck,
   torch.compile), with pytest;
2. the operator benchmark on CUDA (``softpool-bench op device=cuda``: SoftPool against
   max_pool3d/avg_pool3d and the compiled composite, with peak memory);
3. one SlowFast-R50 training step, SoftPool against the original pools
   (``softpool-bench models cases=slowfast_r50 device=cuda``);

and writes their outputs, the device and the build into one Markdown report. On a machine without
a GPU it says so in one line and exits 1: it is a measurement to run where a GPU is, not a test.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from softpool_video import cli

# Seconds each step may take; together they stay under 8 minutes.
STEP_BUDGET_S = {"tests": 240, "operator": 150, "slowfast": 70}
REPO_TESTS = Path(__file__).resolve().parents[2] / "tests"


def _command() -> cli.Command:
    return cli.Command(
        prog="softpool-bench gpu-check",
        summary=__doc__.splitlines()[0],
        options={
            "device": cli.Option("cuda", cli.device(), "the GPU to check: cuda or cuda:N"),
            "report": cli.Option(Path("bench_results/gpu_check.md"), _report_path, "the report file"),
            "repeats": cli.Option(15, cli.integer(1), "interleaved timing rounds of the operator benchmark"),
        },
    )


def _report_path(name: str, text: str) -> Path:
    return Path(cli.path((".md",), optional=False)(name, text))


def main(argv: list[str] | None = None) -> int:
    return cli.run(_command(), _main, argv)


def unavailable_reason(device: torch.device) -> str | None:
    """Why the CUDA checks cannot run here (one line), or None when they can."""
    from softpool_video.ops import extension_info

    if device.type != "cuda":
        return f"device must be a CUDA device, got {device}"
    if not torch.cuda.is_available():
        return "no CUDA device on this machine (torch.cuda.is_available() is False); nothing was run"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"device {device} does not exist ({torch.cuda.device_count()} CUDA devices); nothing was run"
    info = extension_info()
    if not info["cuda"]:
        rebuild = info.get("rebuild_command", "")
        return f"softpool_video._C has no CUDA kernels; rebuild it first: {rebuild}".strip()
    return None


def _run_step(title: str, command: list[str], budget_s: int, env_device: str) -> tuple[str, bool]:
    """Runs one step in a fresh interpreter; returns its Markdown section and whether it passed."""
    import os

    env = dict(os.environ, CUDA_VISIBLE_DEVICES=env_device) if env_device else None
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget_s, env=env)
        output, passed = done.stdout + done.stderr, done.returncode == 0
        status = f"exit status {done.returncode}"
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else ""
        passed, status = False, f"stopped after its budget of {budget_s} s"
    seconds = time.perf_counter() - start
    mark = "passed" if passed else "FAILED"
    section = (
        f"## {title}: {mark} ({status}, {seconds:.0f} s)\n\n`{' '.join(command)}`\n\n"
        f"```\n{output.strip()}\n```\n"
    )
    print(f"{title}: {mark} ({status}, {seconds:.0f} s)", flush=True)
    return section, passed


def _main(args: cli.Arguments) -> int:
    device = torch.device(args.device)
    reason = unavailable_reason(device)
    if reason is not None:
        cli.print_error("softpool-bench gpu-check", reason)
        return cli.EXIT_FAILURE
    from softpool_video.ops import extension_info

    # each step sees the chosen GPU as cuda:0
    visible = str(device.index) if device.index is not None else ""
    python = sys.executable
    steps = [
        (
            "CUDA tests",
            [python, "-m", "pytest", str(REPO_TESTS / "ops"), "-m", "cuda", "-q", "-p", "no:cacheprovider"],
            STEP_BUDGET_S["tests"],
        ),
        (
            "Operator benchmark (CUDA)",
            [
                python,
                "-m",
                "softpool_video.bench.operator",
                "device=cuda",
                f"repeats={args.repeats}",
                f"json={args.report.with_suffix('.operator.json')}",
            ],
            STEP_BUDGET_S["operator"],
        ),
        (
            "SlowFast-R50 training step (CUDA)",
            [
                python,
                "-m",
                "softpool_video.bench.models",
                "cases=slowfast_r50",
                "device=cuda",
                "warmup=1",
                "repetitions=3",
            ],
            STEP_BUDGET_S["slowfast"],
        ),
    ]
    if not REPO_TESTS.is_dir():
        steps = steps[1:]  # an installed package has no test suite
    properties = torch.cuda.get_device_properties(device)
    header = (
        "# softpool_video gpu-check\n\n"
        f"- device: {properties.name} (sm_{properties.major}{properties.minor}, "
        f"{properties.total_memory / 2**30:.0f} GiB)\n"
        f"- torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}\n"
        f"- extension: {extension_info()}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n"
    )
    sections, all_passed = [header], True
    for title, command, budget in steps:
        section, passed = _run_step(title, command, budget, visible)
        sections.append(section)
        all_passed = all_passed and passed
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(sections))
    print(f"wrote {args.report}")
    return cli.EXIT_OK if all_passed else cli.EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
