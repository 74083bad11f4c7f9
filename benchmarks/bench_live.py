"""The live call service under load: concurrent two-party Twilio calls in real time.

Starts ``python -m ser_lib serve`` in its own process, then for each N streams N calls at once with
the simulator (8 kHz mu-law, both tracks, 20 ms frames, real time; the calls start within the
first two seconds, in random order), listening to ``/events`` and sampling ``/metrics``. Per N it
reports:

- **latency** from the end of a window's audio to its final event, p50 / p95 / max: end to end
  (the moment the simulator was due to send the window's last 20 ms frame, to the moment its
  ``window`` event arrived on ``/events``), and as the service measures it (from the arrival of the
  frame, ``latency_s``). A window is final one hop (1 s) after its audio by design (the smoothing
  looks one window ahead), so 1 s is the floor;
- whether the service **keeps up**: the largest processing lag (``ser_call_lag_seconds``) over the
  second half of the run stays under 1 s, and every call's summary arrives within 5 s of its audio's
  end (a backlog that grows fails both);
- the CPU the service used (cores, its analysis processes included), its resident memory (the same),
  and the simulator's own CPU and lateness (it runs on the same two cores);

then searches the largest N that keeps up (above the last N that did, or between the last that did
and the first that did not), gives **memory per active call** (the RSS a run adds over the RSS before
it, per call: the median over the runs), and streams one **long call** (``--long-minutes``, at ``--long-speed`` times
real time: memory does not depend on the pace) sampling the service's RSS.

Usage::

    python benchmarks/make_calls.py --out data/calls          # two-party calls from held-out speakers
    python benchmarks/bench_live.py --calls data/calls [--model models/default] [--n 1 5 10 20 40]
                                    [--seconds 60] [--no-search] [--long-minutes 30] [--json live.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from ser_lib.service.server import free_port
from ser_lib.service.simulator import FRAME, Recording, load_recording, stream_call

ROOT = Path(__file__).resolve().parent.parent


# --- the service process ----------------------------------------------------------------------------


class Service:
    """``python -m ser_lib serve`` on a free port, in its own process."""

    def __init__(self, model: str | None, results: Path, extra: list[str]):
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "ser_lib",
            "serve",
            "--port",
            str(self.port),
            "--results",
            str(results),
            "--max-calls",
            "500",
        ]
        cmd += ["--log-level", "warning", *(["--model", model] if model else []), *extra]
        self.log = open(results / "serve.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.url, self.ws = f"http://127.0.0.1:{self.port}", f"ws://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if json.loads(r.read())["status"] == "ok":
                        return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the service did not start: {(results / 'serve.log').read_text()[-2000:]}") from None
                time.sleep(0.3)

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds of the service's own process (event loop, sockets) and of its analysis processes."""
        m = self.metrics()
        return m["ser_process_cpu_seconds"], sum(v for k, v in m.items() if k.startswith("ser_worker_cpu_seconds"))

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as a dict, with ``rss_total`` (the service and its workers, bytes)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        out["rss_total"] = out["ser_process_resident_memory_bytes"] + sum(
            v for k, v in out.items() if k.startswith("ser_worker_resident_memory_bytes")
        )
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# --- recordings -------------------------------------------------------------------------------------------


