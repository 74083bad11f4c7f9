"""Pages: what a person sees of calibration, "uncertain", "no speech found" and valence/arousal.

Predict (the shipped default, calibrated): confidence, the "Uncertain" metric and message, the
"No speech found" warning for a constant signal and for silence, the circumplex point; Evaluation:
the reliability diagram with ECE before and after; Call timeline: the valence/arousal row.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from call_audio import SR, make_call, speechlike
from ser_lib.affect import CIRCUMPLEX
from ser_lib.config import EMOTIONS, MODELS_DIR, PROJECT_ROOT

TIMEOUT = 300


def _only(name: str, monkeypatch, tmp_path):
    """A models folder holding a copy of shipped bundle ``name`` (the active one), and no corpora."""
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR / name, models / name)
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "no-corpora-here"))
    monkeypatch.setenv("SER_MODELS_DIR", str(models))
    monkeypatch.setenv("SER_MODEL", str(models / name))
    monkeypatch.delenv("SER_UNCERTAIN_BELOW", raising=False)
    return models


@pytest.fixture
def default_only(monkeypatch, tmp_path):
    """A models folder holding a copy of the calibrated default, and no corpora."""
    return _only("default", monkeypatch, tmp_path)


@pytest.fixture
def four_corpus_only(monkeypatch, tmp_path):
    """A models folder holding a copy of the four-corpus model (a temperature calibrates it), and no corpora."""
    return _only("four-corpus", monkeypatch, tmp_path)


def threshold() -> float:
    """The shipped default's 'uncertain' threshold, from its card."""
    return json.loads((MODELS_DIR / "default" / "card.json").read_text())["decision"]["uncertain_below"]


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "Home.py"), default_timeout=TIMEOUT)
    at.switch_page(page)
    return at.run()


def wav(y: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def figures(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_predict_says_no_speech_for_a_constant_signal_and_silence(default_only):
    at = open_page("pages/5_Predict.py")
    uploads = [
        ("dc.wav", wav(np.full(3 * SR, 0.3, np.float32)), "audio/wav"),
        ("silence.wav", wav(np.zeros(2 * SR, np.float32)), "audio/wav"),
        ("speech.wav", wav(speechlike(3.0, style="angry")), "audio/wav"),
    ]
    at.file_uploader(key="predict_uploads").set_value(uploads).run()
    assert not at.exception and not at.error, texts(at.error)
    warnings = [str(w.value) for w in at.warning]
    assert any(w.startswith("No speech found in dc.wav: the voice-activity detector heard no speech") for w in warnings)
    assert any(w.startswith("No speech found in silence.wav: silence.wav is silent") for w in warnings)
    assert "1 of 3 files judged; 2 could not be (the messages above say why)." in texts(at.caption)
    table = next(df.value for df in at.dataframe if "confidence" in df.value.columns)
    assert list(table["file"]) == ["speech.wav"]  # no "sad 98%" for the constant signal


def test_predict_names_an_emotion_or_says_uncertain_with_the_slider(default_only):
    at = open_page("pages/5_Predict.py")
    at.file_uploader(key="predict_uploads").upload("speech.wav", wav(speechlike(3.0)), "audio/wav").run()
    assert not at.exception
    assert at.slider(key="predict_uncertain_below").value == pytest.approx(threshold(), abs=0.01)  # the card's
    at.slider(key="predict_uncertain_below").set_value(0.0).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Emotion"] in EMOTIONS and metrics["Confidence"].endswith("%")
    assert not at.info or "Uncertain:" not in texts(at.info)
    at.slider(key="predict_uncertain_below").set_value(1.0).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Emotion"] == "Uncertain"
    (message,) = [str(i.value) for i in at.info if str(i.value).startswith("Uncertain:")]
    assert message.startswith("Uncertain: the model is not sure enough to name an emotion (confidence ")
    assert "below the 100% it needs). Most likely " in message
    assert any(str(h.value).endswith(": uncertain") for h in at.subheader)
    # valence and arousal: the clip's point on the circumplex, inside the unit disc, and in words
    fig = figures(at)["predict_circumplex"]
    point = next(t for t in fig["data"] if t.get("name") == "this clip")
    v, a = point["x"][0], point["y"][0]
    assert -1 <= v <= 1 and -1 <= a <= 1
    emotions = next(t for t in fig["data"] if t.get("name") == "emotions")
    assert emotions["text"] == list(EMOTIONS) and emotions["x"][EMOTIONS.index("angry")] == pytest.approx(CIRCUMPLEX["angry"][0])
    assert f"valence {v:+.2f}, arousal {a:+.2f} (each from -1 to +1)." in texts(at.caption)


def test_evaluation_shows_the_reliability_diagram_with_ece(four_corpus_only):
    at = open_page("pages/4_Evaluation.py")
    assert not at.exception and not at.error, texts(at.error)
    text = texts(at.markdown)
    assert "Expected calibration error (the gap between how sure the model is and how often it is right, 15 bins)" in text
    assert "5.7% before, 2.2% after" in text
    assert "the product says 'uncertain' instead of naming an emotion" in text
    fig = figures(at)["evaluation_reliability"]
    names = [t.get("name") for t in fig["data"]]
    assert names == ["perfectly calibrated", "before calibration (ECE 0.057)", "after calibration (ECE 0.022)"]
    after = fig["data"][2]
    assert sum(after["customdata"]) == 3064 and all(0 <= y <= 1 for y in after["y"])


def test_evaluation_says_when_no_temperature_is_applied(default_only):
    """The combined default is calibrated as it comes: the page says the fitted temperature was not
    applied, and why, with the one error figure, and still draws the diagram."""
    cal = json.loads((MODELS_DIR / "default" / "card.json").read_text())["calibration"]
    assert not cal["applied"]
    at = open_page("pages/4_Evaluation.py")
    assert not at.exception and not at.error, texts(at.error)
    text = texts(at.markdown)
    assert (
        f"none applied: the fitted temperature {cal['fitted_temperature']:.2f} did not lower the calibration error on "
        f"speakers it was not fitted on. Expected calibration error {cal['ece_before']:.1%}." in text
    )
    fig = figures(at)["evaluation_reliability"]
    assert sum(fig["data"][-1]["customdata"]) == cal["n"] == 3636


def test_call_timeline_draws_valence_and_arousal_on_request(default_only, tmp_path):
    call = make_call([("agent", "neutral", 0.5, 4.0), ("customer", "angry", 5.0, 4.0)], total_s=10.0)
    at = open_page("pages/6_Call_timeline.py")
    at.file_uploader(key="calls_upload").upload("call.wav", wav(call.T), "audio/wav").run()
    assert not at.exception and not at.error, texts(at.error)
    timeline_keys = [k for k in figures(at) if k.endswith("_timeline")]
    assert timeline_keys
    fig = figures(at)[timeline_keys[0]]
    assert not any(str(t.get("name", "")).endswith(" valence") for t in fig["data"])
    toggle = next(t for t in at.toggle if t.label == "Show valence and arousal")
    toggle.set_value(True).run()
    fig = figures(at)[timeline_keys[0]]
    names = {t.get("name") for t in fig["data"]}
    assert {"agent valence", "agent arousal", "customer valence", "customer arousal"} <= names
    values = [y for t in fig["data"] if str(t.get("name", "")).endswith(("valence", "arousal")) for y in t["y"] if y is not None]
    assert values and all(-1 <= y <= 1 for y in values)
    below = f"{threshold():.0%}"
    assert f"Grey, hatched segments are 'uncertain': the model's confidence there is below {below}" in texts(at.caption)
