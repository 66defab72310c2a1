"""`softpool-bench op`: SoftPool3d against max/avg pooling and the usual composites, side by side.

For every shape, all methods are timed in the same run with interleaved repetitions (each round
runs every method once, in a rotating order), and the median is reported, so the ratios are
measured under the same machine conditions. Every timed call starts from the same cold cache (a
buffer larger than the last-level cache is written first): otherwise a method's time depends on
which method ran before it, since the rotation keeps their cyclic order (on CPU, a method that
follows a composite finds the input evicted; the next one finds it cached by its predecessor).
On a channels_last shape SoftPool runs a second time per round on a contiguous copy of the same
input ("softpool3d_contiguous"), which gives the layout ratio printed after the tables.

Memory, from separate untimed calls after the timed rounds, per shape and method:

- held: the bytes kept between forward and backward (output + tensors saved for backward), which is
  what limits batch size in training;
- peak: the most extra memory in use at any moment of one forward+backward step, above what
  existed before it. On CUDA the caching allocator's peak statistic. On CPU (no allocator peak) the
  process's resident-set high-water mark (Linux: reset through /proc/self/clear_refs, read as
  VmHWM), after returning freed heap pages to the system, so every page written during the step
  counts once -- whichever thread allocated it and whether or not it came from torch's allocator
  (a C++ std::vector in an extension kernel counts too). Memory allocated but never written is not
  counted, and the figure is good to about a megabyte;
- temporaries: peak - (held + the returned input gradient), what the step needed beyond the tensors
  that outlive it (negative where a backward frees saved tensors before it allocates the input
  gradient, as torch.compile's backward does). On CPU, blocks freed during the step that the heap
  keeps and does not reuse count as well, so it is an upper bound that depends on the heap's
  history: exact (to 0.1 MB, run after run) for SoftPool, max and avg pooling, which the tests check
  for max and avg, but up to ~25% high and varying between runs for the composites, whose many
  input-sized temporaries fragment the heap.

After each shape's table a line says whether SoftPool's temporaries stay within O(output), taken as
SOFTPOOL_TEMPORARY_BUFFERS float32 output-sized buffers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
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
from softpool_video.ops import cpu_result_pool


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


@dataclass(frozen=True)
class StepMemory:
    """Bytes of one forward+backward step; ``peak`` is None where it cannot be measured."""

    held: int  # output + saved for backward, between forward and backward
    grad_input: int  # the gradient the step returns (x.grad)
    peak: int | None  # the most extra memory in use at any moment of the step

    @property
    def temporaries(self) -> int | None:
        """What the step needed beyond the tensors that outlive it (or live until backward)."""
        return None if self.peak is None else self.peak - self.held - self.grad_input


# Resolution of the CPU peak: the kernel's resident-set counters are per-CPU approximations (a few
# hundred KB) and Python's own small allocations during the step land in it too.
CPU_PEAK_RESOLUTION_BYTES = 2**20


def _proc_status_bytes(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB$", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(match.group(1)) * 1024


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc.malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _glibc_malloc_trim() if sys.platform == "linux" else None


def cpu_peak_unavailable_reason() -> str | None:
    """None where :func:`peak_extra_cpu` can measure, else why not (one phrase)."""
    if sys.platform != "linux":
        return "the CPU peak needs Linux (/proc/self/clear_refs)"
    if _MALLOC_TRIM is None:
        return "the CPU peak needs glibc (malloc_trim)"
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _proc_status_bytes("VmHWM")
    except OSError as error:
        return f"the CPU peak needs a writable /proc/self/clear_refs ({error.strerror or error})"
    return None


def peak_extra_cpu(step: Callable[[], object]) -> int | None:
    """Peak resident bytes above the start of ``step()``, all threads and allocators included.

    Freed heap memory is first handed back to the system (glibc ``malloc_trim``) and the high-water
    mark reset to the current resident set (``/proc/self/clear_refs`` = 5), so every page the step
    writes is new and counted once; pages freed during the step (munmap, trimming) still left their
    mark. Whatever ``step`` frees that existed before it lowers the figure: free it before the call.
    None where this cannot be measured.
    """
    if cpu_peak_unavailable_reason() is not None:
        return None
    _MALLOC_TRIM(0)
    Path("/proc/self/clear_refs").write_text("5")
    start = _proc_status_bytes("VmRSS")
    step()
    return _proc_status_bytes("VmHWM") - start


def _peak_extra_cuda(step: Callable[[], object]) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def step_memory(fn, x: torch.Tensor, spec, grad: torch.Tensor, calls: int = 2) -> StepMemory:
    """Held bytes, returned gradient and peak of one forward+backward step of ``fn`` (untimed).

    ``x`` must require grad; its ``.grad`` is cleared before each call and after. The peak is the
    smallest of ``calls`` calls: a first call in a process also pages in code and grows thread
    stacks.
    """
    held = _held_bytes(fn, x, spec)
    peaks, grad_input = [], 0
    # pooled blocks are resident already, so the peak would not count them; the pool itself holds
    # them between steps, so the fresh figure is what the step needs
    with cpu_result_pool(False):
        for _ in range(calls):
            x.grad = None  # before the measurement: freeing it inside would lower the peak
            step = lambda: fn(x, spec).backward(grad)  # noqa: E731
            peaks.append(_peak_extra_cuda(step) if x.device.type == "cuda" else peak_extra_cpu(step))
            grad_input = x.grad.untyped_storage().nbytes()
        x.grad = None
    return StepMemory(held=held, grad_input=grad_input, peak=None if None in peaks else min(peaks))


# Written before every timed call: twice the last-level cache of the machines we run on (the CI
# machine's EPYC has a 32 MB L3; an H200's L2 is 60 MB).
CACHE_FLUSH_BYTES = {"cpu": 64 * 2**20, "cuda": 128 * 2**20}


# On a channels_last shape SoftPool also runs on a contiguous copy of the same input, in the same
# interleaved rounds, so the layout ratio is measured side by side rather than across two shapes' runs.
CONTIGUOUS_REFERENCE = "softpool3d_contiguous"


def benchmark_shape(spec: PoolShape, methods: dict[str, Callable], device, dtype, repeats: int) -> dict:
    x = torch.randn(spec.shape, device=device, dtype=dtype)
    inputs = {}  # name -> (input for the forward, input that requires grad)
    if spec.channels_last and "softpool3d" in methods:
        methods = {**methods, CONTIGUOUS_REFERENCE: methods["softpool3d"]}
        inputs[CONTIGUOUS_REFERENCE] = (x, x.clone().requires_grad_())
    if spec.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    xg = x.clone().requires_grad_()
    inputs = {name: inputs.get(name, (x, xg)) for name in methods}
    grads = {}
    for name, fn in methods.items():  # warm up (and compile) every method once
        plain, with_grad = inputs[name]
        with torch.no_grad():
            fn(plain, spec)
        y = fn(with_grad, spec)
        grads[name] = torch.ones_like(y)
        y.backward(grads[name])
        with_grad.grad = None
    _sync(device)

    def forward(name):
        with torch.no_grad():
            methods[name](inputs[name][0], spec)

    def forward_backward(name):
        with_grad = inputs[name][1]
        methods[name](with_grad, spec).backward(grads[name])
        with_grad.grad = None

    flush_bytes = CACHE_FLUSH_BYTES.get(torch.device(device).type, 128 * 2**20)
    cache_flush = torch.empty(flush_bytes // 4, device=device)
    timings = {name: {"forward": [], "forward_backward": []} for name in methods}
    names = list(methods)
    for round_index in range(repeats):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            for phase, step in (("forward", forward), ("forward_backward", forward_backward)):
                cache_flush.fill_(float(round_index))  # evict the input and every method's leftovers
                _sync(device)
                start = time.perf_counter()
                step(name)
                _sync(device)
                timings[name][phase].append((time.perf_counter() - start) * 1e3)
    result = {}
    for name in names:  # memory: separate untimed calls
        memory = step_memory(methods[name], inputs[name][1], spec, grads[name])
        result[name] = {
            "forward_ms": statistics.median(timings[name]["forward"]),
            "forward_backward_ms": statistics.median(timings[name]["forward_backward"]),
            "held_mb": memory.held / 2**20,
            "grad_input_mb": memory.grad_input / 2**20,
            "peak_mb": None if memory.peak is None else memory.peak / 2**20,
            "temporaries_mb": None if memory.temporaries is None else memory.temporaries / 2**20,
            # SoftPool's own bound is stated in units of float32 output-sized buffers
            "output_float_mb": grads[name].numel() * 4 / 2**20,
        }
    return result


def _mb(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.1f}"


def format_table(results: dict, device_type: str) -> str:
    """One table per shape: times, ratios to max_pool3d (adaptive_max_pool3d for adaptive shapes),
    memory, and a line on SoftPool's temporaries."""
    lines = []
    for shape_name, methods in results.items():
        base = methods["max_pool3d"]
        soft = methods["softpool3d"]
        lines.append(f"\n{shape_name}")
        lines.append(
            f"  {'method':<22}{'fwd ms':>10}{'fwd+bwd ms':>12}{'fwd/max':>9}{'f+b/max':>9}"
            f"{'soft f+b speedup':>18}{'held MB':>9}{'peak MB':>9}{'temporaries MB':>16}"
        )
        for name, m in methods.items():
            speedup = m["forward_backward_ms"] / soft["forward_backward_ms"]
            lines.append(
                f"  {name:<22}{m['forward_ms']:>10.2f}{m['forward_backward_ms']:>12.2f}"
                f"{m['forward_ms'] / base['forward_ms']:>9.2f}"
                f"{m['forward_backward_ms'] / base['forward_backward_ms']:>9.2f}"
                f"{speedup:>17.2f}x{m['held_mb']:>9.1f}{_mb(m['peak_mb'], 9)}{_mb(m['temporaries_mb'], 16)}"
            )
        lines.append(softpool_temporaries_line(soft, device_type))
    return "\n".join(lines)


