"""Call store benchmark: how long writing one analysed call takes (target: under 50 ms).

Each write is what ``analyze-call`` / ``analyze-calls`` / the live service do per call: take the
writer lock, open the DuckDB file read-write, write the call's rows (calls, windows, segments,
per-party and per-quarter summaries, worst moments, alerts) in one transaction, close (DuckDB
checkpoints on close). The call is a realistic 5-minute two-party analysis
(:func:`ser_lib.store.sample_call.sample_analysis`: about 180 windows, 80 segments).

Figures (printed, and with ``--json OUT`` written): median, p95, mean, min and max milliseconds
over ``--n`` writes of new calls into an empty store; the same into a store already holding
``--prefill`` generated calls (default 10,000, :func:`ser_lib.store.synthetic.generate_store`);
and re-writes of a call already there (the same model: replace). Plus how long building the rows
takes alone (no database), and a read-only open + count for comparison.

Usage::

    python benchmarks/bench_store.py [--n 50] [--prefill 10000] [--json out.json]

Other benchmarks import :func:`bench_writes`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ser_lib.store import CallStore
from ser_lib.store.rows import call_row, detail_rows
from ser_lib.store.sample_call import sample_analysis

SHA = "5e1f" + "0" * 60


def _figures(ms: list[float], cpu: list[float] | None = None) -> dict:
    a = np.asarray(ms, float)
    extra = {"cpu_median_ms": round(float(np.median(cpu)), 2)} if cpu else {}
    return extra | {
        "n": int(a.size),
        "median_ms": round(float(np.median(a)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "mean_ms": round(float(a.mean()), 2),
        "min_ms": round(float(a.min()), 2),
        "max_ms": round(float(a.max()), 2),
    }


def bench_writes(path: str | os.PathLike, *, n: int = 50, duration_s: float = 300.0, replace: int = 10, seed: int = 0) -> dict:
    """Time ``n`` writes of new calls (and ``replace`` re-writes of one) into the store at ``path``.

    Parameters
    ----------
    path : path-like
        The store (created if missing; may already hold calls).
    n : int
        New calls to write, each timed alone (lock, open, one transaction, close).
    duration_s : float
        Length of the sample call (300 s: a 5-minute two-party call).
    replace : int
        Re-writes of the first call by the same model (the replace path: delete + insert).

    Returns
    -------
    dict
        ``write`` and ``replace`` figures (``n``, ``median_ms``, ``p95_ms``, ``mean_ms``, ``min_ms``,
        ``max_ms``; ``write`` also ``cpu_median_ms``, this process's CPU time, which a busy machine
        inflates less than the wall-clock time), ``rows_only_ms`` (building the rows, no database), ``windows`` and
        ``segments`` per call, ``calls_after`` and ``file_mb``.
    """
    results = [sample_analysis(duration_s=duration_s, seed=seed + i) for i in range(4)]
    store = CallStore(path)
    store.check_writable()  # create / migrate outside the timings
    tag = f"bench{int(time.time() * 1000) % 10**9}"
    times, cpu = [], []
    for i in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        store.write_analysis(results[i % 4], call_id=f"{tag}/{i:05d}.wav", source="bench", model_name="bench", model_sha256=SHA)
        times.append(1000 * (time.perf_counter() - t0))
        cpu.append(1000 * (time.process_time() - c0))
    again = []
    for _ in range(replace):
        t0 = time.perf_counter()
        store.write_analysis(results[0], call_id=f"{tag}/00000.wav", source="bench", model_name="bench", model_sha256=SHA)
        again.append(1000 * (time.perf_counter() - t0))
    rows = []
    for i in range(20):
        t0 = time.perf_counter()
        call_row(aid="x", call_id="x", source="x", origin="file", metadata=None, model_name="m", model_sha256=SHA,
                 status="completed", result=results[i % 4])  # fmt: skip
        detail_rows(results[i % 4], "x")
        rows.append(1000 * (time.perf_counter() - t0))
    return {
        "write": _figures(times, cpu),
        "replace": _figures(again) if again else None,
        "rows_only_ms": round(float(np.median(rows)), 2),
        "windows": int(np.mean([len(r.windows) for r in results])),
        "segments": int(np.mean([len(r.segments) for r in results])),
        "calls_after": store.counts()["calls"],
        "file_mb": round(Path(path).stat().st_size / 1e6, 1),
    }


def bench_read(path: str | os.PathLike, *, n: int = 20) -> dict:
    """Time ``n`` read-only opens of the store, each counting its calls and closing."""
    store = CallStore(path, read_only=True)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with store.reader() as con:
            con.execute("SELECT count(*) FROM calls").fetchone()
        times.append(1000 * (time.perf_counter() - t0))
    return _figures(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="writes timed per store (default 50)")
    ap.add_argument("--prefill", type=int, default=10_000, help="generated calls in the second store (0: skip)")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    out = {"machine": machine, "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.duckdb"
        out["empty_store"] = bench_writes(empty, n=args.n)
        out["empty_store"]["read_open_count"] = bench_read(empty)
        if args.prefill:
            from ser_lib.store.synthetic import generate_store

            full = Path(tmp) / "full.duckdb"
            t0 = time.perf_counter()
            generate_store(full, n_calls=args.prefill)
            out["prefill_s"] = round(time.perf_counter() - t0, 1)
            out[f"store_of_{args.prefill}"] = bench_writes(full, n=args.n)
            out[f"store_of_{args.prefill}"]["read_open_count"] = bench_read(full)
    for name, r in out.items():
        if not isinstance(r, dict):
            print(f"{name}: {r}")
            continue
        w, rep = r["write"], r["replace"]
        print(
            f"{name}: write one call ({r['windows']} windows, {r['segments']} segments): median {w['median_ms']} ms, "
            f"p95 {w['p95_ms']} ms (n={w['n']}; CPU median {w['cpu_median_ms']} ms); replace median {rep['median_ms']} ms; "
            f"rows alone {r['rows_only_ms']} ms; "
            f"read-only open+count median {r['read_open_count']['median_ms']} ms; {r['calls_after']} calls, {r['file_mb']} MB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
