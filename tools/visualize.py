#!/usr/bin/env python
"""Visualise pooling: ``python tools/visualize.py VIDEO [key=value ...]`` (same as ``softpool-visualize``).

    python tools/visualize.py clip.mp4 kernel=2,2,2 levels=3 methods=[soft,max,avg] output=out/clip
"""

import sys

from softpool_video.visualize.cli import main

if __name__ == "__main__":
    sys.exit(main())
