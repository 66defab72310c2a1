"""``softpool-demo``: the toolkit's main job in one command, on a CPU, in minutes.

1. generate the synthetic motion dataset at its default root ``data/synthetic`` (if it is not there
   yet; another ``data.root`` is generated only with ``data.generate=true``);
2. train the small CPU model (``r2plus1d_tiny``) with SoftPool (``conf/experiment/demo.yaml``);
3. evaluate the best checkpoint on the test split with multi-view testing (clips x crops);
4. print the results table and the paths of the plots (confusion matrix, training curves).

``softpool-demo experiment=pooling_comparison`` trains the same model with soft, max and avg pooling
(same seed, same budget), evaluates each and writes a comparison table (accuracy, step time).

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
  softpool-demo experiment=pooling_comparison

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


def run_pooling_comparison(cfg: DictConfig, overrides: Sequence[str]) -> int:
    """Train and test the same model once per pooling kind in ``comparison.poolings``."""
    from softpool_video.train.config import compose_config

    total_start = time.perf_counter()
    out_dir = Path(str(cfg.comparison.output_dir))
    rows, table_rows, views = [], [], ""
    for pool in cfg.comparison.poolings:
        _say(f"\n=== pooling={pool} ===")
        run_cfg = compose_config("train", [*overrides, f"pooling={pool}", f"run_dir={out_dir / str(pool)}"])
        outcome = _train_and_test(run_cfg)
        result = outcome["eval"].result
        views = _views(outcome["eval"].settings)
        row = {
            "pooling": pool,
            "video_top1": round(result.video_top1, 2),
            "video_top5": round(result.video_top5, 2),
            "clip_top1": round(result.view_top1, 2),
            "mean_class_acc": round(result.mean_class_accuracy, 2),
            "step_ms": round(outcome["step_ms"], 1),
            "compute_ms_per_step": round(outcome["compute_ms"], 1),
            "train_seconds": round(outcome["train_seconds"], 1),
            "run_dir": str(outcome["run_dir"]),
        }
        rows.append(row)
        table_rows.append(
            (
                pool,
                f"{row['video_top1']:.1f}%",
                f"{row['video_top5']:.1f}%",
                f"{row['clip_top1']:.1f}%",
                f"{row['step_ms']:.0f}",
                f"{row['compute_ms_per_step']:.0f}",
                _minutes(row["train_seconds"]),
            )
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "comparison.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = [
        "pooling",
        "video top-1",
        "video top-5",
        "clip top-1",
        "ms/step",
        "compute ms/step",
        "train time",
    ]
    table = _table(header, table_rows)
    setting = (
        f"{cfg.model.name} on the synthetic test split, seed {cfg.seed}, {cfg.trainer.epochs} epochs each, "
        f"{views} per test video"
    )
    (out_dir / "comparison.md").write_text(f"# Pooling comparison\n\n{setting}\n\n{table}\n")
    _say(f"\nPooling comparison: {setting}")
    _say(table)
    total = _minutes(time.perf_counter() - total_start)
    _say(f"\ntables: {out_dir / 'comparison.md'}, {csv_path} (total {total})")
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