# SoftPool's memory target: no temporaries beyond O(output) -- taken here as at most as many float32
# output-sized buffers as it keeps for backward itself (the output and two float statistics).
SOFTPOOL_TEMPORARY_BUFFERS = 3


def softpool_temporaries_line(soft: dict, device_type: str) -> str:
    """Whether SoftPool's peak exceeds held + returned gradient by more than O(output)."""
    if soft["peak_mb"] is None:
        reason = cpu_peak_unavailable_reason() or "not measured"
        return f"  softpool3d temporaries: peak unmeasured ({reason})"
    temporaries, buffer = soft["temporaries_mb"], soft["output_float_mb"]
    resolution = CPU_PEAK_RESOLUTION_BYTES / 2**20 if device_type == "cpu" else 0.0
    within = temporaries <= max(SOFTPOOL_TEMPORARY_BUFFERS * buffer, resolution)
    verdict = "within O(output)" if within else "MORE than O(output)"
    if abs(temporaries) <= resolution:  # a ratio of noise would say nothing
        size = f"below the {resolution:.0f} MB resolution"
    else:
        size = f"{temporaries / buffer:.1f}x a float output ({_size(buffer)})"
    return (
        f"  softpool3d temporaries: peak {soft['peak_mb']:.1f} - (held {soft['held_mb']:.1f}"
        f" + grad_input {soft['grad_input_mb']:.1f}) = {temporaries:.1f} MB, {size}: {verdict}"
        f" (bound: {SOFTPOOL_TEMPORARY_BUFFERS} float outputs, {_size(SOFTPOOL_TEMPORARY_BUFFERS * buffer)})"
    )


def _size(mb: float) -> str:
    return f"{mb:.1f} MB" if mb >= 1 else f"{mb * 1024:.0f} KB"


def format_layout_summary(results: dict) -> str:
    """SoftPool on channels_last_3d inputs relative to the same input contiguous, both timed in the
    same interleaved rounds (targets: within 1.25x at C=8, no slower at C>=64)."""
    lines = []
    for name, methods in results.items():
        if CONTIGUOUS_REFERENCE not in methods:
            continue
        soft, base = methods["softpool3d"], methods[CONTIGUOUS_REFERENCE]
        lines.append(
            f"  {name:<20} softpool3d channels_last / contiguous: forward "
            f"{soft['forward_ms'] / base['forward_ms']:.2f}, forward+backward "
            f"{soft['forward_backward_ms'] / base['forward_backward_ms']:.2f}"
        )
    if not lines:
        return ""
    return "\n".join(["\nchannels_last_3d vs contiguous (interleaved in the same rounds)", *lines])


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
        "peak_method": "cuda allocator peak"
        if device.type == "cuda"
        else (cpu_peak_unavailable_reason() or "resident-set high-water mark (VmHWM), heap trimmed first"),
        "results": results,
    }
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
