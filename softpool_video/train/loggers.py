"""Run-directory logging: epoch metrics to CSV + JSONL, scalars to TensorBoard, messages to console + file.

The ``logger/`` config group picks the metric loggers (``logger=[csv,tensorboard]`` by default); the
console log (``train.log`` / ``eval.log`` in the run directory) is always on. Only rank 0 builds them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CSVLogger", "MetricLoggers", "TensorBoardLogger", "build_metric_loggers", "setup_console_logging"]

LOGGER_NAME = "softpool_video"


_CONSOLE_FORMAT = logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
_FILE_FORMAT = logging.Formatter("[%(asctime)s] %(levelname)s %(message)s")


class RunLog(logging.Handler):
    """The ``softpool_video`` logger of one run: the console on rank 0, the run's log file once the
    run directory exists.

    While the configuration is being checked nothing reaches the console (``hold=True``): a
    configuration error is then the only line the user sees. :meth:`release_console` prints what was held
    and lets later records through; :meth:`open_file` starts the log file with every record so far;
    :meth:`write_traceback` puts a failure's traceback into the file only.
    """

    def __init__(self, is_main: bool, hold: bool = False, level: int = logging.INFO):
        super().__init__(level=logging.DEBUG)
        self.is_main = is_main
        self.held = hold
        self.records: list[logging.LogRecord] = []
        self.console = logging.StreamHandler(sys.stderr)
        self.console.setFormatter(_CONSOLE_FORMAT)
        self.file: logging.FileHandler | None = None
        logger = logging.getLogger(LOGGER_NAME)
        for handler in list(logger.handlers):
            # A second run in one process (tests, the demo, sweeps) must not log twice or to the old file.
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level if is_main else logging.WARNING)
        logger.propagate = False
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self.file is None:
            self.records.append(record)
        else:
            self.file.handle(record)
        if not self.held:
            self.console.handle(record)

    def release_console(self) -> None:
        """Print the records held back, then pass every later one to the console."""
        if self.held:
            self.held = False
            for record in self.records:
                self.console.handle(record)

    def open_file(self, path: Path) -> None:
        """Log to ``path`` too (rank 0 only), starting with every record logged so far."""
        if not self.is_main:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = logging.FileHandler(path, encoding="utf-8")
        self.file.setFormatter(_FILE_FORMAT)
        for record in self.records:
            self.file.handle(record)
        self.records.clear()

    @property
    def path(self) -> Path | None:
        return Path(self.file.baseFilename) if self.file is not None else None

    def write_traceback(self, error: BaseException) -> Path | None:
        """Append ``error``'s traceback to the log file (not the console); returns the file, if any."""
        if self.file is None:
            return None
        import traceback

        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.file.stream.write(f"[traceback]\n{text}")
        self.file.flush()
        return self.path

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


def current_run_log() -> RunLog | None:
    """The :class:`RunLog` attached to the ``softpool_video`` logger, if any."""
    for handler in logging.getLogger(LOGGER_NAME).handlers:
        if isinstance(handler, RunLog):
            return handler
    return None


def setup_console_logging(log_file: Path | None, is_main: bool, level: int = logging.INFO) -> logging.Logger:
    """``softpool_video`` logger: console (stderr) on rank 0 plus ``log_file``; warnings only elsewhere."""
    run_log = RunLog(is_main, hold=False, level=level)
    if log_file is not None:
        run_log.open_file(log_file)
    return logging.getLogger(LOGGER_NAME)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; CSV keeps "nan"
    return value


class CSVLogger:
    """``metrics.csv`` and ``metrics.jsonl``: one row per epoch, fixed columns, appended as the run goes.

    On resume, rows of epochs at or after the resume point are dropped, so a resumed run's files match
    an uninterrupted run's.
    """

    def __init__(self, run_dir: Path, columns: Sequence[str], start_epoch: int = 0):
        self.csv_path = run_dir / "metrics.csv"
        self.jsonl_path = run_dir / "metrics.jsonl"
        self.columns = list(columns)
        self._truncate(start_epoch)

    def _truncate(self, start_epoch: int) -> None:
        rows: list[dict] = []
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if int(row["epoch"]) < start_epoch]
        with self.csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        kept: list[str] = []
        if self.jsonl_path.exists():
            for line in self.jsonl_path.read_text().splitlines():
                if line.strip() and int(json.loads(line)["epoch"]) < start_epoch:
                    kept.append(line)
        self.jsonl_path.write_text("".join(f"{line}\n" for line in kept))

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        with self.csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writerow({key: metrics.get(key, "") for key in self.columns})
        with self.jsonl_path.open("a") as handle:
            handle.write(json.dumps({key: _jsonable(value) for key, value in metrics.items()}) + "\n")

    def log_step(self, metrics: Mapping[str, float], step: int) -> None:
        pass  # epoch granularity only: step curves live in TensorBoard

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """TensorBoard event files under ``<run_dir>/tensorboard`` (step scalars and epoch scalars)."""

    def __init__(self, run_dir: Path, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a previous (interrupted) attempt wrote past the resume point.
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=start_step or None)

    def log_step(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        step = int(metrics["step"])
        for key, value in metrics.items():
            if key in ("epoch", "step") or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            self.writer.add_scalar(f"epoch/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MetricLoggers:
    """Fan-out to the enabled loggers (an empty list on non-zero ranks)."""

    def __init__(self, loggers: Sequence[Any] = ()):
        self.loggers = list(loggers)

    def log_step(self, metrics: Mapping[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.log_step(metrics, step)

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_epoch(metrics)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


LOGGERS = ("csv", "tensorboard")


def build_metric_loggers(
    logger_cfg: Mapping[str, Any] | None,
    run_dir: Path,
    columns: Sequence[str],
    start_epoch: int,
    start_step: int,
) -> MetricLoggers:
    """``logger_cfg`` maps logger names (``csv``, ``tensorboard``) to their settings (``enabled``)."""
    loggers = []
    for name, settings in (logger_cfg or {}).items():
        if name not in LOGGERS:
            raise ValueError(f"logger.{name}: unknown logger, choose from {', '.join(LOGGERS)}")
        if settings is not None and not settings.get("enabled", True):
            continue
        if name == "csv":
            loggers.append(CSVLogger(run_dir, columns, start_epoch))
        else:
            loggers.append(TensorBoardLogger(run_dir, start_step))
    return MetricLoggers(loggers)
