#!/usr/bin/env python
"""Write the synthetic motion dataset (same as `softpool-synth`); `--help` lists the options."""

import sys

from softpool_video.data.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
