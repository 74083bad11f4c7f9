"""Real-browser smoke test: headless Chromium (Playwright) against ``streamlit run Home.py``.

Every page must render with no exception element; on Predict an uploaded generated clip must
show a prediction, and on Call timeline an uploaded generated stereo call (formant-synthesised
speech that the voice-activity detector accepts) must show the per-party cards and the timeline
chart. Each page is screenshotted into the test's tmp folder. Skipped when
Debian's ``/usr/bin/chromium`` is absent (CI installs it: ``apt-get install chromium``).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from call_audio import SR, make_call
from ser_lib.config import EMOTIONS

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: (URL path, page title, plotly charts drawn once the page has rendered)
PAGES = [
    ("/", "Speech emotion recognition", 0),
    ("/Datasets", "Datasets", 3),
    ("/Augmentation", "Augmentation preview", 4),
    ("/Training", "Training", 0),
    ("/Evaluation", "Evaluation", 3),
    ("/Predict", "Predict", 0),
    ("/Call_timeline", "Call timeline", 0),
]
#: a short stereo call, one party per channel: (role, style, start_s, seconds)
CALL_TURNS = [("agent", "neutral", 0.5, 3.5), ("customer", "angry", 4.6, 4.0), ("agent", "neutral", 9.0, 1.8)]
CALL_SECONDS = 11.0
VIEWPORT = {"width": 1400, "height": 2000}
TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run browser tests",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """``streamlit run Home.py`` on a free port, over a fake corpus tree and an untrained tiny model."""
    from conftest import build_fake_corpus
    from ser_lib.bundle import ModelBundle
    from ser_lib.corpora import find_corpora
    from ser_lib.evaluation import evaluate_predictions
    from ser_lib.frontends import NotebookFrontEnd
    from ser_lib.models import notebook_cnn1d

    base = tmp_path_factory.mktemp("browser-app")
    data = build_fake_corpus(base / "data", speakers=1, per_emotion=1)
    # a saved evaluation, so the Evaluation page has results to draw (the truth shifted by one emotion)
    preds = find_corpora(data).manifest[["path", "corpus", "speaker", "emotion"]].copy()
    preds["predicted"] = [EMOTIONS[(EMOTIONS.index(e) + k % 2) % len(EMOTIONS)] for k, e in enumerate(preds["emotion"])]
    preds["confidence"] = 0.6
    for e in EMOTIONS:
        preds[f"p_{e}"] = np.where(preds["predicted"] == e, 0.6, 0.4 / (len(EMOTIONS) - 1))
    with warnings.catch_warnings():  # the shifted answers include emotions a corpus lacks
        warnings.simplefilter("ignore", UserWarning)
        evaluation = evaluate_predictions(preds, list(EMOTIONS)).to_json()
    bundle = ModelBundle.create(
        notebook_cnn1d(num_classes=len(EMOTIONS)),
        name="tiny",
        model_type="notebook_cnn1d",
        labels=list(EMOTIONS),
        frontend=NotebookFrontEnd(),
    )
    bundle.save(base / "models" / "tiny", evaluation=evaluation)
    env = {
        **os.environ,
        "SER_DATA_DIR": str(data),
        "SER_MODELS_DIR": str(base / "models"),
        "SER_MODEL": str(base / "models" / "tiny"),
    }
    port = _free_port()
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


def _rendered(page, selector: str, charts: int = 0) -> None:
    """Wait for ``selector``, ``charts`` drawn plotly charts, and Streamlit's running indicator to go."""
    page.wait_for_selector(selector, timeout=TIMEOUT_MS)
    if charts:
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= {charts}", timeout=TIMEOUT_MS
        )
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=TIMEOUT_MS)


@pytest.mark.parametrize("path, title, charts", PAGES, ids=[t for _, t, _ in PAGES])
def test_page_renders_without_exception(app_url, browser, tmp_path, path, title, charts):
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(app_url + path)
        _rendered(page, f'h1:has-text("{title}")', charts=charts)
        shot = tmp_path / f"{title.lower().replace(' ', '-')}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        assert page.locator("h1").first.inner_text().startswith(title)
        assert shot.stat().st_size > 10_000
    finally:
        page.close()


def test_predict_shows_a_prediction_for_an_uploaded_clip(app_url, browser, tmp_path, synth):
    buf = io.BytesIO()
    sf.write(buf, synth.voice(3.0, sr=16_000, f0=170.0), 16_000, format="WAV")
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(app_url + "/Predict")
        page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached", timeout=TIMEOUT_MS)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
            {"name": "generated.wav", "mimeType": "audio/wav", "buffer": buf.getvalue()}
        )
        _rendered(page, 'h3:has-text("generated.wav")', charts=2)
        page.screenshot(path=str(tmp_path / "predict-result.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0
        metrics = dict(
            zip(
                page.locator('[data-testid="stMetricLabel"]').all_inner_texts(),
                page.locator('[data-testid="stMetricValue"]').all_inner_texts(),
                strict=True,
            )
        )
        assert metrics["Emotion"] in EMOTIONS
        assert metrics["Length"] == "3.0 s"
        assert "tiny" in page.locator('[data-testid="stCaptionContainer"]').last.inner_text()
    finally:
        page.close()


def test_predict_rejects_a_non_audio_upload_in_the_browser(app_url, browser):
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(app_url + "/Predict")
        page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached", timeout=TIMEOUT_MS)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
            {"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"not audio " * 100}
        )
        _rendered(page, '[data-testid="stAlertContentError"]')
        assert "Could not read notes.wav" in page.locator('[data-testid="stAlertContentError"]').first.inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_call_timeline_shows_the_analysis_of_an_uploaded_stereo_call(app_url, browser, tmp_path):
    call = tmp_path / "generated-call.wav"
    sf.write(call, make_call(CALL_TURNS, total_s=CALL_SECONDS).T, SR, subtype="PCM_16")
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(app_url + "/Call_timeline")
        _rendered(page, 'h1:has-text("Call timeline")')
        # the call's own uploader, picked by its label (not the first uploader the page happens to hold)
        uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Call recording")
        uploader.wait_for(state="attached", timeout=TIMEOUT_MS)  # strict: exactly one such uploader
        uploader.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(call))
        # "Analyse" is the default mode: the upload starts the analysis (the first one loads the model)
        _rendered(page, 'h3:has-text("Strongest negative moments")', charts=1)
        page.screenshot(path=str(tmp_path / "call-timeline-result.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        assert page.locator('[data-testid="stAlertContentWarning"]').count() == 0  # no "no speech found"
        assert "generated-call.wav" in uploader.inner_text()
        # a summary card per party (left channel: agent), each with its dominant emotion and speech time
        labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
        values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
        mostly = [v for k, v in zip(labels, values, strict=True) if k.strip() == "Mostly"]
        assert len(mostly) == 2 and all(v in EMOTIONS for v in mostly), (labels, values)
        markdown = page.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()
        assert "agent" in markdown and "customer" in markdown
        speech = [c for c in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts() if c.startswith("Speech ")]
        assert len(speech) == 2 and all("(0% of the call)" not in c for c in speech), speech
        # the timeline chart is drawn, and the tabs for both parties' probabilities follow it
        timeline = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Emotion over the call")
        assert timeline.locator(".main-svg").count() >= 1
        tabs = page.locator('[data-testid="stTab"]').all_inner_texts()
        assert any("Probabilities: agent" in t for t in tabs) and any("Probabilities: customer" in t for t in tabs), tabs
    finally:
        page.close()
