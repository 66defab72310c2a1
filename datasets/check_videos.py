#!/usr/bin/env python
"""Decode every video of a dataset in parallel and list the unreadable ones.

See datasets/README.md; `--help` lists the options.
"""

import sys

from softpool_video.data.checking import main

if __name__ == "__main__":
    sys.exit(main())
