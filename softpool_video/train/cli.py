"""``softpool-train`` and ``softpool-eval``: Hydra entry points over ``train`` and ``evaluate_checkpoint``.

Both take Hydra overrides (``key=value``, ``group=option``, ``--cfg job`` to print the config,
``-m`` for sweeps, ``--config-dir DIR`` for your own configs), ``--help`` and ``--version``, with the
rules of every softpool tool (``softpool_video.cli``: a key given twice is an error, ``device=X`` is
``trainer.accelerator=X``), and return an exit status:

- 0: done;
- 1: training/evaluation failed (out of memory, non-finite loss, unreadable checkpoint, too many
  unreadable videos): one line on stderr, the traceback in the run's ``train.log``/``eval.log``;
- 2: the command line or the configuration is wrong (unknown key or group option, bad value, missing
  file, no GPU for ``trainer=gpu``, ...): one line naming the key and what is accepted; no run folder
  and no file is written;
- 128 + signal number (143 for SIGTERM, 130 for SIGINT): stopped by a signal after writing ``last.pt``.

Under torchrun: ``torchrun --nproc_per_node=N -m softpool_video.train.cli trainer=ddp ...``
(or ``torchrun ... tools/train.py ...``); every process parses the same overrides, and one process
group serves the training and the test evaluation after it (``test=true``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from omegaconf import DictConfig

from softpool_video import cli
from softpool_video.cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["eval_main", "run_eval", "run_train", "train_main"]

EXIT_CONFIG = EXIT_USAGE
EXIT_FAILED = EXIT_FAILURE

log = logging.getLogger("softpool_video")


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _report(program: str, error: BaseException | str, usage: bool = False) -> None:
    """One line on stderr: from rank 0 only for configuration errors (every rank finds the same)."""
    if _rank() == 0:
        cli.print_error(program, error)
    elif not usage:
        cli.print_error(f"{program} [rank {_rank()}]", error)


def _runtime_failures() -> tuple[type[BaseException], ...]:
    from softpool_video.data import TooManyFailedVideosError
    from softpool_video.train.checkpoint import CheckpointError
    from softpool_video.train.trainer import TrainingError

    return (TrainingError, CheckpointError, TooManyFailedVideosError, cli.Failure, OSError)


def _guarded(program: str, work: Callable[[], int]) -> int:
    """Run ``work`` with the exit statuses of the module docstring."""
    from softpool_video.train.loggers import current_run_log

    try:
        return work()
    except UsageError as error:  # ConfigError included
        _report(program, error, usage=True)
        return EXIT_USAGE
    except _runtime_failures() as error:
        run_log = current_run_log()
        where = run_log.path if run_log is not None else None
        _report(program, f"{cli.error_summary(error)}" + (f" (details in {where})" if where else ""))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _report(program, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - a bug: one line here, the traceback in the run's log
        run_log = current_run_log()
        return cli.report_unexpected(program, error, run_log.path if run_log is not None else None)


def run_train(cfg: DictConfig) -> int:
    """Train (then, with ``test=true``, test) with a composed config; returns the exit status."""
    from softpool_video.train import distributed as dist_utils

    def work() -> int:
        from softpool_video.train.trainer import train

        trainer_cfg = cfg.get("trainer") if isinstance(cfg.get("trainer"), DictConfig) else {}
        with dist_utils.distributed_session(
            str(trainer_cfg.get("accelerator", "auto")), float(trainer_cfg.get("timeout_minutes", 30) or 30)
        ):
            result = train(cfg)
            if result.stopped_by:
                return 128 + int(signal.Signals[result.stopped_by])
            if cfg.get("test") and not cfg.trainer.get("fast_dev_run"):
                from softpool_video.train.evaluate import evaluate_checkpoint, test_config_after_training

                which = str(cfg.eval.get("test_checkpoint", "last"))
                checkpoint = result.checkpoint(which)  # never the other one
                log.info("test=true: testing %s (eval.test_checkpoint=%s)", checkpoint, which)
                out_dir = result.run_dir / f"eval_test_{checkpoint.stem}"
                evaluate_checkpoint(test_config_after_training(cfg, checkpoint, out_dir))
        return EXIT_OK

    return _guarded("softpool-train", work)


def run_eval(cfg: DictConfig) -> int:
    """Evaluate a checkpoint with a composed ``eval`` config; returns the exit status."""

    def work() -> int:
        from softpool_video.train.evaluate import evaluate_checkpoint

        evaluate_checkpoint(cfg)
        return EXIT_OK

    return _guarded("softpool-eval", work)


# ---------------------------------------------------------------------------------------------
# Command line

_DESCRIPTIONS = {
    "train": (
        "Train a video classifier. Settings are Hydra overrides of conf/train.yaml: pick a config of a\n"
        "group with GROUP=OPTION, change any key with KEY=VALUE (add a new one with +KEY=VALUE), e.g.\n"
        "  softpool-train data=ucf101 data.root=/data/UCF-101 model=r2plus1d_18 trainer.epochs=30\n"
        "  softpool-train experiment=demo device=cpu test=true\n"
        "  softpool-train resume=auto                     # continue the newest run of the same name"
    ),
    "eval": (
        "Evaluate a softpool-train checkpoint with multi-view testing (clips x crops). Settings are Hydra\n"
        "overrides of conf/eval.yaml, e.g.\n"
        "  softpool-eval checkpoint=runs/<name>/<time>/checkpoints/best.pt split=test\n"
        "  softpool-eval checkpoint=best.pt data=ucf101 data.root=/data/UCF-101 data.split=2\n"
        "  softpool-eval checkpoint=best.pt +data_overrides.root=/elsewhere +data_overrides.num_clips=10"
    ),
}


def usage(program: str, config_name: str) -> str:
    """``--help`` of softpool-train / softpool-eval: the groups and their options, the flags."""
    from softpool_video.train.config import conf_dir

    lines = [f"usage: {program} [KEY=VALUE | GROUP=OPTION ...] [--cfg job] [-m] [--config-dir DIR]", ""]
    lines += [_DESCRIPTIONS[config_name], "", "config groups (GROUP=OPTION):"]
    try:
        root = conf_dir()
        groups = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
        for group in groups:
            options = sorted(p.stem for p in (root / group).glob("*.yaml"))
            lines.append(f"  {group + '=':<12}{', '.join(options)}")
    except (OSError, FileNotFoundError) as error:
        lines.append(f"  (configs not found: {error})")
    lines += [
        "",
        "options:",
        "  device=X      the device: auto, cpu, gpu/cuda (same as trainer.accelerator=X)",
        "  --cfg job     print the composed configuration (add --resolve to resolve ${...}) and exit",
        "  -m            a sweep: one run per value of KEY=a,b,c",
        "  --config-dir DIR   also search DIR for configs (your own experiment/, data/ ...)",
        "  --hydra-help  Hydra's own help",
        "  --help, -h    this help;  --version  the version",
        "",
        "exit status: 0 done, 1 the run failed (details in its log), 2 a bad argument or configuration",
        "(nothing written), 128+N stopped by signal N after writing last.pt",
    ]
    return "\n".join(lines)


def _suggest_key(config_name: str, overrides: Sequence[str], key: str) -> str:
    """``" (did you mean trainer.epochs?)"`` for an unknown key, from the composed config's keys."""
    from omegaconf import OmegaConf

    from softpool_video.train.config import compose_config

    try:
        others = [o for o in overrides if cli.override_key(o) != key and "," not in o]
        cfg = compose_config(config_name, others)
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return ""
    hint = cli.did_you_mean(leaf, [str(k) for k in node])
    return hint.replace("did you mean ", f"did you mean {parent + '.' if parent else ''}")


