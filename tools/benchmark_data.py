#!/usr/bin/env python
"""Clips/s of our data loader vs pytorchvideo's (same as ``softpool-bench data``)."""

import sys

from softpool_video.bench.data import main

if __name__ == "__main__":
    sys.exit(main())
