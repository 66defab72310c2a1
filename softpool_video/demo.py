"""``softpool-demo``: the toolkit's main job in one command, on a CPU, in minutes.

1. generate the synthetic motion dataset at its default root ``data/synthetic`` (if it is not there
   yet; another ``data.root`` is generated only with ``data.generate=true``);
2. train the small CPU model (``r2plus1d_tiny``) with SoftPool (``conf/experiment/demo.yaml``);
3. evaluate the best checkpoint on the test split with multi-view testing (clips x crops);
4. print the results table and the paths of the plots (confusion matrix, training curves).

``softpool-demo experiment=pooling_comparison comparison.seeds=N`` trains the same model with every
kind of ``comparison.poolings`` (soft, soft with a learned temperature, max, avg, the library's own)
and N seeds each (the same seeds, data and budget for every kind), evaluates each and writes a table
of mean ± std, the paired per-seed differences to the first kind with a 95% confidence interval,
and a plot (``train/comparison.py``).

Any other argument is a Hydra override of ``conf/train.yaml``, e.g. ``softpool-demo trainer.epochs=4``.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

__all__ = ["main", "run_demo", "run_pooling_comparison"]

PROG = "softpool-demo"

USAGE = """usage: softpool-demo [experiment=demo|pooling_comparison] [KEY=VALUE ...]

Generates the synthetic dataset if needed (at data/synthetic; elsewhere with data.generate=true),
trains the small CPU model with SoftPool, evaluates it with multi-view testing and prints the
results. Overrides change conf/train.yaml keys, e.g.
  softpool-demo trainer.epochs=4
  softpool-demo data.root=/tmp/synthetic data.generate=true
  softpool-demo experiment=pooling_comparison comparison.seeds=3 trainer.epochs=10

--help, -h shows this help, --version the version.

exit status: 0 done, 1 the run failed, 2 a bad argument or configuration (nothing written), 130 Ctrl-C
"""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _minutes(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s"


def _train_and_test(cfg: DictConfig) -> dict[str, Any]:
    """Train with ``cfg``, test ``eval.test_checkpoint`` on the test split; returns what the tables need."""
    from softpool_video.train.evaluate import evaluate_checkpoint, test_config_after_training
    from softpool_video.train.plots import plot_training_curves
    from softpool_video.train.trainer import train

    start = time.perf_counter()
    result = train(cfg)
    train_seconds = time.perf_counter() - start
    if result.stopped_by:
        raise KeyboardInterrupt(f"training stopped by {result.stopped_by}")
    checkpoint = result.checkpoint(str(cfg.eval.get("test_checkpoint", "last")))  # never the other one
    eval_cfg = test_config_after_training(cfg, checkpoint, result.run_dir / "eval_test")
    summary = evaluate_checkpoint(eval_cfg)
    curves = plot_training_curves(result.run_dir / "metrics.csv", result.run_dir / "training_curves.png")
    history = result.history
    steps = max(result.step, 1)
    compute = sum(row["epoch_time"] - row["data_time"] for row in history)
    return {
        "run_dir": result.run_dir,
        "checkpoint": checkpoint,
        "train": result,
        "eval": summary,
        "train_seconds": train_seconds,
        "step_ms": 1000.0 * sum(row["epoch_time"] for row in history) / steps,
        "compute_ms": 1000.0 * compute / steps,
        "curves": curves,
    }


def _views(settings: dict[str, Any]) -> str:
    """``"4 clips x 3 crops"`` from the settings of an evaluation."""
    return f"{settings['num_clips']} clips x {settings['num_crops']} crops"


def run_demo(cfg: DictConfig) -> int:
    """The demo proper (``experiment=demo``)."""
    total_start = time.perf_counter()
    outcome = _train_and_test(cfg)
    result = outcome["eval"].result
    total = time.perf_counter() - total_start
    test_views = _views(outcome["eval"].settings)
    rows = [
        ("model", f"{cfg.model.name}, pooling={cfg.pooling.pool} (where={cfg.pooling.where})"),
        ("test videos", f"{result.num_videos} ({test_views} = {result.num_views} views)"),
        ("video top-1", f"{result.video_top1:.1f}%"),
        ("video top-5", f"{result.video_top5:.1f}%"),
        ("clip top-1", f"{result.view_top1:.1f}%"),
        ("mean class accuracy", f"{result.mean_class_accuracy:.1f}%"),
        ("chance", f"{100.0 / result.video_scores.shape[1]:.1f}%"),
        ("epochs", f"{outcome['train'].epochs_completed} ({outcome['train'].step} steps)"),
        ("training time", _minutes(outcome["train_seconds"])),
        ("total time", _minutes(total)),
    ]
    _say()
    _say("SoftPool demo: results on the synthetic test split")
    _say(_table(["metric", "value"], rows))
    _say()
    _say("plots:")
    _say(f"  confusion matrix   {outcome['eval'].files.get('confusion_png')}")
    _say(f"  training curves    {outcome['curves']}")
    _say("files:")
    _say(f"  predictions        {outcome['eval'].files.get('predictions')}")
    _say(f"  summary            {outcome['eval'].files.get('summary')}")
    _say(f"  checkpoint         {outcome['checkpoint']}")
    _say(f"  run directory      {outcome['run_dir']}")
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _learned_temperatures_text(history: Sequence[dict[str, Any]]) -> str:
    """``"stem.3=0.84 pool=1.31"``: the last epoch's learned temperatures (means per layer), if any."""
    last = history[-1] if history else {}
    return " ".join(f"{k.split('/', 1)[1]}={v:.3g}" for k, v in last.items() if k.startswith("temperature/"))