def _group_options(group: str) -> list[str]:
    from softpool_video.train.config import group_choices

    try:
        return group_choices(group)
    except (OSError, FileNotFoundError):
        return []


def _hydra_main(
    program: str, config_name: str, task: Callable[[DictConfig], int], argv: Sequence[str] | None
) -> int:
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from softpool_video.train.config import conf_dir, config_dirs_in_argv, user_configs_first

    argv = list(sys.argv[1:] if argv is None else argv)
    if cli.wants_help(argv):
        print(usage(program, config_name))
        return EXIT_OK
    if cli.wants_version(argv):
        print(cli.version_text(program))
        return EXIT_OK
    try:
        flags, overrides = cli.check_overrides(program, argv)
    except UsageError as error:
        _report(program, error, usage=True)
        return EXIT_USAGE

    codes: list[int] = []

    @hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")
    def app(cfg: DictConfig) -> None:
        codes.append(task(cfg))

    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [program, *flags, *overrides]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises, and we print one line instead of its report
    try:
        # --config-dir DIR: DIR's configs come before the packaged ones (Hydra alone puts them after).
        with user_configs_first(config_dirs_in_argv(sys.argv[1:])):
            app()
    except (HydraException, OmegaConfBaseException) as error:
        message = cli.hydra_error_message(
            error, lambda key: _suggest_key(config_name, overrides, key), _group_options
        )
        _report(program, message, usage=True)
        return EXIT_USAGE
    except SystemExit as exit_:  # Hydra's argument parser (flags we do not know of)
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
    return max(codes, default=EXIT_OK)


def train_main(argv: Sequence[str] | None = None) -> int:
    """``softpool-train [overrides]``; see conf/train.yaml."""
    return _hydra_main("softpool-train", "train", run_train, argv)


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``softpool-eval checkpoint=PATH [overrides]``; see conf/eval.yaml."""
    return _hydra_main("softpool-eval", "eval", run_eval, argv)


if __name__ == "__main__":
    sys.exit(train_main())
