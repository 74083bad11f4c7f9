"""Archive benchmark: calls per hour of ``analyze-calls`` on the local engine (1 and 2 processes) and on Ray.

The same generated calls (``--calls``, default 20; ``--seconds`` long, default 60 s; two parties,
stereo, 16 kHz: formant-synthesised speech from tests/call_audio.py, alternating turns) are
analysed into a fresh call store three times, as ``analyze-calls`` does it (plan, engine, one
store write per call by this process):

- ``local_1``: the local engine in this process;
- ``local_2``: the local engine with 2 worker processes (each loads the model);
- ``ray_2``: the Ray engine with 2 actors on a Ray started for the run (``ray.init(num_cpus=2)``).

Per run: wall time and calls per hour end to end (model loading, worker and Ray start included),
and steady (from the first call written to the last: ``(n - 1) / t``); the seconds to the first
call; the store writes (median and max ms per call, measured around each write in the run); and
the Ray overhead against ``local_2`` in per cent (end to end and steady). Then a projection on
paper: a 10-node cluster of machines like this one and of 16-core machines, from the measured
per-worker throughput, and the throughput at which the one writer (the driver writing each call
in one transaction) becomes the limit, from the measured write time per call.

If ``bench_store.py`` and ``bench_analytics.py`` sit beside this file, their store figures are
added (``bench_writes``: one call's write, empty store; ``bench_queries``: the analytics queries on a
generated store of ``--store-calls`` calls); ``--skip-store`` leaves them out.

Usage::

    nice -n 5 python benchmarks/bench_archive.py [--calls 20] [--seconds 60] [--json out.json]
                                                 [--only local_1 local_2 ray_2] [--repeat 2] [--skip-store]

Prints a JSON object and a markdown table. On a shared machine, ``--repeat 2`` runs each kind twice
(the second round in reverse order) and keeps each kind's fastest run; every wall time is listed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS = ("local_1", "local_2", "ray_2")


def _sibling(name: str):
    """Import ``benchmarks/<name>.py`` (or None when it is not there)."""
    path = Path(__file__).with_name(f"{name}.py")
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make_archive(folder: Path, *, calls: int, seconds: float, seed: int = 0) -> list[Path]:
    """``calls`` two-party calls of ``seconds`` each in ``folder``: turns of 3-8 s, pauses of 0.4-1.5 s."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from call_audio import SR, make_call

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(calls):
        turns, t, role = [], 0.5, "agent"
        while t < seconds - 2.0:
            length = min(float(rng.uniform(3.0, 8.0)), seconds - 1.0 - t)
            style = "neutral" if role == "agent" or rng.random() < 0.6 else "angry"
            turns.append((role, style, t, length))
            t += length + float(rng.uniform(0.4, 1.5))
            role = "customer" if role == "agent" else "agent"
        path = folder / f"queue{i % 3}" / f"call{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, make_call(turns, total_s=seconds, seed=seed * 1000 + i).T, SR)
        paths.append(path)
    return paths


