"""Running the real command-line tools in subprocesses, as a user does.

Every tool is started the way a user starts it: the console script installed next to this Python
(``softpool-train``, ...), or a ``tools/*.py`` script, in a fresh empty working directory, so a test
can check that a mistake wrote nothing there.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def console_scripts() -> dict[str, str]:
    """``{"softpool-train": "softpool_video.train.cli:train_main", ...}`` from the installed metadata."""
    scripts = {
        entry.name: entry.value
        for entry in importlib.metadata.entry_points(group="console_scripts")
        if entry.name.startswith("softpool-")
    }
    if not scripts:
        raise RuntimeError("softpool_video's console scripts are not installed: pip install -e .")
    return scripts


def command(tool: str) -> list[str]:
    """The command line that starts ``tool``: a console script name or a ``tools/NAME.py`` path."""
    if tool.endswith(".py"):
        return [sys.executable, str(REPO / tool)]
    script = Path(sys.executable).parent / tool
    if script.is_file():
        return [str(script)]
    module, _, function = console_scripts()[tool].partition(":")
    code = f"import sys; sys.argv[0] = {tool!r}; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code]


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("HYDRA_FULL_ERROR", None)
    return env


@dataclass
class Run:
    """A finished tool run."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_tool(tool: str, args: Sequence[str], cwd: Path, timeout: float = 600) -> Run:
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [*command(tool), *args], cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout
    )
    return Run([tool, *args], done.returncode, done.stdout, done.stderr)


def run_many(jobs: Sequence[tuple[str, Sequence[str], Path]]) -> list[Run]:
    """Run several tools at once (each is mostly Python start-up), results in order."""
    workers = max(2, min(len(jobs), os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: run_tool(*job), jobs))


def files_under(directory: Path) -> list[str]:
    """Every file and folder under ``directory`` (relative), sorted: what a run left behind."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


__all__ = ["REPO", "Run", "command", "console_scripts", "files_under", "run_many", "run_tool", "tool_env"]
