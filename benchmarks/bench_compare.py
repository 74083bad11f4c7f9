"""Before and after, side by side: the restructuring's targets measured on two trees in one run.

Every measurement runs in a fresh process with ``cwd`` and ``PYTHONPATH`` set to the tree measured
(``--before``, ``--after``), so each imports its own ``ser_lib``; the measuring code is the same for
both (``benchmarks/compare_child.py``, started from the folder of this script). Runs alternate
between the trees, the order flipping every round (before, after, after, before, ...), so load drift
on a shared machine hits both. One table at the end: figure, before, after, after/before, target,
result. A tree that fails a measurement gets a line saying why, not a crash.

Figures:

1. predict: ``ModelBundle.load("models/default")`` time, median and p90 of warm
   ``.predict(y, sr=16000)`` on a 3 s clip (a RAVDESS clip cut/padded), and the peak RSS (``VmHWM``)
   and wall time of a fresh ``python -m ser_lib predict CLIP`` (run through ``runpy`` as ``-m`` does,
   so its own ``/proc/self/status`` gives the peak: no parent pages counted).
2. calls: peak RSS of a fresh ``python -m ser_lib analyze-call CALL`` on a 2-hour stereo 8 kHz mu-law
   call, and the real-time factor of ``analyze_call`` timed in-process on a 10-minute 16 kHz stereo
   call after a 20 s warm-up call (bundle loaded as ``analyze-call`` loads it). Calls are built once,
   by the before tree's ``benchmarks/bench_calls.long_call_file`` (the old benchmark's own calls,
   from held-out speakers' clips), else by a small generator in ``compare_child.py``.
3. app: ``streamlit run Home.py`` cold to Home rendered, and Predict with the model warm: a 5 s clip
   from upload to rendered prediction (headless Chromium through Playwright, as ``bench_app.py``).

Usage::

    python benchmarks/bench_compare.py --before /path/to/old/tree [--after .] [--only predict calls app]
                                       [--quick] [--json OUT] [--calls-dir DIR] [--tolerance 0.0]

``--quick``: a 20-minute memory call, a 3-minute speed call, fewer repeats (about 10 minutes on
2 cores); the full run (2-hour and 10-minute calls) takes about half an hour.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = HERE / "compare_child.py"
SIDES = ("before", "after")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUNNING = '[data-testid="stStatusWidget"]'
PAGE_ERROR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
PREDICT_TARGET_MS = 38.7
CALL_MEMORY_TARGET_MB = 551.0

# The call builder run in the before tree: the old benchmark's own long-call writer.
BUILD_CALL = """
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import bench_calls
out, seconds, corpora, seed, name, subtype, sr = sys.argv[1:]
bench_calls.long_call_file(Path(out), seconds=float(seconds), corpora=corpora, model=None, seed=int(seed),
                           name=name, subtype=subtype, sr=int(sr))
"""


class Failed(Exception):
    """A measurement that did not produce a figure; the message goes into the table."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


