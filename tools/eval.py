#!/usr/bin/env python
"""Evaluate a checkpoint with multi-view testing: ``python tools/eval.py checkpoint=PATH [overrides]``
(same as ``softpool-eval``)."""

import sys

from softpool_video.train.cli import eval_main

if __name__ == "__main__":
    sys.exit(eval_main())
