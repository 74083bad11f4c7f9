"""Hostile audio: a few hundred mutated WAV, FLAC, MP3 and Opus files through every decoding entry point.

    python benchmarks/bench_fuzz.py [--n 300] [--seed 13] [--before ../base] [--json OUT]

The mutants and the worker are those of ``tests/test_fuzz.py`` (header fields, truncations, byte
flips, appended junk; seeds written with soundfile), ``--n`` of them split evenly over the four
formats. Each goes through ``audio_info``, ``load_audio`` (validated, and raw multichannel) and
``iter_blocks`` in a worker process with an address-space cap (``--address-space-gb``, default 4);
a case still running after ``--case-seconds`` (default 10) is killed and counted as a hang.

Prints counts per outcome and entry point (decoded, each library error, anything else), the
slowest case and its time, and the largest peak resident memory of a case (the worker's whole
process). ``--before TREE`` runs the same mutants through another checkout's ``ser_lib`` too
(``PYTHONPATH=TREE``) and prints both side by side. Targets (issue 13): 0 errors outside the
library's family, 0 runs over 10 s, peak memory under 1 GB per case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_fuzz import ENTRY_POINTS, FORMATS, make_mutants, run_mutants  # noqa: E402

#: What the targets allow (issue 13).
TARGET_SECONDS = 10.0
TARGET_PEAK_BYTES = 1 << 30


def _is_outside(outcome: str) -> bool:
    return outcome.startswith(("OUTSIDE", "HANG", "CRASH"))


def _label(outcome: str) -> str:
    """An outcome as counted: "decoded", a library error's class, or the foreign class (message dropped)."""
    if outcome == "ok":
        return "decoded"
    return outcome.split(":")[0]


def summarise(results: list[dict]) -> dict:
    """Counts per outcome and entry point, the slowest case, the largest peak, the failures."""
    per_entry = {entry: Counter(_label(r["outcomes"][entry]) for r in results) for entry in ENTRY_POINTS}
    overall = Counter()
    for counts in per_entry.values():
        overall.update(counts)
    slowest = max(results, key=lambda r: r["seconds"])
    measured = [r for r in results if r["peak_bytes"] is not None]
    biggest = max(measured, key=lambda r: r["peak_bytes"]) if measured else None
    outside = [
        {"fmt": r["fmt"], "what": r["what"], "entry": e, "outcome": o}
        for r in results
        for e, o in r["outcomes"].items()
        if _is_outside(o)
    ]
    return {
        "cases": len(results),
        "per_format": dict(Counter(r["fmt"] for r in results)),
        "outcomes": dict(overall),
        "outcomes_per_entry": {e: dict(c) for e, c in per_entry.items()},
        "outside_family": len(outside),
        "cases_outside_family": len({(o["fmt"], o["what"]) for o in outside}),
        "outside_examples": outside[:12],
        "over_10_s": sum(r["seconds"] > TARGET_SECONDS for r in results),
        "slowest": {"fmt": slowest["fmt"], "what": slowest["what"], "seconds": round(slowest["seconds"], 3)},
        "peak_bytes_max": biggest["peak_bytes"] if biggest else None,
        "peak_case": {"fmt": biggest["fmt"], "what": biggest["what"]} if biggest else None,
        "over_1_gb": sum((r["peak_bytes"] or 0) > TARGET_PEAK_BYTES for r in results),
        "total_seconds": round(sum(r["seconds"] for r in results), 1),
    }


def _which_ser_lib(pythonpath: str | None) -> str:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    code = "import ser_lib.audio as a; print(a.__file__)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    ).stdout.strip()


def _print_table(runs: dict[str, dict]) -> None:
    names = list(runs)
    width = 44
    print(f"{'':{width}}" + "".join(f"{n:>18}" for n in names))
    labels = sorted({k for s in runs.values() for k in s["outcomes"]}, key=lambda k: (_is_outside(k), k != "decoded", k))
    print(f"{'calls (cases x 4 entry points), by outcome':{width}}")
    for label in labels:
        print(f"  {label[: width - 2]:{width - 2}}" + "".join(f"{s['outcomes'].get(label, 0):>18}" for s in runs.values()))
    rows = [
        ("errors outside the family (calls)", lambda s: s["outside_family"]),
        ("cases with one", lambda s: s["cases_outside_family"]),
        ("cases over 10 s", lambda s: s["over_10_s"]),
        ("slowest case (s)", lambda s: f"{s['slowest']['seconds']:.2f}"),
        ("largest peak RSS of a case (MB)", lambda s: f"{(s['peak_bytes_max'] or 0) / 2**20:.0f}"),
        ("cases over 1 GB", lambda s: s["over_1_gb"]),
        ("all cases (s)", lambda s: s["total_seconds"]),
    ]
    for title, get in rows:
        print(f"{title:{width}}" + "".join(f"{get(s):>18}" for s in runs.values()))
    for name, s in runs.items():
        slow, peak = s["slowest"], s["peak_case"] or {"fmt": "-", "what": "-"}
        print(f"\n{name}: slowest {slow['fmt']} '{slow['what']}' ({slow['seconds']:.2f} s);", end=" ")
        print(f"largest peak {peak['fmt']} '{peak['what']}'")
        for o in s["outside_examples"]:
            print(f"  outside the family: {o['fmt']} '{o['what']}' {o['entry']}: {o['outcome'][:110]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="mutants in all, split evenly over the four formats (default 300)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the random mutations (default 13)")
    parser.add_argument("--case-seconds", type=float, default=10.0, help="kill a case after this long (default 10)")
    parser.add_argument("--address-space-gb", type=float, default=4.0, help="the worker's address-space cap (default 4)")
    parser.add_argument("--before", metavar="TREE", help="also run another checkout's ser_lib (PYTHONPATH=TREE)")
    parser.add_argument("--json", metavar="OUT", help="write the summaries (and every case) to OUT")
    args = parser.parse_args()
    if args.n < len(FORMATS):
        parser.error(f"--n {args.n} must be at least {len(FORMATS)} (one per format)")

    mutants = make_mutants(args.n // len(FORMATS), seed=args.seed)
    trees = {"after (this tree)": None}
    if args.before:
        trees = {f"before ({args.before})": str(Path(args.before).resolve()), **trees}
    runs, cases = {}, {}
    for name, tree in trees.items():
        print(f"{name}: {len(mutants)} mutants, ser_lib from {_which_ser_lib(tree)}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench_fuzz_") as folder:
            t0 = time.perf_counter()
            results = run_mutants(
                mutants,
                Path(folder),
                case_seconds=args.case_seconds,
                address_space=int(args.address_space_gb * 2**30),
                pythonpath=tree,
            )
            print(f"  ran in {time.perf_counter() - t0:.0f} s", flush=True)
        runs[name], cases[name] = summarise(results), results
    print()
    _print_table(runs)
    if args.json:
        Path(args.json).write_text(json.dumps({"summaries": runs, "cases": cases, "args": vars(args)}, indent=1, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
