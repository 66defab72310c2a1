"""Run ``python threads_at_exit.py OUT_DIR -m MODULE ARGS...`` and, at interpreter exit, write the
names of this process's threads to ``OUT_DIR/rank<RANK>.txt`` (Linux: /proc/self/task/*/comm).

The DDP tests use it to see whether a rank reaches interpreter shutdown with gloo's threads still
running (the process group was not freed), where a rank can die of SIGABRT after a finished run.
"""

import atexit
import contextlib
import os
import runpy
import sys
from pathlib import Path


def _write_thread_names(out_dir: Path) -> None:
    names = []
    for comm in sorted(Path("/proc/self/task").glob("*/comm")):
        with contextlib.suppress(OSError):  # the thread ended while we listed them
            names.append(comm.read_text().strip())
    (out_dir / f"rank{os.environ.get('RANK', '0')}.txt").write_text("\n".join(names) + "\n")


if __name__ == "__main__":
    out_dir, flag, module, *args = sys.argv[1:]
    assert flag == "-m", "usage: threads_at_exit.py OUT_DIR -m MODULE ARGS..."
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atexit.register(_write_thread_names, Path(out_dir))  # registered first: runs after the others
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
