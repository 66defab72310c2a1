#!/usr/bin/env python
"""Classify videos: ``python tools/predict.py VIDEO [VIDEO|DIR ...] checkpoint=PATH [key=value ...]``
(same as ``softpool-predict``).

    python tools/predict.py clip.mp4 videos/ checkpoint=best.pt topk=3 output=preds.csv
"""

import sys

from softpool_video.predict.cli import main

if __name__ == "__main__":
    sys.exit(main())