def recordings(folder: Path, seconds: float, *, count: int = 8) -> list[Recording]:
    """Up to ``count`` stereo calls of ``folder`` as Twilio payloads, each cut to ``seconds``
    (and a second, shifted, copy of each when there are fewer files than ``count``)."""
    files = sorted(folder.glob("*_stereo.wav"))
    if not files:
        raise SystemExit(f"No *_stereo.wav calls in {folder}: run `python benchmarks/make_calls.py --out {folder}` first.")
    out = []
    frames = int(seconds * 50)
    for shift in (0, 17):
        for f in files:
            rec = load_recording(f)
            tracks = {}
            for t, payloads in rec.tracks.items():
                looped = (payloads[shift:] + payloads[:shift]) * (1 + frames // max(1, len(payloads)))
                tracks[t] = looped[:frames]
            out.append(Recording(f"{f.stem}+{shift}", tracks, frames * FRAME / 8000))
            if len(out) >= count:
                return out
    return out


def long_recording(folder: Path, minutes: float) -> Recording:
    files = sorted(folder.glob("*_stereo.wav"))
    recs = [load_recording(f) for f in files]
    frames = int(minutes * 60 * 50)
    tracks = {t: [] for t in ("outbound", "inbound")}
    while len(tracks["inbound"]) < frames:
        for r in recs:
            for t in tracks:
                tracks[t] += r.tracks[t]
    return Recording(f"{minutes:g}-minute call", {t: p[:frames] for t, p in tracks.items()}, frames * FRAME / 8000)


# --- one load level ----------------------------------------------------------------------------------------


def pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


async def run_level(service: Service, recs: list[Recording], n: int, *, seed: int = 0) -> dict:
    """N concurrent real-time calls: latency, lag, CPU, memory."""
    from websockets.asyncio.client import connect

    rng = random.Random(seed + n)
    events: list[tuple[str, str, float, float | None, float]] = []  # (call, type, end_s, latency_s, received)
    done: set[str] = set()
    samples: list[tuple[float, dict]] = []
    base = service.metrics()
    cpu0, own0, t_start = service.cpu_s(), time.process_time(), time.monotonic()
    rss0 = base["rss_total"]

    async def listen(ws) -> None:
        async for text in ws:
            e = json.loads(text)
            if e["type"] == "window":
                events.append((e["call_id"], "window", e["end_s"], e.get("latency_s"), time.monotonic()))
            elif e["type"] == "call_summary":
                events.append((e["call_id"], "summary", e["duration_s"], None, time.monotonic()))
                done.add(e["call_id"])

    async def sample() -> None:
        while True:
            await asyncio.sleep(2.0)
            samples.append((time.monotonic() - t_start, await asyncio.to_thread(service.metrics)))

    async def one(k: int):
        await asyncio.sleep(rng.uniform(0.0, 2.0))
        return await stream_call(service.ws + "/twilio", recs[k % len(recs)], speed=1.0)

    async with connect(service.ws + "/events", max_size=2**22) as ws:
        listener = asyncio.create_task(listen(ws))
        sampler = asyncio.create_task(sample())
        reports = await asyncio.gather(*(one(k) for k in range(n)))
        ids = {r.call_id for r in reports}
        deadline = time.monotonic() + 60
        while not ids <= done and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        sampler.cancel()
        listener.cancel()
    wall = time.monotonic() - t_start
    main, analysis = (b - a for a, b in zip(cpu0, service.cpu_s(), strict=True))
    own = time.process_time() - own0
    t0 = {r.call_id: r.t0 for r in reports}
    seconds = {r.call_id: r.seconds for r in reports}
    e2e = [recv - (t0[c] + end) for c, kind, end, _, recv in events if kind == "window" and c in t0]
    server = [lat for c, kind, _, lat, _ in events if kind == "window" and c in t0 and lat is not None]
    finish = [recv - (t0[c] + seconds[c]) for c, kind, _, _, recv in events if kind == "summary" and c in t0]
    half = max(s for s, _ in samples) / 2 if samples else 0.0
    lags = [max([v for k, v in m.items() if k.startswith("ser_call_lag_seconds")] or [0.0]) for s, m in samples if s >= half]
    rss = [m["rss_total"] for s, m in samples if s >= half]
    max_lag = max(lags) if lags else 0.0
    keeps_up = bool(max_lag < 1.0 and len(finish) == n and max(finish) < 5.0)
    return {
        "n": n,
        "keeps_up": keeps_up,
        "windows": len(e2e),
        "latency_p50_s": pct(e2e, 50),
        "latency_p95_s": pct(e2e, 95),
        "latency_max_s": round(max(e2e), 3) if e2e else None,
        "server_latency_p50_s": pct(server, 50),
        "server_latency_p95_s": pct(server, 95),
        "max_lag_s": round(max_lag, 3),
        "summary_after_end_max_s": round(max(finish), 3) if finish else None,
        "cpu_cores": round((main + analysis) / wall, 2),
        "cpu_cores_main": round(main / wall, 2),
        "cpu_cores_analysis": round(analysis / wall, 2),
        "simulator_cpu_cores": round(own / wall, 2),
        "rss_idle_mb": round(rss0 / 2**20, 1),
        "rss_mb": round(float(np.median(rss)) / 2**20, 1) if rss else None,
        "mb_per_call": round((float(np.median(rss)) - rss0) / 2**20 / n, 1) if rss else None,
        "simulator_max_late_s": round(max(r.max_send_lag_s for r in reports), 3),
        "errors": sum(len(r.errors) for r in reports),
        "incomplete": sum(not r.complete for r in reports),
        "wall_s": round(wall, 1),
    }


async def run_long(service: Service, rec: Recording, speed: float) -> dict:
    """One long call at ``speed`` x real time; the service's RSS every ~10 s of wall time."""
    samples = []
    task = asyncio.create_task(stream_call(service.ws + "/twilio", rec, speed=speed))
    t_start = time.monotonic()
    while not task.done():
        await asyncio.sleep(5.0)
        m = await asyncio.to_thread(service.metrics)
        lag = max([v for k, v in m.items() if k.startswith("ser_call_lag_seconds")] or [0.0])
        position = (time.monotonic() - t_start) * speed
        samples.append((round(min(position, rec.seconds) / 60, 2), round(m["rss_total"] / 2**20, 1), round(lag, 2)))
    report = task.result()
    return {
        "minutes": rec.seconds / 60,
        "speed": speed,
        "complete": report.complete,
        "wall_s": round(report.wall_s, 1),
        "rss_mb_by_minute": samples,
    }


def mb_per_call(levels: list[dict]) -> float | None:
    """Memory per active call: the median over the runs of (RSS during the run - RSS before it) / N,
    for N >= 5 (a run's own growth, so memory kept from earlier runs does not count)."""
    values = [lv["mb_per_call"] for lv in levels if lv["n"] >= 5 and lv["mb_per_call"] is not None]
    return round(float(np.median(values)), 1) if values else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", default="data/calls", help="folder of NAME_stereo.wav calls (benchmarks/make_calls.py)")
    p.add_argument("--model", help="bundle (default models/default)")
    p.add_argument("--n", type=int, nargs="+", default=[1, 5, 10, 20, 40], help="concurrent calls per run")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each call (default 60)")
    p.add_argument("--no-search", action="store_true", help="do not search the largest N that keeps up")
    p.add_argument("--max-search-runs", type=int, default=3)
    p.add_argument("--long-minutes", type=float, default=30.0, help="the long call's length (0: none)")
    p.add_argument("--long-speed", type=float, default=10.0, help="the long call's pace (x real time)")
    p.add_argument("--serve-args", default="", help="extra options for serve, e.g. '--complete-chunks'")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    folder = Path(args.calls)
    recs = recordings(folder, args.seconds)
    load = os.getloadavg()[0]
    print(
        f"{len(recs)} recordings of {args.seconds:g} s from {folder}; load average {load:.2f} on {os.cpu_count()} cores",
        flush=True,
    )
    results: dict = {"levels": [], "load_average_start": os.getloadavg()[0], "cores": os.cpu_count(), "seconds": args.seconds}
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp:
        service = Service(args.model, Path(tmp), args.serve_args.split())
        try:
            tried: dict[int, dict] = {}

            def run(n: int) -> dict:
                level = asyncio.run(run_level(service, recs, n))
                level["load_average"] = round(os.getloadavg()[0], 2)
                tried[n] = level
                results["levels"].append(level)
                print(json.dumps(level), flush=True)
                return level

            for n in args.n:
                run(n)
            if not args.no_search:
                for _ in range(args.max_search_runs):
                    good = max((n for n, lv in tried.items() if lv["keeps_up"]), default=0)
                    bad = min((n for n, lv in tried.items() if not lv["keeps_up"] and n > good), default=None)
                    nxt = good + 10 if bad is None else (good + bad) // 2
                    if nxt in tried or nxt <= good or (bad is not None and bad - good <= 2):
                        break
                    run(nxt)
            results["largest_n_keeping_up"] = max((n for n, lv in tried.items() if lv["keeps_up"]), default=0)
            results["mb_per_call"] = mb_per_call(results["levels"])
            if args.long_minutes > 0:
                results["long_call"] = asyncio.run(run_long(service, long_recording(folder, args.long_minutes), args.long_speed))
                print(json.dumps(results["long_call"]), flush=True)
        finally:
            service.stop()
    results["load_average_end"] = os.getloadavg()[0]
    print(f"largest N keeping up: {results['largest_n_keeping_up']}; memory per active call: {results['mb_per_call']} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
