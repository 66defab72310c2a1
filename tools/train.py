#!/usr/bin/env python
"""Train a model: ``python tools/train.py [hydra overrides]`` (same as ``softpool-train``).

Works under torchrun too: ``torchrun --nproc_per_node=2 tools/train.py trainer=ddp trainer.accelerator=cpu``.
"""

import sys

from softpool_video.train.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
