"""The Call timeline page with ``streamlit.testing.v1.AppTest``: no model, an uploaded stereo call,
the channel-role switch, a call without speech, a broken file, the live replay, the microphone."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from call_audio import SR, make_call, speechlike, tiny_bundle

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/6_Call_timeline.py"
TIMEOUT = 300
TURNS = [
    ("agent", "neutral", 0.5, 3.5),
    ("customer", "neutral", 4.8, 3.5),
    ("agent", "neutral", 9.0, 3.0),
    ("customer", "angry", 12.8, 5.0),
]


def wav(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def call_wav() -> bytes:
    return wav(make_call(TURNS, total_s=19.0))


@pytest.fixture
def with_model(monkeypatch, tmp_path, tmp_path_factory):
    bundle = tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")
    empty = tmp_path / "models"
    empty.mkdir()
    monkeypatch.setenv("SER_MODELS_DIR", str(empty))
    monkeypatch.setenv("SER_MODEL", str(bundle.path))
    return bundle


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    at.switch_page(PAGE)
    return at.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def no_trouble(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)


def upload(at: AppTest, data: bytes, name: str = "call.wav") -> AppTest:
    at.file_uploader(key="calls_upload").set_value((name, data, "audio/wav"))
    return at.run()


def test_without_a_model_the_page_explains_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SER_MODEL", str(tmp_path / "none" / "default"))
    at = open_page()
    assert not at.exception, texts(at.exception)
    assert at.title[0].value == "Call timeline"
    assert "No trained model" in texts(at.info) and "python -m ser_lib train" in texts(at.info)
    assert not at.file_uploader


def test_an_uploaded_stereo_call_gets_cards_charts_and_a_player(with_model, call_wav):
    at = open_page()
    no_trouble(at)
    assert "Upload a call" in texts(at.info)
    at = upload(at, call_wav)
    no_trouble(at)
    from ser_lib.app.call_view import party_cards

    agent, customer = party_cards(at.session_state["calls_result"][1])
    # a card per party, left to right: the agent neutral throughout, the customer mostly angry (5 s of 8.5 s)
    assert (agent.dominant, customer.dominant) == ("neutral", "angry")
    assert customer.mean_sentiment.startswith("-") and customer.trend == "worsening"
    assert [(m.label, m.value) for m in at.metric] == [
        ("Mostly", "neutral"),
        ("Mean sentiment", agent.mean_sentiment),
        ("Mostly", "angry"),
        ("Mean sentiment", customer.mean_sentiment),
    ]
    assert [m.delta for m in at.metric if m.label == "Mean sentiment"] == [agent.trend_delta, customer.trend_delta]
    assert [m.value for m in at.markdown if m.value in ("**agent**", "**customer**")] == ["**agent**", "**customer**"]
    assert len(at.get("plotly_chart")) >= 3
    assert "Strongest negative moments" in texts(at.subheader)
    picker = at.selectbox(key="calls_offline_pick")
    assert picker.options and "customer" in picker.options[0]
    audio = at.get("audio")
    assert audio and audio[-1].proto.start_time >= 11  # the player jumps to the customer's angry turn
    assert {b.label for b in at.get("download_button")} == {"Download JSON", "Download segments (CSV)"}


def test_switching_the_left_channel_swaps_the_parties(with_model, call_wav):
    at = upload(open_page(), call_wav)
    at.radio(key="calls_left").set_value("customer").run()
    no_trouble(at)
    assert [m.value for m in at.markdown if m.value in ("**agent**", "**customer**")] == ["**customer**", "**agent**"]
    picker = at.selectbox(key="calls_offline_pick")
    assert "agent" in picker.options[0]  # the angry voice is on the right channel, now the agent


def test_a_call_without_speech_says_so(with_model):
    at = upload(open_page(), wav(np.zeros((2, 6 * SR), np.float32)), "silence.wav")
    no_trouble(at)
    assert "No speech found" in texts(at.warning)
    assert not at.get("plotly_chart")


def test_a_broken_file_is_an_error_not_a_traceback(with_model):
    at = upload(open_page(), b"RIFF....WAVEnot really audio" * 10, "broken.wav")
    assert not at.exception, texts(at.exception)
    assert "Could not read" in texts(at.error)


def test_live_replay_updates_and_ends_with_the_full_timeline(with_model, call_wav):
    at = upload(open_page(), call_wav)
    at.segmented_control(key="calls_mode").set_value("Live replay").run()
    at.selectbox(key="calls_speed").set_value("as fast as possible").run()
    at.button(key="calls_live_start").click().run()
    no_trouble(at)
    assert "Replay finished" in texts(at.success)
    assert at.selectbox(key="calls_replayed_pick").options
    assert at.session_state["calls_result"][1].final


def test_microphone_recordings_are_appended(with_model):
    at = open_page()
    at.segmented_control(key="calls_source").set_value("Record with the microphone").run()
    no_trouble(at)
    at.audio_input(key="calls_mic_0").set_value(("turn1.wav", wav(speechlike(3.5, style="neutral", seed=1)), "audio/wav")).run()
    no_trouble(at)
    assert "1 turn(s) recorded" in texts(at.caption)
    at.audio_input(key="calls_mic_0").set_value(("turn2.wav", wav(speechlike(4.0, style="angry", seed=2)), "audio/wav")).run()
    no_trouble(at)
    assert "2 turn(s) recorded" in texts(at.caption)
    from ser_lib.app.call_view import party_cards

    result = at.session_state["calls_mic_conv"].result()
    assert result.roles == ["speaker"] and result.segments["emotion"].tolist() == ["neutral", "angry"]  # a segment per turn
    (card,) = party_cards(result)  # one party: the microphone is mono
    assert card.dominant == "angry"  # 4 s of the second turn against 3.5 s of the first
    assert [(m.label, m.value) for m in at.metric] == [("Mostly", "angry"), ("Mean sentiment", card.mean_sentiment)]
    at.button(key="calls_mic_reset").click().run()
    no_trouble(at)
    assert "turn(s) recorded" not in texts(at.caption)
