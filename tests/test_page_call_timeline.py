"""The Call timeline page with ``streamlit.testing.v1.AppTest``: no model, an uploaded stereo call,
a mono call, the channel-role switch (a relabel, not a second analysis), a cancelled analysis, a
call without speech, a broken file, the live replay and its states, the example call built from
held-out clips, the microphone.

The checks look at what the page shows: the figure's data (each party's sentiment line has more
than one point), the messages (they name the file, never an object's repr), the cards' values.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
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
INTERNALS = ("object at 0x", "UploadedFile(", "BytesIO")


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
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "no-corpora"))
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


def figures(at: AppTest) -> list[dict]:
    """Every plotly figure on the page, as plotly's JSON (data and layout)."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(v) -> np.ndarray:
    """A trace's x or y as an array (plotly's JSON packs numeric arrays as base64 ``bdata``)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float)
    return np.asarray([np.nan if x is None else x for x in v], dtype=object)


def timeline(at: AppTest) -> dict:
    found = [f for f in figures(at) if "Emotion over the call" in str(f["layout"].get("title", {}).get("text", ""))]
    assert len(found) == 1, [f["layout"].get("title") for f in figures(at)]
    return found[0]


def sentiment_points(fig: dict) -> dict[str, int]:
    """Per sentiment line of the timeline: how many points plotly can draw (finite y values)."""
    out = {}
    for t in fig["data"]:
        if t.get("name", "").endswith(" sentiment"):
            y = values(t["y"]).astype(float)
            out[t["name"]] = int(np.isfinite(y).sum())
    return out


def assert_no_internals(at: AppTest) -> None:
    shown = texts(at.error) + texts(at.warning) + texts(at.info) + texts(at.caption) + texts(at.markdown)
    for bad in INTERNALS:
        assert bad not in shown, shown


# --- without a model -------------------------------------------------------------------------------


def test_without_a_model_the_page_explains_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SER_MODEL", str(tmp_path / "none" / "default"))
    at = open_page()
    assert not at.exception, texts(at.exception)
    assert at.title[0].value == "Call timeline"
    assert "No trained model" in texts(at.info) and "python -m ser_lib train" in texts(at.info)
    assert not at.file_uploader


# --- an uploaded call ------------------------------------------------------------------------------


def test_the_upload_limit_is_said_with_where_longer_calls_go(with_model):
    at = open_page()
    no_trouble(at)
    uploader = at.file_uploader(key="calls_upload")
    assert "100 MB" in uploader.label
    caption = texts(at.caption)
    assert "Up to 100 MB per file" in caption and "python -m ser_lib analyze-call" in caption
    assert "any length" not in caption
    assert not at.radio  # no stereo question before there is a recording
    assert "Try an example call" not in at.segmented_control(key="calls_source").options  # no corpora here


def test_an_uploaded_stereo_call_gets_cards_charts_and_a_player(with_model, call_wav):
    at = open_page()
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
    assert at.radio(key="calls_left").value == "agent"  # a stereo file: the channel question is asked
    # the timeline: a sentiment line per party that plotly can draw (more than one point each)
    points = sentiment_points(timeline(at))
    assert set(points) == {"agent sentiment", "customer sentiment"} and min(points.values()) > 1, points
    assert "Strongest negative moments" in texts(at.subheader)
    picker = at.selectbox(key="calls_offline_pick")
    assert picker.options and "customer" in picker.options[0]
    audio = at.get("audio")
    assert audio and audio[-1].proto.start_time >= 11  # the player jumps to the customer's angry turn
    assert {b.label for b in at.get("download_button")} == {"Download JSON", "Download segments (CSV)"}


def test_the_segments_table_filters_by_party(with_model, call_wav):
    at = upload(open_page(), call_wav)
    result = at.session_state["calls_result"][1]
    table = next(df.value for df in at.dataframe if "party" in df.value and "start" in df.value)
    assert set(table["party"]) == {"agent", "customer"} and len(table) == len(result.segments)
    at.multiselect(key="calls_offline_parties").set_value(["customer"]).run()
    no_trouble(at)
    table = next(df.value for df in at.dataframe if "party" in df.value and "start" in df.value)
    n = int((result.segments["role"] == "customer").sum())
    assert set(table["party"]) == {"customer"} and len(table) == n
    assert f"{n} of {len(result.segments)} segments" in texts(at.caption)


def test_switching_the_left_channel_relabels_without_analysing_again(with_model, call_wav):
    at = upload(open_page(), call_wav)
    analysed = at.session_state["calls_result"]
    at.radio(key="calls_left").set_value("customer").run()
    no_trouble(at)
    assert at.session_state["calls_result"] is analysed  # the stored analysis was reused, not redone
    assert [m.value for m in at.markdown if m.value in ("**agent**", "**customer**")] == ["**customer**", "**agent**"]
    picker = at.selectbox(key="calls_offline_pick")
    assert "agent" in picker.options[0]  # the angry voice is on the right channel, now the agent
    assert [(m.label, m.value) for m in at.metric if m.label == "Mostly"] == [("Mostly", "neutral"), ("Mostly", "angry")]
    points = sentiment_points(timeline(at))
    assert set(points) == {"customer sentiment", "agent sentiment"} and min(points.values()) > 1


def test_a_mono_call_is_one_party_and_gets_no_channel_question(with_model):
    mono = make_call(TURNS, total_s=19.0, stereo=False)
    at = upload(open_page(), wav(mono), "mono.wav")
    no_trouble(at)
    assert not at.radio  # "the left channel is the ..." makes no sense for one channel
    assert "mono.wav is mono" in texts(at.caption) and "'speaker'" in texts(at.caption)
    assert [m.value for m in at.markdown if m.value == "**speaker**"] == ["**speaker**"]
    assert set(sentiment_points(timeline(at))) == {"speaker sentiment"}


def test_an_8khz_mulaw_call_is_converted_for_the_player(with_model, call_wav):
    import soxr

    phone = soxr.resample(make_call(TURNS, total_s=19.0).T, SR, 8000)
    at = upload(open_page(), wav(phone.T, sr=8000, subtype="ULAW"), "phone.wav")
    no_trouble(at)
    _, player, mime = at.session_state["calls_player"]  # what the page's players were given
    assert mime == "audio/wav" and sf.info(io.BytesIO(player)).subtype == "PCM_16"  # mu-law is not for every browser
    assert at.get("audio")[-1].proto.url.endswith(".wav")
    assert min(sentiment_points(timeline(at)).values()) > 1


def test_a_cancelled_analysis_says_so_and_can_be_restarted(with_model, call_wav):
    at = upload(open_page(), call_wav)
    key = at.session_state["calls_result"][0]
    # what a click on "Cancel the analysis" leaves behind (AppTest cannot click during a run)
    del at.session_state["calls_result"]
    at.session_state["calls_cancelled"] = key
    at.run()
    no_trouble(at)
    assert "The analysis of call.wav was cancelled." in texts(at.info)
    assert not at.get("plotly_chart") and not at.metric
    at.button(key="calls_analyse_again").click().run()
    no_trouble(at)
    assert at.session_state["calls_result"][0] == key
    assert "was cancelled" not in texts(at.info)
    assert len(sentiment_points(timeline(at))) == 2


def test_a_call_without_speech_says_so(with_model):
    at = upload(open_page(), wav(np.zeros((2, 6 * SR), np.float32)), "silence.wav")
    no_trouble(at)
    assert "No speech found in silence.wav" in texts(at.warning)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize(
    "name, data, says",
    [
        ("notes.wav", b"these are my notes, not audio\n" * 20, "Could not read notes.wav as audio"),
        ("broken.wav", b"RIFF....WAVEnot really audio" * 10, "Could not read broken.wav as audio"),
    ],
)
def test_a_broken_file_is_named_in_its_error(with_model, name, data, says):
    at = upload(open_page(), data, name)
    assert not at.exception, texts(at.exception)
    assert says in texts(at.error), texts(at.error)
    assert_no_internals(at)


# --- the live replay -------------------------------------------------------------------------------


def test_live_replay_is_not_finished_before_it_ran(with_model, call_wav):
    at = upload(open_page(), call_wav)  # "Analyse" ran first
    at.segmented_control(key="calls_mode").set_value("Live replay").run()
    no_trouble(at)
    assert "Replay finished" not in texts(at.success)
    assert "Not started: press Start" in texts(at.info)
    assert at.button(key="calls_live_start").label == "Start the live replay"
    assert not at.get("plotly_chart")


def test_live_replay_runs_and_reports_the_speed_it_achieved(with_model, call_wav):
    at = upload(open_page(), call_wav)
    at.segmented_control(key="calls_mode").set_value("Live replay").run()
    at.selectbox(key="calls_speed").set_value("as fast as possible (no audio)").run()
    at.button(key="calls_live_start").click().run()
    no_trouble(at)
    state = at.session_state["calls_replay"]
    assert state.state == "finished" and state.result.final
    assert state.position_s == pytest.approx(19.0, abs=0.1) and state.achieved > 1.0
    done = texts(at.success)
    assert "Replay finished: 00:19 of call in" in done and f"{state.achieved:.1f}x real time" in done
    assert "asked as fast as possible" in done
    assert at.selectbox(key="calls_replayed_pick").options
    assert min(sentiment_points(timeline(at)).values()) > 1
    assert at.button(key="calls_live_start").label == "Replay again"


def test_an_interrupted_live_replay_reads_stopped_not_finished(with_model, call_wav):
    from ser_lib.app.call_view import ReplayProgress

    at = upload(open_page(), call_wav)
    at.segmented_control(key="calls_mode").set_value("Live replay").run()
    key = (at.session_state["calls_result"][0], ("agent", "customer"))
    # what a click on Stop leaves behind: the replay was running when the page reran
    at.session_state["calls_replay"] = ReplayProgress(key=key, state="running", position_s=7.0, duration_s=19.0, elapsed_s=3.5)
    at.run()
    no_trouble(at)
    assert "Replay stopped at 00:07 of 00:19 (it ran at 2.0x real time; asked 1x)." in texts(at.info)
    assert "Replay finished" not in texts(at.success)


# --- the example call ------------------------------------------------------------------------------


@pytest.fixture
def with_example(monkeypatch, tmp_path, tmp_path_factory):
    """The tiny model, its card naming two fake CREMA-D speakers as held out, over a fake corpus tree."""
    bundle = tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")
    folder = tmp_path / "models" / "tiny-heldout"
    shutil.copytree(bundle.path, folder)
    card = json.loads((folder / "card.json").read_text())
    card["training"] = {"split": "speaker", "train_speakers": ["CREMA-D_1003"], "test_speakers": ["CREMA-D_1001", "CREMA-D_1002"]}
    (folder / "card.json").write_text(json.dumps(card))
    data = tmp_path / "data" / "AudioWAV"  # CREMA-D names; speech-like audio the voice-activity detector accepts
    data.mkdir(parents=True)
    for k, (actor, emotion, sentence) in enumerate(
        (a, e, s) for a in (1001, 1002, 1003) for e in ("NEU", "ANG", "SAD") for s in ("DFA", "IEO", "ITH")
    ):
        style = "angry" if emotion == "ANG" else "neutral"
        sf.write(data / f"{actor}_{sentence}_{emotion}_XX.wav", speechlike(2.5, style=style, seed=k), SR, subtype="PCM_16")
    data = data.parent
    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SER_MODEL", str(folder))
    monkeypatch.setenv("SER_DATA_DIR", str(data))
    return folder


def test_an_example_call_from_held_out_clips_is_offered_and_analysed(with_example):
    at = open_page()
    no_trouble(at)
    assert "Try an example call" in texts(at.caption)
    at.segmented_control(key="calls_source").set_value("Try an example call").run()
    no_trouble(at)
    note = texts(at.markdown)
    assert "CREMA-D_1001" in note and "CREMA-D_1002" in note and "2 speakers tiny-heldout never heard in training" in note
    truth = next(df.value for df in at.dataframe if "clips" in df.value)
    assert list(truth["role"]) == ["agent", "customer"] * 4
    assert set(truth["speaker"]) == {"CREMA-D_1001", "CREMA-D_1002"}
    assert list(truth["emotion"])[1::2] == ["neutral", "angry", "angry", "sad"]
    assert min(sentiment_points(timeline(at)).values()) > 1


def test_the_example_call_on_the_shared_corpora_with_the_shipped_model(monkeypatch, shared_corpora, tmp_path):
    """Item 1 of issue 14 on real held-out speech: the sentiment lines of a call of CREMA-D turns are drawn."""
    monkeypatch.setenv("SER_DATA_DIR", str(shared_corpora))
    monkeypatch.setenv("SER_MODELS_DIR", str(ROOT / "models"))
    monkeypatch.setenv("SER_MODEL", str(ROOT / "models" / "default"))
    at = open_page()
    at.segmented_control(key="calls_source").set_value("Try an example call").run()
    no_trouble(at)
    note = texts(at.markdown)
    assert "held out by encoder-head-pitch-heldout" in note and "trained on every speaker, these included" in note
    points = sentiment_points(timeline(at))
    assert set(points) == {"agent sentiment", "customer sentiment"} and min(points.values()) > 3, points


# --- the microphone --------------------------------------------------------------------------------


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


def test_a_broken_microphone_recording_is_named(with_model):
    at = open_page()
    at.segmented_control(key="calls_source").set_value("Record with the microphone").run()
    at.audio_input(key="calls_mic_0").set_value(("rec.wav", b"not a recording at all" * 10, "audio/wav")).run()
    assert not at.exception
    assert "Could not read" in texts(at.error)
    assert_no_internals(at)