@dataclass
class Runner:
    trees: dict[str, Path]
    corpora: Path
    tmp: Path
    failed: dict = field(default_factory=dict)  # (side, measure) -> message
    raw: dict = field(default_factory=lambda: {s: {} for s in SIDES})
    notes: list = field(default_factory=list)
    _n: int = 0

    def env(self, side: str) -> dict:
        tree = self.trees[side]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SER_MODEL", "SER_MODELS_DIR")}
        env.update(
            PYTHONPATH=str(tree),
            SER_MODEL=str(tree / "models" / "default"),
            SER_MODELS_DIR=str(tree / "models"),
            SER_DATA_DIR=str(self.corpora),
            SER_SHARED_CORPORA=str(self.corpora),
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        return env

    def child(self, side: str, args: list[str], *, timeout: float, code: str | None = None) -> dict:
        """Run ``compare_child.py ARGS`` (or ``-c code ARGS``) in ``side``'s tree; its JSON result."""
        self._n += 1
        out = self.tmp / f"result{self._n}.json"
        if code is None:
            cmd = [sys.executable, str(CHILD), "--out", str(out), "--corpora", str(self.corpora), *args]
        else:
            cmd = [sys.executable, "-c", code, *args]
        load = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=self.trees[side],
            env=self.env(side),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise Failed(f"timed out after {timeout:.0f} s") from None
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise Failed(_last_line(stderr) or _last_line(stdout) or f"exit status {proc.returncode}")
        if code is not None:
            return {"wall_total_s": wall, "stdout": stdout[-2000:]}
        result = json.loads(out.read_text())
        result["wall_total_s"] = wall
        result["load_average_1min"] = load
        if result.get("exit_code"):
            raise Failed(f"exit status {result['exit_code']}: {_last_line(stderr) or _last_line(stdout)}")
        where = result.get("ser_lib")
        if where and not Path(where).resolve().is_relative_to(self.trees[side].resolve()):
            raise Failed(f"imported ser_lib from {where}, not from {self.trees[side]}")
        return result

    def measure(self, side: str, measure: str, fn) -> dict | None:
        """``fn()`` once for ``side``, its result kept under ``measure``; after a failure the side is skipped."""
        if (side, measure) in self.failed:
            return None
        try:
            r = fn()
        except Failed as exc:
            self.failed[(side, measure)] = str(exc)
            log(f"  [{side}] {measure}: FAILED: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - any error becomes a line in the table
            self.failed[(side, measure)] = f"{type(exc).__name__}: {exc}"[:300]
            log(f"  [{side}] {measure}: FAILED: {type(exc).__name__}: {exc}")
            return None
        self.raw[side].setdefault(measure, []).append(r)
        return r

    def values(self, side: str, measure: str, key) -> list[float]:
        """``key`` (a field, or a function of one result) over every kept result of ``measure``."""
        return [v for r in self.raw[side].get(measure, []) for v in field_values(r, key)]


def field_values(result: dict, key) -> list:
    v = key(result) if callable(key) else result.get(key)
    return v if isinstance(v, list) else ([v] if v is not None else [])


def order(r: int) -> tuple[str, str]:
    return SIDES if r % 2 == 0 else SIDES[::-1]


# --- 1. predict ------------------------------------------------------------------------------------------


def section_predict(run: Runner, *, rounds: int, repeat: int) -> None:
    files = sorted((run.corpora / "ravdess").glob("Actor_*/*"))
    if files:
        clip = files[0]
    else:  # no corpora: a generated clip, written once for both trees
        import numpy as np
        import soundfile as sf

        t = np.arange(3 * 16_000) / 16_000
        clip = run.tmp / "clip.wav"
        sf.write(clip, (0.3 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype("float32"), 16_000)
    log(f"predict: {rounds} rounds per tree, {repeat} warm predictions of a 3 s clip; CLI on {clip.name}")
    for r in range(rounds):
        for side in order(r):
            res = run.measure(
                side,
                "predict",
                lambda side=side: run.child(side, ["predict-latency", "--seconds", "3", "--repeat", str(repeat)], timeout=600),
            )
            if res:
                log(f"  [{side}] load {res['load_s']:.2f} s, warm median {1000 * statistics.median(res['warm_s']):.1f} ms")
            res = run.measure(side, "predict_cli", lambda side=side: run.child(side, ["cli", "predict", str(clip)], timeout=600))
            if res:
                log(f"  [{side}] predict CLI: peak RSS {res['peak_rss_mb']:.0f} MB, {res['wall_total_s']:.1f} s")


# --- 2. calls --------------------------------------------------------------------------------------------


def build_call(run: Runner, folder: Path, *, minutes: float, name: str, seed: int, subtype: str, sr: int) -> Path:
    """Build a call once (reused when ``folder`` already holds it), with the before tree's writer."""
    path = folder / f"{name}.wav"
    if path.is_file():
        log(f"  reusing {path}")
        return path
    t = time.perf_counter()
    try:
        run.child(
            "before",
            [str(folder), str(minutes * 60), str(run.corpora), str(seed), name, subtype, str(sr)],
            timeout=1800,
            code=BUILD_CALL,
        )
        how = "the before tree's bench_calls.long_call_file"
    except Failed as exc:
        log(f"  the before tree's call writer failed ({exc}); using compare_child's generator")
        path.unlink(missing_ok=True)
        run.child(
            "before",
            ["make-call", str(path), "--seconds", str(minutes * 60), "--sr", str(sr), "--subtype", subtype, "--seed", str(seed)],
            timeout=1800,
        )
        how = "compare_child.py make-call (corpus clips, alternating channels)"
    run.notes.append(f"{name}.wav ({minutes:g} min, {sr} Hz {subtype} stereo): built by {how}")
    log(f"  built {path.name} ({minutes:g} min) in {time.perf_counter() - t:.0f} s")
    return path


def section_calls(run: Runner, *, folder: Path, memory_minutes: float, speed_minutes: float, rounds: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    log(f"calls: building a {memory_minutes:g}-minute 8 kHz mu-law call and a {speed_minutes:g}-minute 16 kHz call in {folder}")
    try:
        mem = build_call(run, folder, minutes=memory_minutes, name=f"mem{memory_minutes:g}", seed=7, subtype="ULAW", sr=8000)
        speed = build_call(
            run, folder, minutes=speed_minutes, name=f"speed{speed_minutes:g}", seed=1, subtype="PCM_16", sr=16_000
        )
    except Failed as exc:
        for side in SIDES:
            run.failed[(side, "call_memory")] = run.failed[(side, "call_speed")] = f"no call to analyse: {exc}"
        return
    timeout = max(600, 0.5 * memory_minutes * 60)  # RTF 0.5 would already be 40 times the target
    for r in range(1):  # one 2-hour run per tree: minutes each, and the peak varies little
        for side in order(r):
            res = run.measure(
                side, "call_memory", lambda side=side: run.child(side, ["cli", "analyze-call", str(mem)], timeout=timeout)
            )
            if res:
                log(
                    f"  [{side}] analyze-call {memory_minutes:g} min: peak RSS {res['peak_rss_mb']:.0f} MB, "
                    f"{res['wall_total_s']:.0f} s"
                )
    for r in range(rounds):
        for side in order(r):
            res = run.measure(
                side,
                "call_speed",
                lambda side=side: run.child(side, ["call-speed", str(speed)], timeout=max(600, speed_minutes * 60)),
            )
            if res:
                log(
                    f"  [{side}] RTF {res['rtf']:.4f} ({res['wall_s']:.1f} s for {res['call_s'] / 60:.1f} min; "
                    f"{res['loader']}, {res['analyze_call']}.analyze_call)"
                )


# --- 3. app ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, server: subprocess.Popen, log_path: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise Failed(f"streamlit exited ({server.returncode}): {_last_line(log_path.read_text(errors='replace'))}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise Failed(f"streamlit did not answer within {timeout:.0f} s")


def wait_rendered(page, selector: str, *, charts: int = 0, timeout_ms: float = 120_000, state: str = "visible") -> None:
    """``selector`` on the page (or a Streamlit error: Failed), ``charts`` plotly charts drawn, and no
    running indicator."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector(f"{selector}, {PAGE_ERROR}", timeout=timeout_ms, state=state)
        if not page.locator(selector).count():
            text = page.locator(PAGE_ERROR).first.inner_text(timeout=5000)
            raise Failed(f"the page shows an error: {' '.join(text.split('Traceback')[0].split())[:250]}")
        if charts:
            page.wait_for_function(
                f"document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= {charts}", timeout=timeout_ms
            )
        page.wait_for_selector(RUNNING, state="detached", timeout=timeout_ms)
    except PlaywrightTimeout as exc:
        raise Failed(f"waiting for {selector}: {str(exc).splitlines()[0]}") from None


def app_clips(corpora: Path, n: int) -> list[bytes]:
    """``n`` different 5 s clips as WAV bytes (RAVDESS clips padded by repetition, else tones)."""
    import numpy as np
    import soundfile as sf

    files = sorted((corpora / "ravdess").glob("Actor_*/*"))
    out = []
    for i in range(n):
        if files:
            y, sr = sf.read(str(files[(i + 1) % len(files)]), dtype="float32", always_2d=True)
            y = np.resize(y.mean(axis=1), 5 * sr)
        else:
            sr = 16_000
            t = np.arange(5 * sr) / sr
            y = (0.3 * np.sin(2 * np.pi * (120 + 17 * i) * t)).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, y, sr, format="WAV")
        out.append(buf.getvalue())
    return out


def app_round(run: Runner, side: str, browser, clips: list[bytes], r: int) -> None:
    """One server of ``side``'s tree: Home cold (measure ``app_home``), then Predict (``app_predict``)."""
    if (side, "app_home") in run.failed or (side, "app_predict") in run.failed:
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = run.tmp / f"streamlit_{side}_{r}.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port", str(port)]
    cmd += ["--browser.gatherUsageStats", "false"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with open(log_path, "w") as logf:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        server = subprocess.Popen(
            cmd, cwd=run.trees[side], env=run.env(side), stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )

        def home() -> dict:
            wait_healthy(port, server, log_path, 120)
            page.goto(url + "/")
            wait_rendered(page, 'h3:has-text("Where next")')
            return {"home_cold_s": time.perf_counter() - t0, "load_average_1min": load}

        def predict() -> dict:
            page.goto(url + "/Predict")
            wait_rendered(page, '[data-testid="stFileUploaderDropzoneInput"]', state="attached")
            out: dict = {"predict_warm_s": []}
            for i, data in enumerate(clips):  # the first upload loads the model: counted apart
                delete = page.locator('[data-testid="stFileChipDeleteBtn"] button')
                if delete.count():
                    delete.first.click()
                    wait_rendered(page, '[data-testid="stAlertContentInfo"]:has-text("Upload a clip")')
                name = f"clip{r}_{i}.wav"
                t = time.perf_counter()
                upload = {"name": name, "mimeType": "audio/wav", "buffer": data}
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(upload)
                wait_rendered(page, f'h3:has-text("{name}")', charts=2)
                if i:
                    out["predict_warm_s"].append(time.perf_counter() - t)
                else:
                    out["predict_first_s"] = time.perf_counter() - t
            return out

        try:
            res = run.measure(side, "app_home", home)
            if not res:
                run.failed.setdefault((side, "app_predict"), "not measured: Home failed")
            else:
                log(f"  [{side}] Home cold {res['home_cold_s']:.2f} s")
                if res := run.measure(side, "app_predict", predict):
                    warm = statistics.median(res["predict_warm_s"])
                    log(f"  [{side}] Predict first {res['predict_first_s']:.2f} s, warm median {warm:.2f} s")
        finally:
            page.close()
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def section_app(run: Runner, *, rounds: int, predictions: int) -> None:
    if not Path(CHROMIUM).exists():
        for side in SIDES:
            run.failed[(side, "app_home")] = run.failed[(side, "app_predict")] = (
                f"{CHROMIUM} not found (apt-get install chromium)"
            )
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        for side in SIDES:
            run.failed[(side, "app_home")] = run.failed[(side, "app_predict")] = f"playwright missing: {exc}"
        return
    clips = app_clips(run.corpora, predictions + 1)
    log(
        f"app: {rounds} rounds per tree: cold start to Home, then Predict on {predictions} 5 s clips "
        "after a first (model-loading) one"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for r in range(rounds):
                for side in order(r):
                    app_round(run, side, browser, clips, r)
        finally:
            browser.close()


# --- the table -------------------------------------------------------------------------------------------


@dataclass
class Figure:
    section: str
    label: str
    measure: str
    key: object  # result field, or function of one result
    fmt: str
    stat: str = "median"  # median, p90, max, any
    target: tuple = ()  # ("max", value): after <= value; ("below",): after < before; ("no_worse",): after <= before
    spread: bool = True  # show [min-max] over runs


def stat(values: list, how: str):
    if not values:
        return None
    if how == "any":
        return "yes" if any(values) else "no"
    if how == "p90":
        v = sorted(values)
        return v[max(0, int(round(0.9 * len(v))) - 1)]
    if how == "max":
        return max(values)
    return statistics.median(values)


def figures(memory_minutes: float, speed_minutes: float) -> list[Figure]:
    mem_label = f"peak RSS, analyze-call, {memory_minutes:g}-min 8 kHz mu-law stereo (MB)"
    return [
        Figure("predict", "model load, ModelBundle.load (s)", "predict", "load_s", ".2f"),
        Figure(
            "predict",
            "warm predict, 3 s clip, median (ms)",
            "predict",
            lambda r: [1000 * x for x in r["warm_s"]],
            ".1f",
            target=("max", PREDICT_TARGET_MS),
            spread=False,
        ),
        Figure(
            "predict",
            "warm predict, 3 s clip, p90 (ms)",
            "predict",
            lambda r: [1000 * x for x in r["warm_s"]],
            ".1f",
            stat="p90",
            spread=False,
        ),
        Figure("predict", "peak RSS, `python -m ser_lib predict` (MB)", "predict_cli", "peak_rss_mb", ".0f", target=("below",)),
        Figure("predict", "wall, `python -m ser_lib predict` (s)", "predict_cli", "wall_total_s", ".2f"),
        Figure("predict", "TensorFlow imported by `predict`", "predict_cli", "tensorflow_loaded", "", stat="any"),
        Figure("calls", mem_label, "call_memory", "peak_rss_mb", ".0f", stat="max", target=("max", CALL_MEMORY_TARGET_MB)),
        Figure("calls", f"wall, analyze-call, {memory_minutes:g}-min call (s)", "call_memory", "wall_total_s", ".0f"),
        Figure(
            "calls",
            f"real-time factor, {speed_minutes:g}-min stereo call, in-process",
            "call_speed",
            "rtf",
            ".4f",
            target=("no_worse",),
        ),
        Figure("calls", "TensorFlow imported by analyze-call", "call_memory", "tensorflow_loaded", "", stat="any"),
        Figure("app", "cold `streamlit run` to Home rendered (s)", "app_home", "home_cold_s", ".2f", target=("no_worse",)),
        Figure(
            "app",
            "Predict warm, 5 s clip, upload to rendered (s)",
            "app_predict",
            "predict_warm_s",
            ".2f",
            target=("no_worse",),
            spread=False,
        ),
        Figure("app", "Predict first (model load), 5 s clip (s)", "app_predict", "predict_first_s", ".2f"),
    ]


def build_table(run: Runner, figs: list[Figure], sections: list[str], tolerance: float) -> list[dict]:
    rows = []
    for f in figs:
        if f.section not in sections:
            continue
        row = {"section": f.section, "figure": f.label}
        vals, per_run = {}, {}
        for side in SIDES:
            if (side, f.measure) in run.failed:
                row[side] = "FAILED"
                continue
            v = run.values(side, f.measure, f.key)
            vals[side] = stat(v, f.stat)
            per_run[side] = [stat(field_values(r, f.key), f.stat) for r in run.raw[side].get(f.measure, [])]
            row[f"{side}_values"] = v
            if vals[side] is None:
                row[side] = "-"
            elif isinstance(vals[side], str):
                row[side] = vals[side]
            else:
                n = len(run.raw[side].get(f.measure, []))
                spread = f" [{min(v):{f.fmt}}-{max(v):{f.fmt}}]" if n > 1 and f.stat == "median" and f.spread else ""
                row[side] = f"{vals[side]:{f.fmt}}{spread}"
                row[f"{side}_value"] = vals[side]
        b, a = vals.get("before"), vals.get("after")
        numeric = isinstance(a, (int, float)) and isinstance(b, (int, float))
        row["ratio"] = f"{a / b:.2f}" if numeric and b else "-"
        kind = f.target[0] if f.target else None
        if kind == "max":
            row["target"] = f"<= {f.target[1]:g}"
            ok = None if not isinstance(a, (int, float)) else a <= f.target[1]
        elif kind == "below":
            row["target"] = "< 0.99 x before"  # lower by more than rounding
            ok = None if not numeric else a < 0.99 * b
        elif kind == "no_worse":
            row["target"] = "<= before" + (f" (+{100 * tolerance:g}%)" if tolerance else "")
            ok = None if not numeric else a <= b * (1 + tolerance)
        else:
            row["target"], ok = "-", None
        row["result"] = "-" if not kind else ("n/a" if ok is None else ("pass" if ok else "FAIL"))
        if kind == "max" and ok is False and isinstance(b, (int, float)) and b > f.target[1]:
            row["result"] = "FAIL (before too)"  # the machine is slower now than when the target was set
        rb, ra = per_run.get("before", []), per_run.get("after", [])
        if kind in ("below", "no_worse") and ok is not None and len(rb) > 1 and len(ra) > 1:
            if min(ra) <= max(rb) and min(rb) <= max(ra):
                row["result"] += " (overlap)"  # per-run figures of the two trees overlap: within run-to-run noise
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    cols = [
        ("figure", "figure"),
        ("before", "before"),
        ("after", "after"),
        ("ratio", "after/before"),
        ("target", "target"),
        ("result", "result"),
    ]
    width = {k: max(len(h), *(len(str(r.get(k, ""))) for r in rows)) for k, h in cols}
    line = "  ".join(f"{h:<{width[k]}}" for k, h in cols)
    print(line)
    print("-" * len(line))
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            print(f"[{section}]")
        print("  ".join(f"{str(r.get(k, '')):<{width[k]}}" for k, _ in cols))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--before", required=True, help="tree with the old code (e.g. a git worktree at the old commit)")
    p.add_argument("--after", default=str(HERE.parent), help="tree with the new code (default: this script's tree)")
    p.add_argument("--only", nargs="+", choices=("predict", "calls", "app"), default=["predict", "calls", "app"])
    p.add_argument("--quick", action="store_true", help="20-minute memory call, 3-minute speed call, fewer repeats")
    p.add_argument("--json", metavar="OUT", help="write every figure and raw measurement to OUT")
    p.add_argument(
        "--corpora",
        default=os.environ.get("SER_SHARED_CORPORA") or str(HERE.parent.parent / "shared" / "corpora"),
        help="corpora folder (default $SER_SHARED_CORPORA, else ../shared/corpora)",
    )
    p.add_argument("--calls-dir", help="keep the built calls here and reuse them on the next run (default: a temporary folder)")
    p.add_argument(
        "--tolerance", type=float, default=0.0, help="share by which 'no worse than before' figures may exceed before (default 0)"
    )
    args = p.parse_args(argv)

    trees = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    for side, tree in trees.items():
        if not (tree / "ser_lib").is_dir():
            p.error(f"--{side} {tree}: no ser_lib package there")
    quick = args.quick
    memory_minutes, speed_minutes = (20.0, 3.0) if quick else (120.0, 10.0)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()} ({sys.executable})"
    log(f"before: {trees['before']}\nafter:  {trees['after']}\nmachine: {machine}, load average {load_start[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_compare_"))
    run = Runner(trees=trees, corpora=Path(args.corpora).resolve(), tmp=tmp)
    try:
        if "predict" in args.only:
            section_predict(run, rounds=2 if quick else 3, repeat=20 if quick else 30)
        if "calls" in args.only:
            folder = Path(args.calls_dir) if args.calls_dir else tmp / "calls"
            section_calls(run, folder=folder, memory_minutes=memory_minutes, speed_minutes=speed_minutes, rounds=3)
        if "app" in args.only:
            section_app(run, rounds=2 if quick else 3, predictions=3 if quick else 5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - t_start
    load_end = os.getloadavg()

    rows = build_table(run, figures(memory_minutes, speed_minutes), args.only, args.tolerance)
    print(f"\nBefore: {trees['before']}\nAfter:  {trees['after']}")
    print(
        f"{machine}; load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; {elapsed / 60:.1f} min"
        + ("; --quick" if quick else "")
    )
    print("Values: median over runs [min-max] (warm predict: over all predictions of all rounds); runs alternate before/after.\n")
    print_table(rows)
    print(
        "(overlap): the per-run figures of before and after overlap, so the difference is within this machine's "
        "run-to-run noise; (before too): the before tree misses the absolute target on this machine now as well."
    )
    if run.failed:
        print("\nFailures:")
        for (side, measure), msg in sorted(run.failed.items(), key=lambda kv: (kv[0][1], SIDES.index(kv[0][0]))):
            print(f"  {side} {measure}: {msg}")
    notes = list(run.notes)
    for side in SIDES:
        speed = run.raw[side].get("call_speed")
        if speed:
            notes.append(
                f"{side}: RTF timed around {speed[0]['analyze_call']}.analyze_call with the bundle from "
                f"{speed[0]['loader']}, after a 20 s warm-up call"
            )
    if quick and "calls" in args.only:
        notes.append(
            f"--quick: the memory target ({CALL_MEMORY_TARGET_MB:g} MB) was set on a 2-hour call; "
            f"here a {memory_minutes:g}-minute one"
        )
    if notes:
        print("\nNotes:")
        for n in notes:
            print(f"  {n}")
    if args.json:
        report = {
            "before": str(trees["before"]),
            "after": str(trees["after"]),
            "machine": machine,
            "quick": quick,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "elapsed_s": elapsed,
            "table": rows,
            "failed": {f"{s} {m}": msg for (s, m), msg in run.failed.items()},
            "notes": notes,
            "raw": run.raw,
        }
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
