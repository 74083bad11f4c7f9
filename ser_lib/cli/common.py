"""What every command shares: exit codes, checked argument types, output checks.

Exit codes, the same for every command:

- ``0``: everything asked for was done;
- ``1``: some inputs failed (each is named on stderr or in the output; the others were done);
- ``2``: a usage or input error (a bad option or value, a missing or damaged model, an unreadable
  input where the command takes one, an output path that cannot be written): nothing was done;
- ``130``: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import math

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit status: 0 all done; 1 some inputs failed (each named, the others done); "
    "2 usage or input error (bad option or value, missing or damaged model, unreadable input, unwritable output)."
)


def number(kind: type = float, *, low: float | None = None, high: float | None = None, low_open: bool = False):
    """An argparse ``type`` for a finite number within bounds (``nan``, ``inf`` and out-of-range values
    are refused with a message that says the range)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
            hi = "" if high is None else f"<= {high}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {' and '.join(p for p in (lo, hi) if p)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_uncertain_below(parser: argparse.ArgumentParser, *, says: str) -> None:
    """The ``--uncertain-below P`` option (predict, analyze-call, analyze-calls): below P, ``says``."""
    parser.add_argument(
        "--uncertain-below",
        type=number(float, low=0.0, high=1.0),
        metavar="P",
        help=f"{says} when the calibrated confidence is below P (default: $SER_UNCERTAIN_BELOW, then the "
        "threshold in the model's card; 0: never)",
    )
