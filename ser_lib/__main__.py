"""``python -m ser_lib``: see :mod:`ser_lib.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
