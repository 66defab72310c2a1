"""``softpool-train`` and ``softpool-eval``: Hydra entry points over ``train`` and ``evaluate_checkpoint``.

Both take Hydra overrides (``key=value``, ``group=option``, ``--cfg job`` to print the config,
``-m`` for sweeps) and return an exit status:

- 0: done;
- 1: training/evaluation failed (out of memory, non-finite loss, unreadable checkpoint);
- 2: the configuration is wrong (the message names the key and the accepted values);
- 128 + signal number (143 for SIGTERM, 130 for SIGINT): stopped by a signal after writing ``last.pt``.

Under torchrun: ``torchrun --nproc_per_node=N -m softpool_video.train.cli trainer=ddp ...``
(or ``torchrun ... tools/train.py ...``); every process parses the same overrides.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence

from omegaconf import DictConfig

__all__ = ["eval_main", "run_eval", "run_train", "train_main"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _report(program: str, error: BaseException) -> None:
    print(f"{program}: error: {error}", file=sys.stderr, flush=True)


def run_train(cfg: DictConfig) -> int:
    """Train (then optionally test) with a composed config; returns the exit status."""
    from softpool_video.data import TooManyFailedVideosError
    from softpool_video.train.checkpoint import CheckpointError
    from softpool_video.train.config import ConfigError
    from softpool_video.train.trainer import TrainingError, train

    try:
        result = train(cfg)
    except ConfigError as error:
        _report("softpool-train", error)
        return EXIT_CONFIG
    except (TrainingError, CheckpointError, TooManyFailedVideosError) as error:
        _report("softpool-train", error)
        return EXIT_FAILED
    if result.stopped_by:
        return 128 + int(signal.Signals[result.stopped_by])
    if cfg.get("test") and not cfg.trainer.get("fast_dev_run"):
        from softpool_video.train.evaluate import test_config_after_training

        checkpoint = result.checkpoint(str(cfg.eval.get("test_checkpoint", "last")))
        out_dir = result.run_dir / f"eval_test_{checkpoint.stem}"
        return run_eval(test_config_after_training(cfg, checkpoint, out_dir))
    return EXIT_OK


def run_eval(cfg: DictConfig) -> int:
    """Evaluate a checkpoint with a composed ``eval`` config; returns the exit status."""
    from softpool_video.data import TooManyFailedVideosError
    from softpool_video.train.checkpoint import CheckpointError
    from softpool_video.train.config import ConfigError
    from softpool_video.train.evaluate import evaluate_checkpoint

    try:
        evaluate_checkpoint(cfg)
    except ConfigError as error:
        _report("softpool-eval", error)
        return EXIT_CONFIG
    except (CheckpointError, TooManyFailedVideosError) as error:
        _report("softpool-eval", error)
        return EXIT_FAILED
    return EXIT_OK


def _hydra_main(config_name: str, task: Callable[[DictConfig], int], argv: Sequence[str] | None) -> int:
    import hydra

    from softpool_video.train.config import conf_dir, config_dirs_in_argv, user_configs_first

    codes: list[int] = []

    @hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")
    def app(cfg: DictConfig) -> None:
        codes.append(task(cfg))

    saved = sys.argv
    if argv is not None:
        sys.argv = [saved[0] if saved else config_name, *argv]
    try:
        # --config-dir DIR: DIR's configs come before the packaged ones (Hydra alone puts them after).
        with user_configs_first(config_dirs_in_argv(sys.argv[1:])):
            app()
    finally:
        sys.argv = saved
    return max(codes, default=EXIT_OK)


def train_main(argv: Sequence[str] | None = None) -> int:
    """``softpool-train [overrides]``; see conf/train.yaml."""
    return _hydra_main("train", run_train, argv)


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``softpool-eval checkpoint=PATH [overrides]``; see conf/eval.yaml."""
    return _hydra_main("eval", run_eval, argv)


if __name__ == "__main__":
    sys.exit(train_main())
