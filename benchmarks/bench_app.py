"""How fast the app feels in a real browser: headless Chromium (Playwright) against ``streamlit run``.

Targets (issue #3):

- Home served and rendered within 5 s of a cold ``streamlit run``; 1 s warm.
- Predict: a 5 s clip from upload to the rendered prediction in under 1 s, model warm.
- Datasets with all four corpora (about 11,000 files): under 3 s warm.

"Rendered" means the page's last element is on screen, its plotly charts are drawn and
Streamlit's running indicator is gone. Usage::

    python benchmarks/bench_app.py [--data ../shared/corpora] [--model models/default] [--repeat 5]

Without ``--model`` it uses ``models/default`` if present, else an untrained notebook CNN made
for the run (prediction cost then excludes the Whisper encoder: the figures say which).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port", str(port)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_healthy(port: int, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"streamlit did not answer on port {port} within {timeout} s")


def wait_rendered(page, *, selector: str, charts: int = 0, timeout: float = 60_000, state: str = "visible") -> None:
    """Wait for ``selector``, ``charts`` drawn plotly charts, and no running indicator."""
    page.wait_for_selector(selector, timeout=timeout, state=state)
    if charts:
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= {charts}", timeout=timeout
        )
    page.wait_for_selector(RUNNING, state="detached", timeout=timeout)


def tone(seconds: float, f0: float) -> bytes:
    sr = 16_000
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    y = (0.5 * y / np.max(np.abs(y)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


def tiny_model(folder: Path) -> Path:
    from ser_lib.bundle import ModelBundle
    from ser_lib.config import EMOTIONS
    from ser_lib.frontends import NotebookFrontEnd
    from ser_lib.models import notebook_cnn1d

    bundle = ModelBundle.create(
        notebook_cnn1d(num_classes=8),
        name="bench",
        model_type="notebook_cnn1d",
        labels=list(EMOTIONS),
        frontend=NotebookFrontEnd(),
    )
    return bundle.save(folder / "bench")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "corpora"), help="corpora folder (default ../shared/corpora)")
    ap.add_argument("--model", default=None, help="bundle folder (default models/default, else an untrained tiny model)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    model = Path(args.model) if args.model else ROOT / "models" / "default"
    note = ""
    if not (model / "card.json").is_file():
        model, note = tiny_model(tmp / "models"), " (untrained notebook CNN: no Whisper encoder in the path)"
    env = {
        **os.environ,
        "SER_DATA_DIR": str(Path(args.data).resolve()),
        "SER_MODEL": str(model.resolve()),
        "SER_MODELS_DIR": str(model.resolve().parent),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    results: dict[str, float | list[float]] = {}

    def new_tab():
        return browser.new_page(viewport={"width": 1400, "height": 1000})

    def timed_new_tab(base: str, path: str, **wait) -> float:
        page = new_tab()
        t = time.perf_counter()
        page.goto(base + path)
        wait_rendered(page, **wait)
        page.close()
        return time.perf_counter() - t

    home = dict(selector="text=Where next")
    datasets = dict(selector='h1:has-text("Datasets")', charts=3)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # the floor: an app that only writes a title, on this machine, now
        hello = tmp / "hello"
        hello.mkdir()
        (hello / "app.py").write_text("import streamlit as st\nst.title('Hello')\n")
        hport = free_port()
        t0 = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(hport)],
            cwd=hello, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(hport)
            timed_new_tab(f"http://127.0.0.1:{hport}", "/", selector="h1")
            results["baseline_cold"] = time.perf_counter() - t0
            results["baseline"] = [timed_new_tab(f"http://127.0.0.1:{hport}", "/", selector="h1") for _ in range(args.repeat)]
        finally:
            server.terminate()
            server.wait(10)

        t0 = time.perf_counter()
        server = start_server(port, env)
        try:
            wait_healthy(port)
            page = new_tab()
            page.goto(url + "/")
            wait_rendered(page, **home)
            results["home_cold"] = time.perf_counter() - t0
            page.close()
            results["home_warm"] = [timed_new_tab(url, "/", **home) for _ in range(args.repeat)]

            results["datasets_cold"] = timed_new_tab(url, "/Datasets", **datasets)
            results["datasets_tab"] = [timed_new_tab(url, "/Datasets", **datasets) for _ in range(args.repeat)]
            # moving between pages in one tab, as a user does: Home -> Datasets by the sidebar
            page = new_tab()
            page.goto(url + "/Datasets")
            wait_rendered(page, **datasets)
            nav = []
            for _ in range(args.repeat):
                page.locator('[data-testid="stSidebarNav"] a').first.click()
                wait_rendered(page, **home)
                t = time.perf_counter()
                page.locator('[data-testid="stSidebarNav"] a', has_text="Datasets").click()
                wait_rendered(page, **datasets)
                nav.append(time.perf_counter() - t)
            results["datasets_warm"] = nav
            files = int(page.locator('[data-testid="stMetricValue"]').first.inner_text().replace(",", ""))
            switch = []
            for _ in range(2):  # the first time also decodes the clip and JIT-compiles librosa's features
                t = time.perf_counter()
                page.get_by_role("radio", name="Files").click()
                wait_rendered(page, selector='[data-testid="stAudio"]', charts=3)
                switch.append(time.perf_counter() - t)
                page.get_by_role("radio", name="Overview").click()
                wait_rendered(page, selector='[data-testid="stRadio"]', charts=3)
            results["datasets_files_first"], results["datasets_files_view"] = switch

            # Predict in the same tab: remove the last clip, upload the next one (a new clip each time)
            page.locator('[data-testid="stSidebarNav"] a', has_text="Predict").click()
            wait_rendered(page, selector='[data-testid="stFileUploaderDropzoneInput"]', state="attached")
            times = []
            for i in range(args.repeat + 1):  # the first upload loads the model
                delete = page.locator('[data-testid="stFileChipDeleteBtn"] button')
                if delete.count():
                    delete.first.click()
                    wait_rendered(page, selector="text=Upload a clip or record one")
                name = f"clip{i}.wav"
                payload = {"name": name, "mimeType": "audio/wav", "buffer": tone(5.0, 120.0 + 17 * i)}
                t = time.perf_counter()
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(payload)
                wait_rendered(page, selector=f'h3:has-text("{name}")', charts=2)
                if i:
                    times.append(time.perf_counter() - t)
            results["predict_5s_clip"] = times
        finally:
            server.terminate()
            server.wait(10)
            browser.close()

    def med(v):
        return statistics.median(v) if isinstance(v, list) else v

    print(
        f"Browser benchmark (headless Chromium, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}), "
        f"data: {args.data} ({files:,} files), model: {model}{note}"
    )
    targets = {"home_cold": 5.0, "home_warm": 1.0, "datasets_warm": 3.0, "predict_5s_clip": 1.0}
    labels = {
        "baseline_cold": "Floor: a one-line Streamlit app, cold start",
        "baseline": "Floor: a one-line Streamlit app, new tab",
        "home_cold": "Home, cold `streamlit run` to rendered",
        "home_warm": "Home, warm server, new tab",
        "datasets_cold": "Datasets, first visit, new tab (scans the folder)",
        "datasets_tab": "Datasets, warm, new tab",
        "datasets_warm": "Datasets, warm, from Home in the same tab",
        "datasets_files_first": "Datasets, file table + first clip, first time",
        "datasets_files_view": "Datasets, file table + first clip, again",
        "predict_5s_clip": "Predict, 5 s clip upload to rendered prediction",
    }
    for key, label in labels.items():
        v = results[key]
        spread = f" (min {min(v):.2f}, max {max(v):.2f}, n={len(v)})" if isinstance(v, list) else ""
        target = f"  target < {targets[key]:.0f} s: {'met' if med(v) < targets[key] else 'MISSED'}" if key in targets else ""
        print(f"  {label:<50} {med(v):6.2f} s{spread}{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
