"""`softpool-bench op`: SoftPool3d against max/avg pooling and the usual composites, side by side.

For every shape, all methods are timed in the same run with interleaved repetitions (each round
runs every method once, in a rotating order), and the median is reported, so the ratios are
measured under the same machine conditions. Memory: on CUDA the peak extra allocation of a
forward+backward step; on CPU (no allocator statistics) the bytes held between forward and backward
(output + tensors saved for backward), which is what limits batch size in training.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import softpool_video as sv
from softpool_video import cli


@dataclass(frozen=True)
class PoolShape:
    name: str
    shape: tuple[int, ...]
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]
    padding: tuple[int, int, int]
    channels_last: bool = False  # the input is channels_last_3d
    adaptive: bool = False  # adaptive pooling to 1x1x1 (the kernel is then the whole input)


SHAPES = [
    PoolShape("slow stem", (2, 64, 8, 112, 112), (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    PoolShape("slow stem cl", (2, 64, 8, 112, 112), (1, 3, 3), (1, 2, 2), (0, 1, 1), channels_last=True),
    PoolShape("fast stem", (2, 8, 32, 112, 112), (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    PoolShape("fast stem cl", (2, 8, 32, 112, 112), (1, 3, 3), (1, 2, 2), (0, 1, 1), channels_last=True),
    PoolShape("k=s=2", (2, 64, 16, 56, 56), (2, 2, 2), (2, 2, 2), (0, 0, 0)),
    PoolShape("head", (2, 2048, 8, 7, 7), (8, 7, 7), (1, 1, 1), (0, 0, 0)),
    PoolShape("head adaptive", (2, 2048, 8, 7, 7), (8, 7, 7), (1, 1, 1), (0, 0, 0), adaptive=True),
]
# "<name> cl" is compared with "<name>" (same shape, contiguous) in the summary.
CHANNELS_LAST_SUFFIX = " cl"


def composite_soft_pool(x, kernel, stride, padding):
    """SoftPool as two average pools, the common pure-PyTorch formulation: avg(x e^x) / avg(e^x).

    Not max-subtracted (overflows above x ~ 88 in float32) and it counts padding as e^0 = 1 weights
    unless count_include_pad=False, which is used here so it computes the same operator.
    """
    weights = torch.exp(x)
    numerator = F.avg_pool3d(x * weights, kernel, stride, padding, count_include_pad=False)
    return numerator / F.avg_pool3d(weights, kernel, stride, padding, count_include_pad=False)


def original_cpu_formula(x, kernel, stride, padding):
    """The original SoftPool CPU fallback as its users describe it: exponentials summed over the
    channel axis, used as one weight map shared by all channels, outputs clamped at zero.
    Shown for reference only -- it is a different operator, and it ignores padding."""
    weights = torch.exp(x).sum(dim=1, keepdim=True)
    numerator = F.avg_pool3d(x * weights, kernel, stride)
    return (numerator / F.avg_pool3d(weights, kernel, stride)).clamp(min=0)


def _methods(compiled_composite) -> dict[str, Callable]:
    """name -> fn(x, shape); adaptive shapes pool to 1x1x1 with the adaptive functions."""

    def pick(adaptive_fn, fn):
        return lambda x, s: adaptive_fn(x) if s.adaptive else fn(x, s)

    return {
        "softpool3d": pick(
            lambda x: sv.adaptive_soft_pool3d(x, 1),
            lambda x, s: sv.soft_pool3d(x, s.kernel, s.stride, s.padding),
        ),
        "max_pool3d": pick(
            lambda x: F.adaptive_max_pool3d(x, 1), lambda x, s: F.max_pool3d(x, s.kernel, s.stride, s.padding)
        ),
        "avg_pool3d": pick(
            lambda x: F.adaptive_avg_pool3d(x, 1), lambda x, s: F.avg_pool3d(x, s.kernel, s.stride, s.padding)
        ),
        "composite": lambda x, s: composite_soft_pool(x, s.kernel, s.stride, s.padding),
        "composite_compiled": lambda x, s: compiled_composite(x, s.kernel, s.stride, s.padding),
        "original_cpu": lambda x, s: original_cpu_formula(x, s.kernel, s.stride, s.padding),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _held_bytes(fn, x, spec) -> int:
    """Bytes of the output plus the distinct storages autograd saves for backward."""
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x, spec)
    storages.setdefault(y.untyped_storage().data_ptr(), y.untyped_storage().nbytes())
    storages.pop(x.untyped_storage().data_ptr(), None)  # the input exists anyway
    return sum(storages.values())


def _peak_extra_cuda(fn, x, spec, grad) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    y = fn(x, spec)
    y.backward(grad)
    torch.cuda.synchronize()
    x.grad = None
    return torch.cuda.max_memory_allocated() - base


def benchmark_shape(spec: PoolShape, methods: dict[str, Callable], device, dtype, repeats: int) -> dict:
    x = torch.randn(spec.shape, device=device, dtype=dtype)
    if spec.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    xg = x.clone().requires_grad_()
    grads = {}
    for name, fn in methods.items():  # warm up (and compile) every method once
        with torch.no_grad():
            fn(x, spec)
        y = fn(xg, spec)
        grads[name] = torch.ones_like(y)
        y.backward(grads[name])
        xg.grad = None
    _sync(device)

    def forward(name):
        with torch.no_grad():
            methods[name](x, spec)

    def forward_backward(name):
        methods[name](xg, spec).backward(grads[name])
        xg.grad = None

    timings = {name: {"forward": [], "forward_backward": []} for name in methods}
    names = list(methods)
    for round_index in range(repeats):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            for phase, step in (("forward", forward), ("forward_backward", forward_backward)):
                _sync(device)
                start = time.perf_counter()
                step(name)
                _sync(device)
                timings[name][phase].append((time.perf_counter() - start) * 1e3)
    result = {}
    for name in names:
        memory = (
            _peak_extra_cuda(methods[name], xg, spec, grads[name])
            if device.type == "cuda"
            else _held_bytes(methods[name], xg, spec)
        )
        result[name] = {
            "forward_ms": statistics.median(timings[name]["forward"]),
            "forward_backward_ms": statistics.median(timings[name]["forward_backward"]),
            "memory_mb": memory / 2**20,
        }
    return result


def format_table(results: dict, device_type: str) -> str:
    """One table per shape: times, ratios to max_pool3d (adaptive_max_pool3d for adaptive shapes)."""
    memory_label = "peak extra MB" if device_type == "cuda" else "held MB"
    lines = []
    for shape_name, methods in results.items():
        base = methods["max_pool3d"]
        soft = methods["softpool3d"]
        lines.append(f"\n{shape_name}")
        lines.append(
            f"  {'method':<20}{'fwd ms':>10}{'fwd+bwd ms':>12}{'fwd/max':>9}{'f+b/max':>9}"
            f"{'soft f+b speedup':>18}{memory_label:>15}"
        )
        for name, m in methods.items():
            speedup = m["forward_backward_ms"] / soft["forward_backward_ms"]
            lines.append(
                f"  {name:<20}{m['forward_ms']:>10.2f}{m['forward_backward_ms']:>12.2f}"
                f"{m['forward_ms'] / base['forward_ms']:>9.2f}"
                f"{m['forward_backward_ms'] / base['forward_backward_ms']:>9.2f}"
                f"{speedup:>17.2f}x{m['memory_mb']:>15.1f}"
            )
    return "\n".join(lines)


def format_layout_summary(results: dict) -> str:
    """SoftPool on channels_last_3d inputs relative to the same shape contiguous (target <= 1.25)."""
    lines = []
    for name, methods in results.items():
        if not name.endswith(CHANNELS_LAST_SUFFIX) or name[: -len(CHANNELS_LAST_SUFFIX)] not in results:
            continue
        soft, base = methods["softpool3d"], results[name[: -len(CHANNELS_LAST_SUFFIX)]]["softpool3d"]
        lines.append(
            f"  {name:<20} softpool3d channels_last / contiguous: forward "
            f"{soft['forward_ms'] / base['forward_ms']:.2f}, forward+backward "
            f"{soft['forward_backward_ms'] / base['forward_backward_ms']:.2f}"
        )
    return (
        "\n".join(["\nchannels_last_3d vs contiguous (separate runs of one process)", *lines])
        if lines
        else ""
    )


def _command() -> cli.Command:
    names = [s.name for s in SHAPES]
    return cli.Command(
        prog="softpool-bench op",
        summary=__doc__.splitlines()[0],
        options={
            "device": cli.Option("auto", cli.device(), "auto (the GPU when present), cpu, cuda or cuda:N"),
            "dtype": cli.Option(
                "float32", cli.choice(("float32", "float16", "bfloat16", "float64")), "tensor dtype"
            ),
            "repeats": cli.Option(7, cli.integer(1), "interleaved timing rounds per shape"),
            "shapes": cli.Option(None, cli.listing(choices=names), f"subset of: {', '.join(names)} [all]"),
            "threads": cli.Option(None, cli.integer(1, optional=True), "torch CPU threads [torch's]"),
            "json": cli.Option(Path("bench_results/operator.json"), _json_path, "where the results go"),
        },
    )


def _json_path(name: str, text: str) -> Path:
    return Path(cli.path((".json",), optional=False)(name, text))


def main(argv: list[str] | None = None) -> int:
    return cli.run(_command(), _main, argv)


def _main(args: cli.Arguments) -> int:
    from softpool_video.devices import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    shapes = [s for s in SHAPES if args.shapes is None or s.name in args.shapes]
    # one specialised graph per shape and layout: more than dynamo's default of 8, past which the
    # "compiled" composite would silently run eager
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * len(SHAPES))
    methods = _methods(torch.compile(composite_soft_pool, dynamic=False))
    print(
        f"softpool-bench op: device={device} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"repeats={args.repeats} (median of interleaved rounds)"
    )
    results = {}
    for spec in shapes:
        results[spec.name] = benchmark_shape(spec, methods, device, dtype, args.repeats)
        print(format_table({spec.name: results[spec.name]}, device.type), flush=True)
    summary = format_layout_summary(results)
    if summary:
        print(summary)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "shapes": {s.name: s.__dict__ for s in shapes},
        "note": "adaptive shapes: max_pool3d/avg_pool3d are adaptive_max_pool3d/adaptive_avg_pool3d to 1x1x1",
        "results": results,
    }
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