def _comparison_plan(cfg: DictConfig, overrides: Sequence[str]) -> tuple[list[int], list[str], dict]:
    """Seeds, kinds and every run's config, composed before anything trains (a bad kind or seed count
    is then a one-line error with nothing written)."""
    from softpool_video.train.config import ConfigError, compose_config, validate_train_config

    seeds_value = cfg.comparison.get("seeds", 1)
    if isinstance(seeds_value, bool) or not isinstance(seeds_value, int) or seeds_value < 1:
        raise ConfigError(
            f"comparison.seeds={seeds_value!r} must be an integer >= 1 (seeds per pooling kind)"
        )
    kinds = [str(kind) for kind in cfg.comparison.poolings]
    if not kinds or len(set(kinds)) != len(kinds):
        raise ConfigError(f"comparison.poolings={kinds!r} must list distinct pooling configs (conf/pooling)")
    seeds = [int(cfg.seed) + i for i in range(seeds_value)]
    out_dir = Path(str(cfg.comparison.output_dir))
    configs = {}
    for kind in kinds:
        for seed in seeds:
            run_overrides = [
                *overrides,
                f"pooling={kind}",
                f"seed={seed}",
                f"run_dir={out_dir / kind / f'seed{seed}'}",
            ]
            try:
                run_cfg = compose_config("train", run_overrides)
            except Exception as error:  # noqa: BLE001 - Hydra's errors for an unknown pooling config
                raise ConfigError(
                    f"comparison.poolings: {kind!r} is not a pooling config ({error})"
                ) from None
            validate_train_config(run_cfg)
            configs[kind, seed] = run_cfg
    return seeds, kinds, configs


