"""How quick the Call analytics page is on a large store: 10,000 generated calls (rows only, no audio).

Targets (issue 11): each analytics query under 200 ms; every page interaction under 1 s warm.

- :func:`bench_queries`: each query of :mod:`ser_lib.store.analytics` run ``repeat`` times on one
  read-only connection (median and max, ms), for the whole store and for a narrowed filter, plus
  the cost of opening the store for a batch (:func:`ser_lib.store.analytics.open_reader`).
- :func:`bench_page`: the page under ``streamlit.testing.v1.AppTest``: the first run (cold
  caches), then each interaction (a rerun, a queue filter, an agent filter, a period, worst by
  alerts, opening a worst call's timeline), each once cold and then warm (the same state again:
  cached results, what a manager going back and forth sees). AppTest runs the script in-process,
  so the times are the server's side of an interaction, without the browser's drawing.

Usage::

    python benchmarks/bench_analytics.py [--calls 10000] [--store PATH] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def generate(path: str | os.PathLike, n_calls: int = 10_000) -> float:
    """Write a generated store of ``n_calls`` calls at ``path``; returns the seconds it took."""
    from ser_lib.store.synthetic import SyntheticSpec, generate_store

    t0 = time.perf_counter()
    generate_store(path, SyntheticSpec(n_calls=n_calls, detail_calls=60))
    return time.perf_counter() - t0


def bench_queries(path: str | os.PathLike, *, repeat: int = 7) -> dict:
    """Median and max time (ms) of each analytics query on the store at ``path``.

    Returns
    -------
    dict
        ``open_ms`` (opening the store for one batch), then per filter (``all``, ``narrowed``: two
        queues, a third of the agents, the last 14 days) per query ``{"median_ms", "max_ms"}``, and
        ``call_timeline`` (one worst call's windows and segments).
    """
    from ser_lib.store import analytics as an

    out: dict = {}
    opens = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with an.open_reader(path):
            pass
        opens.append(time.perf_counter() - t0)
    out["open_ms"] = {"median_ms": _ms(statistics.median(opens)), "max_ms": _ms(max(opens))}
    with an.open_reader(path) as con:
        options = an.filter_options(con)
        base = an.resolve_model(con, an.Filters())
        narrowed = an.Filters(
            start=options["last_day"] - timedelta(days=13),
            end=options["last_day"],
            queues=tuple(options["queues"][:2]),
            agents=tuple(options["agents"][::3]),
            model=base.model,
        )
        queries = {
            "filter_options": lambda f: an.filter_options(con),
            "resolve_model": lambda f: an.resolve_model(con, an.Filters()),
            "headline": lambda f: an.headline(con, f),
            "calls_per_day": lambda f: an.calls_per_day(con, f),
            "sentiment_per_quarter": lambda f: an.sentiment_per_quarter(con, f),
            "agents_table": lambda f: an.agents_table(con, f),
            "worst_calls": lambda f: an.worst_calls(con, f),
            "worst_calls_by_alerts": lambda f: an.worst_calls(con, f, by="alerts"),
        }
        for label, f in (("all", base), ("narrowed", narrowed)):
            out[label] = {}
            for name, fn in queries.items():
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    fn(f)
                    times.append(time.perf_counter() - t0)
                out[label][name] = {"median_ms": _ms(statistics.median(times)), "max_ms": _ms(max(times))}
        worst = an.worst_calls(con, base, limit=1)["analysis_id"][0]
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            an.call_timeline(con, worst)
            times.append(time.perf_counter() - t0)
        out["call_timeline"] = {"median_ms": _ms(statistics.median(times)), "max_ms": _ms(max(times))}
    return out


def bench_page(path: str | os.PathLike, *, repeat: int = 3) -> dict:
    """Seconds per page interaction under AppTest: ``first_run`` (cold), then per interaction
    ``{"cold_s", "warm_s"}`` (warm: the median of ``repeat`` runs of the same state, caches filled)."""
    os.environ["SER_CALL_STORE"] = str(path)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=300)
    at.switch_page("pages/8_Call_analytics.py")
    t0 = time.perf_counter()
    at.run()
    out: dict = {"first_run_s": round(time.perf_counter() - t0, 3)}
    if at.exception or at.error:
        raise RuntimeError(f"the page failed: {[e.value for e in at.exception] + [e.value for e in at.error]}")
    queues, agents = at.multiselect(key="ca_queues").options, at.multiselect(key="ca_agents").options
    period = at.date_input(key="ca_period").value

    steps = {
        "rerun": lambda: None,
        "queue_filter": lambda: at.multiselect(key="ca_queues").set_value(queues[:1]),
        "agent_filter": lambda: at.multiselect(key="ca_agents").set_value(agents[:3]),
        "period": lambda: at.date_input(key="ca_period").set_value((period[1] - timedelta(days=6), period[1])),
        "worst_by_alerts": lambda: at.segmented_control(key="ca_worst_by").set_value("alerts"),
        "open_worst_call": lambda: at.selectbox(key="ca_worst_select").set_value(at.selectbox(key="ca_worst_select").options[0]),
        "clear_filters": lambda: (
            at.multiselect(key="ca_queues").set_value([]),
            at.multiselect(key="ca_agents").set_value([]),
            at.date_input(key="ca_period").set_value(period),
        ),
    }
    for name, change in steps.items():
        change()
        t0 = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t0
        if at.exception or at.error:
            raise RuntimeError(f"{name} failed: {[e.value for e in at.exception] + [e.value for e in at.error]}")
        warm = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t0)
        out[name] = {"cold_s": round(cold, 3), "warm_s": round(statistics.median(warm), 3), "warm_max_s": round(max(warm), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--store", help="an existing store to time (default: generate one in a temporary folder)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store
        figures: dict = {}
        if path is None:
            path = str(Path(tmp) / "calls.duckdb")
            figures["generate_s"] = round(generate(path, args.calls), 2)
            print(f"generated {args.calls:,} calls in {figures['generate_s']} s -> {path}")
        figures["queries"] = bench_queries(path, repeat=args.repeat)
        figures["page"] = bench_page(path, repeat=max(3, args.repeat // 2))
    q = figures["queries"]
    print(f"open the store for a batch: median {q['open_ms']['median_ms']} ms")
    for label in ("all", "narrowed"):
        for name, t in q[label].items():
            print(f"  {label:9s} {name:24s} median {t['median_ms']:7.1f} ms   max {t['max_ms']:7.1f} ms")
    print(f"  one call's timeline           median {q['call_timeline']['median_ms']:7.1f} ms")
    p = figures["page"]
    print(f"page first run (cold): {p['first_run_s']} s")
    for name, t in p.items():
        if isinstance(t, dict):
            print(f"  {name:18s} cold {t['cold_s']:.3f} s   warm {t['warm_s']:.3f} s (max {t['warm_max_s']:.3f})")
    worst_query = max(t["max_ms"] for label in ("all", "narrowed") for t in q[label].values())
    worst_warm = max(t["warm_s"] for t in p.values() if isinstance(t, dict))
    print(f"slowest query {worst_query} ms (target 200); slowest warm interaction {worst_warm} s (target 1)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