class TimedStore:
    """A :class:`~ser_lib.store.CallStore` whose writes are timed (what the driver spends per call)."""

    def __init__(self, store):
        self.store = store
        self.write_ms: list[float] = []
        self.times: list[float] = []  # when each write finished (perf_counter)

    def __getattr__(self, name):
        return getattr(self.store, name)

    def _timed(self, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        t1 = time.perf_counter()
        self.write_ms.append(1000 * (t1 - t0))
        self.times.append(t1)
        return out

    def write_analysis(self, *args, **kwargs):
        return self._timed(self.store.write_analysis, *args, **kwargs)

    def write_failure(self, *args, **kwargs):
        return self._timed(self.store.write_failure, *args, **kwargs)


def run_once(kind: str, archive: Path, store_path: Path) -> dict:
    """One ``analyze-calls`` run of ``kind`` (``local_1``, ``local_2``, ``ray_2``) into a new store."""
    from ser_lib.bundle import ModelBundle
    from ser_lib.calls import plan_archive, run_archive
    from ser_lib.calls.pool import AnalysisSpec, analyse_local, jobs_for
    from ser_lib.store import CallStore, model_identity

    t0 = time.perf_counter()
    bundle = ModelBundle.load(None)  # the driver checks the model, as the command does
    name, sha = model_identity(bundle)
    store = TimedStore(CallStore(store_path))
    plan = plan_archive(archive, store=store, model_sha256=sha)
    spec = AnalysisSpec(model=str(bundle.path))
    jobs = jobs_for(plan.todo, plan.root)
    seen = []
    if kind == "ray_2":
        from ser_lib.calls.ray_engine import analyse_on_ray

        outcomes = analyse_on_ray(jobs, spec=spec, workers=2)
    else:
        outcomes = analyse_local(jobs, spec=spec, workers=int(kind.split("_")[1]))

    def watched():
        for outcome in outcomes:
            seen.append(outcome)
            yield outcome

    try:
        report = run_archive(plan, watched(), store=store, model_name=name, model_sha256=sha, labels=bundle.labels)
    finally:
        outcomes.close()
    wall = time.perf_counter() - t0
    n = report.analysed
    first = store.times[0] - t0
    steady_s = store.times[-1] - store.times[0]
    ok = [o for o in seen if not o.failed]
    return {
        "calls": n,
        "failed": report.failed,
        "wall_s": round(wall, 1),
        "calls_per_hour": round(3600 * n / wall),
        "first_call_s": round(first, 1),
        "steady_calls_per_hour": round(3600 * (n - 1) / steady_s) if n > 1 and steady_s > 0 else None,
        "worker_s_per_call": round(statistics.mean(o.seconds for o in ok), 2) if ok else None,
        "workers": sorted({o.worker for o in seen}),
        "write_ms_median": round(statistics.median(store.write_ms), 1),
        "write_ms_max": round(max(store.write_ms), 1),
        "result_kb": round(statistics.mean(len(pickle.dumps(o.result)) for o in ok) / 1024, 1) if ok else None,
    }


def projection(runs: dict, *, nodes: int = 10) -> dict:
    """Calls per hour of ``nodes`` machines, and when the single writer becomes the limit (on paper)."""
    ray = runs.get("ray_2") or runs.get("local_2") or runs.get("local_1")
    if not ray:
        return {}
    per_worker = (ray["steady_calls_per_hour"] or ray["calls_per_hour"]) / 2  # 2 workers on this 2-CPU machine
    write_s = statistics.median(r["write_ms_median"] for r in runs.values()) / 1000
    # the driver per call: one store write (measured) plus receiving and unpickling the result (measured small)
    writer_limit = 3600 / write_s
    cpus = os.cpu_count() or 1
    out = {
        "per_worker_calls_per_hour": round(per_worker),
        "cluster_like_this_machine": {"nodes": nodes, "cpus_per_node": cpus, "calls_per_hour": round(per_worker * cpus * nodes)},
        "cluster_of_16_cpu_nodes": {"nodes": nodes, "cpus_per_node": 16, "calls_per_hour": round(per_worker * 16 * nodes)},
        "write_s_per_call": round(write_s, 4),
        "single_writer_limit_calls_per_hour": round(writer_limit),
        "workers_at_writer_limit": round(writer_limit / per_worker),
    }
    return out


def store_figures(tmp: Path, *, store_calls: int) -> dict:
    """``bench_writes`` and ``bench_queries`` of the store helpers' benchmarks, when they are there."""
    out = {}
    bench_store = _sibling("bench_store")
    if bench_store is not None:
        w = bench_store.bench_writes(tmp / "writes.duckdb", n=30)
        out["bench_writes"] = {"write": w["write"], "replace": w["replace"], "windows": w["windows"]}
    bench_analytics = _sibling("bench_analytics")
    if bench_analytics is not None:
        path = tmp / "analytics.duckdb"
        generate_s = bench_analytics.generate(path, store_calls)
        q = bench_analytics.bench_queries(path, repeat=5)
        slowest = max(t["max_ms"] for label in ("all", "narrowed") for t in q[label].values())
        out["bench_queries"] = {"calls": store_calls, "generate_s": round(generate_s, 1), "slowest_query_max_ms": slowest, **q}
    return out


def markdown(figures: dict) -> str:
    runs = figures["runs"]
    a = figures["archive"]
    lines = [
        f"{a['calls']} generated {a['seconds']:.0f} s two-party calls; {figures['machine']}; load before each run in the "
        "last column.",
        "",
        "| run | calls | wall s | calls/hour | steady calls/hour | first call s | worker s/call | write ms (median/max) | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['calls']} | {r['wall_s']} | {r['calls_per_hour']} | {r['steady_calls_per_hour']} | "
            f"{r['first_call_s']} | {r['worker_s_per_call']} | {r['write_ms_median']} / {r['write_ms_max']} | "
            f"{r.get('load_before', '')} |"
        )
    o = figures.get("ray_overhead_pct")
    if o:
        lines.append("")
        lines.append(f"Ray overhead against local_2: {o['end_to_end']}% end to end, {o['steady']}% steady.")
    p = figures.get("projection")
    if p:
        here, big = p["cluster_like_this_machine"], p["cluster_of_16_cpu_nodes"]
        lines.append(
            f"Projection ({a['seconds']:.0f} s calls): {p['per_worker_calls_per_hour']} calls/hour per worker; "
            f"{here['nodes']} nodes of {here['cpus_per_node']} CPUs: {here['calls_per_hour']} calls/hour; "
            f"{big['nodes']} nodes of 16 CPUs: {big['calls_per_hour']} calls/hour. One writer at "
            f"{p['write_s_per_call'] * 1000:.1f} ms per call: {p['single_writer_limit_calls_per_hour']} calls/hour, "
            f"reached at about {p['workers_at_writer_limit']} workers."
        )
    s = figures.get("store")
    if s:
        if "bench_writes" in s:
            w = s["bench_writes"]["write"]
            lines.append(f"Store write of one 5-minute call (bench_writes): median {w['median_ms']} ms, p95 {w['p95_ms']} ms.")
        if "bench_queries" in s:
            q = s["bench_queries"]
            lines.append(f"Analytics queries on {q['calls']} calls (bench_queries): slowest {q['slowest_query_max_ms']} ms.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--only", nargs="+", choices=RUNS, default=list(RUNS))
    ap.add_argument("--repeat", type=int, default=1, help="runs of each kind, alternating order; the fastest is kept")
    ap.add_argument("--skip-store", action="store_true", help="leave out the store helpers' figures")
    ap.add_argument("--store-calls", type=int, default=10_000, help="calls in the generated store for bench_queries")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    figures: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "python": sys.version.split()[0],
        "archive": {"calls": args.calls, "seconds": args.seconds, "kind": "generated two-party stereo 16 kHz"},
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = tmp / "archive"
        t0 = time.perf_counter()
        make_archive(archive, calls=args.calls, seconds=args.seconds)
        print(f"generated {args.calls} calls of {args.seconds:.0f} s in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        tries: dict[str, list[dict]] = {kind: [] for kind in args.only}
        for round_ in range(args.repeat):
            order = args.only if round_ % 2 == 0 else list(reversed(args.only))  # alternate: drift in load evens out
            for kind in order:
                print(f"running {kind} (round {round_ + 1}) ...", file=sys.stderr)
                load = round(os.getloadavg()[0], 1)
                r = run_once(kind, archive, tmp / f"{kind}-{round_}.duckdb")
                r["load_before"] = load
                tries[kind].append(r)
                print(f"  {kind}: {r}", file=sys.stderr)
        # the least disturbed run of each (the machine may be shared): the shortest wall time
        figures["runs"] = {kind: min(rs, key=lambda r: r["wall_s"]) for kind, rs in tries.items()}
        if args.repeat > 1:
            figures["all_runs"] = {kind: [r["wall_s"] for r in rs] for kind, rs in tries.items()}
        runs = figures["runs"]
        if "ray_2" in runs and "local_2" in runs:
            r, loc = runs["ray_2"], runs["local_2"]
            figures["ray_overhead_pct"] = {
                "end_to_end": round(100 * (r["wall_s"] / loc["wall_s"] - 1), 1),
                "steady": round(100 * (loc["steady_calls_per_hour"] / r["steady_calls_per_hour"] - 1), 1)
                if r["steady_calls_per_hour"] and loc["steady_calls_per_hour"]
                else None,
            }
        figures["projection"] = projection(runs)
        if not args.skip_store:
            figures["store"] = store_figures(tmp, store_calls=args.store_calls)
    figures["load_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(figures, indent=1))
    print()
    print(markdown(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
