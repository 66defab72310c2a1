"""`python tools/benchmark.py SUBCOMMAND [options]`: same as the `softpool-bench` console script."""

import sys

from softpool_video.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
