#!/usr/bin/env python
"""Check a UCF-101 download against its split lists; optionally re-encode it small.

See datasets/README.md; `--help` lists the options.
"""

import sys

from softpool_video.data.prepare import main_ucf101

if __name__ == "__main__":
    sys.exit(main_ucf101())
