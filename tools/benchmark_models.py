#!/usr/bin/env python
"""Training-step time of backbones, SoftPool vs the original pools (same as ``softpool-bench models``)."""

import sys

from softpool_video.bench.models import main

if __name__ == "__main__":
    sys.exit(main())
