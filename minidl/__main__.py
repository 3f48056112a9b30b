"""`python -m minidl ...` runs the same command line as the `minidl` console script."""

import sys

from minidl.cli import main

if __name__ == "__main__":
    sys.exit(main())
