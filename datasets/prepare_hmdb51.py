#!/usr/bin/env python
"""Check an HMDB-51 download against its split files; optionally unpack it and re-encode it small.

See datasets/README.md; `--help` lists the options.
"""

import sys

from softpool_video.data.prepare import main_hmdb51

if __name__ == "__main__":
    sys.exit(main_hmdb51())
