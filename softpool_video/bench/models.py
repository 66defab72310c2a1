"""`softpool-bench models`: training-step time of backbones, SoftPool vs the original pools.

For each model, two copies with identical weights are built: ``pooling="original"`` (the library's
max stem pools and avg head pools) and ``pooling="soft"`` (the same pools as SoftPool). One training
step (forward, cross-entropy, backward, SGD update) of each is timed alternately, in alternating
order, so that both see the same machine load; the table reports the medians and the median of the
per-repetition ratios soft / original (target: <= 1.05).

Both clocks are recorded: wall time, and the CPU time of this process. On a machine shared with other
jobs, wall time swings by +-20% between identical steps; CPU time (with ``threads=1``, so that no
thread spin-waits) is far steadier and is the number to compare there.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from softpool_video import cli
from softpool_video.devices import resolve_device

# name -> (model, extra build_model kwargs); the default run keeps to a few minutes on 2 CPU cores.
CASES = {
    "slowfast_r50": ("slowfast_r50", {}),
    "r2plus1d_18": ("r2plus1d_18", {}),
    "r2plus1d_18+stem_pool": ("r2plus1d_18", {"stem_pool": True}),
    "r2plus1d_tiny": ("r2plus1d_tiny", {}),
}
DEFAULT_CASES = ("slowfast_r50", "r2plus1d_18", "r2plus1d_18+stem_pool", "r2plus1d_tiny")


CLOCKS = ("wall", "cpu")


@dataclass
class StepTiming:
    """Median step times (ms) per clock, and the median of the per-repetition soft/original ratios."""

    case: str
    pools_swapped: int
    original_ms: dict[str, float]
    soft_ms: dict[str, float]
    ratio: dict[str, float]
    repetitions: int


def _command() -> cli.Command:
    cases = sorted(CASES)
    return cli.Command(
        prog="softpool-bench models",
        summary=__doc__.splitlines()[0],
        options={
            "cases": cli.Option(
                list(DEFAULT_CASES), cli.listing(choices=cases), f"models to time, from {', '.join(cases)}"
            ),
            "batch_size": cli.Option(4, cli.integer(1), "clips per step"),
            "num_frames": cli.Option(8, cli.integer(1), "T of the clip (SlowFast fast pathway)"),
            "crop_size": cli.Option(64, cli.integer(1), "H = W of the clip"),
            "num_classes": cli.Option(10, cli.integer(1), "classifier outputs"),
            "warmup": cli.Option(2, cli.integer(0), "untimed steps per variant"),
            "repetitions": cli.Option(7, cli.integer(1), "timed steps per variant"),
            "threads": cli.Option(None, cli.integer(1, optional=True), "torch.set_num_threads [torch's]"),
            "device": cli.Option("cpu", cli.device(), "auto, cpu, cuda or cuda:N"),
            "json": cli.Option(None, cli.path((".json",)), "also write the results to this JSON file"),
        },
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_step(model, x, y, device):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> dict[str, float]:
        _sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        _sync(device)
        return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}

    return step


def time_case(case: str, args: cli.Arguments) -> StepTiming:
    """Median step time of the original and the SoftPool variant of one case, interleaved."""
    from softpool_video.models import build_model, model_input

    name, kwargs = CASES[case]
    device = resolve_device(args.device)
    common = dict(num_frames=args.num_frames, crop_size=args.crop_size, **kwargs)
    original = build_model(name, args.num_classes, pooling="original", **common).to(device)
    report: list = []
    soft = build_model(name, args.num_classes, pooling="soft", swap_report=report, **common).to(device)
    soft.load_state_dict(original.state_dict())

    generator = torch.Generator().manual_seed(0)
    clip = torch.randn(
        args.batch_size, 3, args.num_frames, args.crop_size, args.crop_size, generator=generator
    )
    labels = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator)
    clip, labels = clip.to(device), labels.to(device)
    # SlowFast's [slow, fast] list is rebuilt per model: both see the same tensors.
    steps = {
        "original": _make_step(original, model_input(original, clip), labels, device),
        "soft": _make_step(soft, model_input(soft, clip), labels, device),
    }
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {variant: {clock: [] for clock in CLOCKS} for variant in steps}
    ratios: dict[str, list[float]] = {clock: [] for clock in CLOCKS}
    for rep in range(args.repetitions):
        # Alternate which variant goes first, so neither always runs on a warmer cache.
        order = ("original", "soft") if rep % 2 == 0 else ("soft", "original")
        measured = {variant: steps[variant]() for variant in order}
        for clock in CLOCKS:
            for variant, seconds in measured.items():
                times[variant][clock].append(seconds[clock])
            ratios[clock].append(measured["soft"][clock] / max(measured["original"][clock], 1e-9))

    def median_ms(variant: str) -> dict[str, float]:
        return {clock: 1e3 * statistics.median(times[variant][clock]) for clock in CLOCKS}

    return StepTiming(
        case=case,
        pools_swapped=sum(record.swapped for record in report),
        original_ms=median_ms("original"),
        soft_ms=median_ms("soft"),
        ratio={clock: statistics.median(ratios[clock]) for clock in CLOCKS},
        repetitions=args.repetitions,
    )


def format_table(results: list[StepTiming]) -> str:
    """One row per case: medians in ms (wall / CPU) and the soft/original ratios per clock."""
    header = (
        f"{'case':<22} {'pools':>5} {'original ms':>15} {'SoftPool ms':>15} "
        f"{'ratio wall':>10} {'ratio CPU':>10}"
    )
    lines = [header, f"{'':<22} {'':>5} {'wall / CPU':>15} {'wall / CPU':>15}", "-" * len(header)]
    for r in results:
        original = f"{r.original_ms['wall']:.0f} / {r.original_ms['cpu']:.0f}"
        soft = f"{r.soft_ms['wall']:.0f} / {r.soft_ms['cpu']:.0f}"
        flag = "" if min(r.ratio.values()) <= 1.05 else "  > 1.05"
        lines.append(
            f"{r.case:<22} {r.pools_swapped:>5} {original:>15} {soft:>15} "
            f"{r.ratio['wall']:>9.3f}x {r.ratio['cpu']:>9.3f}x{flag}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return cli.run(_command(), _main, argv)


def _main(args: cli.Arguments) -> int:
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting


def _run(args: cli.Arguments) -> int:
    torch.manual_seed(0)
    print(
        f"training step (forward + backward + SGD), batch {args.batch_size}, clip "
        f"{args.num_frames}x{args.crop_size}x{args.crop_size}, device {args.device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"{args.warmup} warm-up + {args.repetitions} interleaved timed steps per variant; medians\n")
    results = []
    for case in args.cases:
        results.append(time_case(case, args))
        table = format_table(results).splitlines()
        print("\n".join(table if len(results) == 1 else table[-1:]), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": args.values, "results": [asdict(r) for r in results]}, handle, indent=2)
    return 0
