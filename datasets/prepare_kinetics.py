#!/usr/bin/env python
"""Check a Kinetics download against its CSVs; optionally re-encode it small.

See datasets/README.md; `--help` lists the options.
"""

import sys

from softpool_video.data.prepare import main_kinetics

if __name__ == "__main__":
    sys.exit(main_kinetics())
