"""The Live calls wallboard in a real browser: headless Chromium (Playwright) against ``streamlit run
Home.py``, reading a running test service that holds one finished call and one streamed in real time.

The page must show the calls, follow the call in progress as its audio arrives (the fragment
refreshes in place: the page is not reloaded), draw the chosen call's timeline, and say how to
start a service when the address it reads answers nothing. Skipped when ``/usr/bin/chromium`` is absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from call_audio import SR, make_call, tiny_bundle
from ser_lib.service import ServiceSettings
from ser_lib.service.server import BackgroundServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 2000}
TIMEOUT_MS = 90_000
TURNS = [
    ("agent", "neutral", 0.5, 3.5),
    ("customer", "angry", 4.6, 6.0),
    ("agent", "neutral", 11.0, 3.0),
    ("customer", "neutral", 15.0, 40.0),
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run browser tests",
    ),
]


async def _stream(url: str, call_id: str, x: np.ndarray, *, pace: bool, stop: threading.Event | None = None) -> None:
    """Stream ``x`` (16 kHz stereo) to ``/stream`` in 100 ms frames, in real time if ``pace``."""
    start = {"sample_rate": SR, "channels": 2, "encoding": "pcm_s16le", "parties": ["agent", "customer"], "call_id": call_id}
    data = np.round(x.T * 32768).clip(-32768, 32767).astype("<i2").tobytes()
    step = SR // 10 * 4
    async with connect(url + "/stream") as ws:
        await ws.send(json.dumps(start))
        t0 = time.monotonic()
        for k, i in enumerate(range(0, len(data), step)):
            if stop is not None and stop.is_set():
                break
            if pace:
                await asyncio.sleep(max(0.0, t0 + k * 0.1 - time.monotonic()))
            await ws.send(data[i : i + step])
        await ws.send('{"event": "stop"}')
        async for _ in ws:
            pass


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    bundle = tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")
    x = make_call(TURNS, total_s=60.0)
    with BackgroundServer(ServiceSettings(results=tmp_path_factory.mktemp("browser_live_results")), bundle=bundle) as server:
        asyncio.run(_stream(server.ws_url, "finished-angry", x[:, : 15 * SR], pace=False))
        stop = threading.Event()
        streamer = threading.Thread(target=lambda: asyncio.run(_stream(server.ws_url, "in-progress", x, pace=True, stop=stop)))
        streamer.start()
        try:
            yield server
        finally:
            stop.set()
            streamer.join(60)


@pytest.fixture(scope="module")
def app_url(service, tmp_path_factory):
    base = tmp_path_factory.mktemp("browser-live-app")
    env = {**os.environ, "SER_SERVICE_URL": service.url, "SER_DATA_DIR": str(base / "no-data")}
    env.pop("SER_SERVICE_TOKEN", None)
    port = free_port()
    log = open(base / "streamlit.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start: {(base / 'streamlit.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _metrics(page) -> dict[str, str]:
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    return {k.strip(): v.strip() for k, v in zip(labels, values, strict=True)}


def _shown_clock(page) -> int:
    """Seconds of the call in progress, as the call picker shows them (``in-progress · active · 00:12``)."""
    text = page.get_by_role("combobox", name="Call").input_value()
    m = re.search(r"in-progress · active · (\d+):(\d+)", text)
    assert m, text
    return 60 * int(m.group(1)) + int(m.group(2))


def test_the_wallboard_follows_a_call_as_it_happens(app_url, browser, tmp_path):
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(app_url + "/Live_calls")
        page.wait_for_selector('h1:has-text("Live calls")', timeout=TIMEOUT_MS)
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=TIMEOUT_MS)
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 1", timeout=TIMEOUT_MS
        )
        assert page.locator('[data-testid="stException"]').count() == 0
        metrics = _metrics(page)
        assert metrics["Active calls"] == "1" and metrics["Calls listed"] == "2", metrics
        page.evaluate("window.__not_reloaded = true")
        first = _shown_clock(page)
        clock = (
            "min => { const box = document.querySelector('input[aria-label=\"Call\"]'); "
            "const m = box && box.value.match(/in-progress · active · (\\d+):(\\d+)/); return m && 60 * +m[1] + +m[2] >= min; }"
        )
        # the fragment refreshed, the call moved on (past the customer's first turn, 4.6-10.6 s)
        page.wait_for_function(clock, arg=max(first + 4, 14), timeout=TIMEOUT_MS)
        assert page.evaluate("window.__not_reloaded === true")  # updated in place, not reloaded
        # the fragment redraws the chart every refresh: wait until a drawn one shows the timeline's titles
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')].some(c => "
            "c.innerText.includes('Emotion over the call') && c.innerText.includes('customer sentiment'))",
            timeout=TIMEOUT_MS,
        )
        page.screenshot(path=str(tmp_path / "live-calls.png"), full_page=True)
        assert (tmp_path / "live-calls.png").stat().st_size > 10_000
        # the finished call with its alert: choose it, and its timeline and alerts appear
        page.get_by_role("combobox", name="Call").click()
        page.get_by_role("option").filter(has_text="finished-angry").first.click()
        page.wait_for_selector('h3:has-text("Alerts")', timeout=TIMEOUT_MS)
        assert page.get_by_role("combobox", name="Call").input_value().startswith("finished-angry · completed")
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_without_a_service_the_page_says_how_to_start_one(app_url, browser):
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(app_url + "/Live_calls")
        page.wait_for_selector('h1:has-text("Live calls")', timeout=TIMEOUT_MS)
        field = page.get_by_role("textbox", name="Service URL")
        nobody = f"http://127.0.0.1:{free_port()}"
        field.fill(nobody)
        field.press("Enter")
        page.wait_for_selector('[data-testid="stAlertContentWarning"]', timeout=TIMEOUT_MS)
        warning = page.locator('[data-testid="stAlertContentWarning"]').first.inner_text()
        assert f"No live call service answers at {nobody}" in warning
        page.get_by_text("python -m ser_lib serve --port").first.wait_for(timeout=TIMEOUT_MS)  # how to start one
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()