def run_pooling_comparison(cfg: DictConfig, overrides: Sequence[str]) -> int:
    """Train and test the same model with every pooling kind of ``comparison.poolings`` and
    ``comparison.seeds`` seeds each (the same seeds for every kind, the same data and budget); write
    the per-run table, the paired comparison to the first kind and a plot."""
    import json

    from softpool_video.train.comparison import paired_summary, plot_comparison, summary_table

    total_start = time.perf_counter()
    seeds, kinds, configs = _comparison_plan(cfg, overrides)
    out_dir = Path(str(cfg.comparison.output_dir))
    rows, views = [], ""
    top1: dict[str, dict[int, float]] = {kind: {} for kind in kinds}
    # seed-major: an interrupted comparison leaves whole pairs
    for seed in seeds:
        for kind in kinds:
            _say(f"\n=== pooling={kind} seed={seed} ===")
            outcome = _train_and_test(configs[kind, seed])
            result = outcome["eval"].result
            views = _views(outcome["eval"].settings)
            top1[kind][seed] = float(result.video_top1)
            rows.append(
                {
                    "pooling": kind,
                    "seed": seed,
                    "video_top1": round(result.video_top1, 2),
                    "video_top5": round(result.video_top5, 2),
                    "clip_top1": round(result.view_top1, 2),
                    "mean_class_acc": round(result.mean_class_accuracy, 2),
                    "step_ms": round(outcome["step_ms"], 1),
                    "compute_ms_per_step": round(outcome["compute_ms"], 1),
                    "train_seconds": round(outcome["train_seconds"], 1),
                    "learned_temperature": _learned_temperatures_text(outcome["train"].history),
                    "run_dir": str(outcome["run_dir"]),
                }
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "comparison.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    summaries = paired_summary(top1)
    header, summary_rows = summary_table(summaries)
    summary = _table(header, summary_rows)
    per_run = _table(
        ["pooling", "seed", "video top-1", "clip top-1", "ms/step", "train time", "learned T (last epoch)"],
        [
            (
                r["pooling"],
                r["seed"],
                f"{r['video_top1']:.1f}%",
                f"{r['clip_top1']:.1f}%",
                f"{r['step_ms']:.0f}",
                _minutes(r["train_seconds"]),
                r["learned_temperature"] or "-",
            )
            for r in rows
        ],
    )
    setting = (
        f"{cfg.model.name} on the synthetic test split, seeds {', '.join(map(str, seeds))} for every kind, "
        f"{cfg.trainer.epochs} epochs each, {views} per test video; video top-1 in %, Δ = kind minus "
        f"{kinds[0]} for the same seed, 95% CI from Student's t with {len(seeds) - 1} degrees of freedom"
    )
    plot = plot_comparison(
        summaries,
        out_dir / "comparison.png",
        f"{cfg.model.name}, {len(seeds)} seed(s), {cfg.trainer.epochs} epochs",
    )
    (out_dir / "comparison.md").write_text(
        f"# Pooling comparison\n\n{setting}\n\n{summary}\n\nEvery run:\n\n{per_run}\n"
    )
    (out_dir / "comparison.json").write_text(
        json.dumps(
            {
                "setting": setting,
                "seeds": seeds,
                "epochs": int(cfg.trainer.epochs),
                "summaries": [s.__dict__ for s in summaries],
                "runs": rows,
            },
            indent=2,
        )
    )
    _say(f"\nPooling comparison: {setting}")
    _say(summary)
    _say()
    _say(per_run)
    total = _minutes(time.perf_counter() - total_start)
    _say(f"\ntables: {out_dir / 'comparison.md'}, {csv_path}; plot: {plot} (total {total})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``softpool-demo [overrides]``: exit 0 done, 1 failed, 2 bad argument/config, 130 Ctrl-C."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from softpool_video import cli
    from softpool_video.train.cli import _guarded
    from softpool_video.train.config import compose_config

    args = list(sys.argv[1:] if argv is None else argv)
    if cli.wants_help(args):
        _say(USAGE)
        return cli.EXIT_OK
    if cli.wants_version(args):
        _say(cli.version_text(PROG))
        return cli.EXIT_OK
    try:
        flags, args = cli.check_overrides(PROG, args)
        if flags:
            raise cli.UsageError(
                f"{' '.join(flags)}: softpool-demo takes overrides only (softpool-train takes Hydra's flags)"
            )
        if not any(cli.override_key(a) == "experiment" for a in args):
            args.insert(0, "experiment=demo")
        cfg = compose_config("train", args)
    except cli.UsageError as error:
        cli.print_error(PROG, error)
        return cli.EXIT_USAGE
    except (HydraException, OmegaConfBaseException) as error:
        cli.print_error(PROG, cli.hydra_error_message(error))
        return cli.EXIT_USAGE

    def work() -> int:
        if cfg.get("comparison") is not None:
            return run_pooling_comparison(cfg, args)
        return run_demo(cfg)

    return _guarded(PROG, work)


if __name__ == "__main__":
    sys.exit(main())
