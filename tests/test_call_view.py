"""ser_lib.app.call_view: what the Call timeline page shows, computed without Streamlit.

Cards, tables and the channel switch are checked on :func:`conftest.generated_call_analysis`
(a 60 s call built from tables, so every figure is known); the microphone conversation on
generated speech through the tiny model of :mod:`call_audio` and the energy detector.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from call_audio import SR, speechlike, tiny_bundle
from ser_lib.app import call_view as cv
from ser_lib.audio import to_wav_bytes
from ser_lib.calls import CallAnalysis, TimelineSettings, VADSettings, segments_from_windows, summarize
from ser_lib.errors import ParameterError, UnreadableAudioError

# --- cards and tables ------------------------------------------------------------------------------


def test_party_cards_state_each_partys_figures(call_analysis):
    agent, customer = cv.party_cards(call_analysis)
    # agent: 20 s neutral and 6 s happy in 26 s of speech; neutral at the start and at the end
    assert agent == cv.PartyCard(
        role="agent",
        dominant="neutral",
        dominant_share="77% of judged speech",
        mean_sentiment="+0.07",
        trend="steady",
        trend_delta="+0.00 from Q1 to Q4",
        speech="00:26 (43% of the call)",
    )
    # customer: neutral, then angry, then very angry; a 0.6 s "yes" in the last quarter is speech, not judged
    assert customer == cv.PartyCard(
        role="customer",
        dominant="angry",
        dominant_share="75% of judged speech",
        mean_sentiment="-0.66",
        trend="worsening",
        trend_delta="-0.83 from Q1 to Q3",
        speech="00:25 (41% of the call)",
    )


def test_a_party_without_judged_speech_gets_an_empty_card(call_analysis):
    r = call_analysis
    roles = [*r.roles, "supervisor"]
    summary = summarize(r.segments, r.windows, r.speech, duration_s=r.duration_s, roles=roles, labels=r.labels)
    three = CallAnalysis(r.segments, r.windows, r.speech, summary, r.duration_s, roles, r.labels, settings={})
    cards = cv.party_cards(three)
    assert [c.role for c in cards] == ["agent", "customer", "supervisor"]
    assert cards[2] == cv.PartyCard(
        role="supervisor",
        dominant="no judged speech",
        dominant_share="",
        mean_sentiment="n/a",
        trend="n/a",
        trend_delta=None,
        speech="00:00 (0% of the call)",
    )


def test_worst_table_lists_the_worst_moments_most_negative_first(call_analysis):
    table = cv.worst_table(call_analysis)
    assert list(table.columns) == ["#", "time", "party", "emotion", "confidence", "sentiment", "start_s"]
    assert table[["#", "time", "party", "emotion", "start_s"]].values.tolist() == [
        [1, "00:32-00:44", "customer", "angry", 32.0],
        [2, "00:16-00:22", "customer", "angry", 16.0],
    ]
    assert table["confidence"].tolist() == pytest.approx([0.9, 0.7])
    assert table["sentiment"].tolist() == pytest.approx([-0.9143, -0.7429], abs=1e-4)


def test_worst_table_of_a_calm_call_is_empty_with_its_columns(call_analysis):
    calm = CallAnalysis(**{**vars(call_analysis), "summary": {**call_analysis.summary, "worst_moments": []}})
    table = cv.worst_table(calm)
    assert table.empty and list(table.columns) == ["#", "time", "party", "emotion", "confidence", "sentiment", "start_s"]


def test_segments_table_shows_clock_times_and_rounded_figures(call_analysis):
    table = cv.segments_table(call_analysis)
    assert list(table.columns) == ["start", "end", "party", "emotion", "confidence", "sentiment", "valence", "arousal"]
    assert table[["start", "end", "party", "emotion"]].values.tolist() == [
        ["00:01", "00:09", "agent", "neutral"],
        ["00:10", "00:16", "customer", "neutral"],
        ["00:16", "00:22", "customer", "angry"],
        ["00:24", "00:30", "agent", "happy"],
        ["00:32", "00:44", "customer", "angry"],
        ["00:46", "00:58", "agent", "neutral"],
    ]
    assert table["confidence"].tolist() == [0.7, 0.7, 0.7, 0.7, 0.9, 0.7]
    assert table["sentiment"].tolist() == [-0.09, -0.09, -0.74, 0.57, -0.91, -0.09]


# --- page helpers -------------------------------------------------------------------------------


def test_roles_for_puts_the_chosen_party_on_the_left_channel():
    assert cv.roles_for("agent") == ("agent", "customer")
    assert cv.roles_for("customer") == ("customer", "agent")
    assert cv.roles_for("caller", options=("caller", "callee")) == ("caller", "callee")
    with pytest.raises(ParameterError, match=r"Left channel role 'boss' must be one of \['agent', 'customer'\]"):
        cv.roles_for("boss")


def test_digest_is_a_short_stable_content_key():
    a, b = cv.digest(b"call one"), cv.digest(b"call two")
    assert len(a) == 16 and int(a, 16) >= 0  # 16 hex digits
    assert a == cv.digest(b"call one") and a != b


def test_replay_speeds_run_from_real_time_to_unthrottled():
    speeds = list(cv.REPLAY_SPEEDS.values())
    assert speeds[0] == 1.0 and speeds[-1] is None
    assert speeds[:-1] == sorted(speeds[:-1])
    assert max(speeds[:-1]) <= 4.0  # browsers mute media played faster than 4x: no speed without its audio
    assert cv.REPLAY_SPEEDS["as fast as possible (no audio)"] is None


# --- relabelling the parties -----------------------------------------------------------------------


def test_relabel_swaps_the_parties_by_channel_without_new_windows(call_analysis):
    swapped = cv.relabel(call_analysis, ("customer", "agent"))
    assert swapped.roles == ["customer", "agent"]
    assert swapped.windows.drop(columns="role").equals(call_analysis.windows.drop(columns="role"))  # nothing re-scored
    assert set(swapped.segments.loc[swapped.segments["channel"] == 0, "role"]) == {"customer"}
    left, right = cv.party_cards(swapped)
    agent, customer = cv.party_cards(call_analysis)
    # channel 0's figures, now under the name "customer", and the other way round
    assert (left.role, left.dominant, left.mean_sentiment) == ("customer", agent.dominant, agent.mean_sentiment)
    assert left.speech == agent.speech
    assert (right.role, right.dominant, right.trend_delta) == ("agent", customer.dominant, customer.trend_delta)
    assert [m["role"] for m in swapped.summary["worst_moments"]] == ["agent", "agent"]
    assert cv.relabel(swapped, ("agent", "customer")).summary == call_analysis.summary  # and back
    assert cv.relabel(call_analysis, ("agent", "customer")) is call_analysis


def test_relabel_leaves_a_mono_call_alone_and_refuses_a_party_twice(call_analysis):
    mono = CallAnalysis(
        call_analysis.segments.iloc[:0],
        call_analysis.windows.iloc[:0],
        call_analysis.speech.iloc[:0],
        {"parties": {}},
        10.0,
        ["speaker"],
        call_analysis.labels,
        settings={},
    )
    assert cv.relabel(mono, ("customer", "agent")) is mono
    with pytest.raises(ParameterError, match=r"must name each of the call's 2 channels once"):
        cv.relabel(call_analysis, ("agent", "agent"))


# --- live cards and the replay's status ------------------------------------------------------------


def test_live_cards_say_so_far_and_never_name_quarters(call_analysis):
    r = call_analysis
    w = r.windows[r.windows["end_s"] <= 36.0]  # 36 s into the call: the customer's second turn is in progress
    speech = r.speech[r.speech["start_s"] < 36.0].assign(end_s=lambda d: d["end_s"].clip(upper=36.0))
    segments = segments_from_windows(w, speech, labels=r.labels)
    summary = summarize(segments, w, speech, duration_s=36.0, roles=r.roles, labels=r.labels)
    partial = CallAnalysis(segments, w, speech, summary, 36.0, r.roles, r.labels, settings={}, final=False)
    agent, customer = cv.live_cards(partial)
    assert (agent.role, agent.now) == ("agent", "happy")  # the agent's latest window: 27-30 s, happy
    assert agent.now_detail == f"sentiment {sentiment_of_happy():+.2f} at 00:30"
    assert (customer.now, customer.so_far) == ("angry", "mostly angry so far")
    assert customer.speech == "00:16 of speech so far"  # 10-22 s and 32-36 s
    for card in (agent, customer):
        text = " ".join(str(v) for v in vars(card).values())
        assert "Q1" not in text and "Q4" not in text and "quarter" not in text


def sentiment_of_happy() -> float:
    from conftest import generated_probabilities
    from ser_lib.config import EMOTIONS, SENTIMENT_WEIGHTS

    p = generated_probabilities("happy", 0.7)
    return float(sum(p[i] * SENTIMENT_WEIGHTS[e] for i, e in enumerate(EMOTIONS)))


def test_replay_progress_says_what_happened_and_the_speed_achieved():
    state = cv.ReplayProgress(asked=4.0, duration_s=120.0)
    assert state.text() == "Not started: press Start to play the call into the live analyser at 4x."
    state.state, state.position_s, state.elapsed_s = "running", 0.5, 0.5
    assert state.achieved is None and "measuring the speed" in state.text()
    state.position_s, state.elapsed_s = 28.0, 7.0
    assert state.text() == "Live: 00:28 of 02:00 · asked 4x, running at 4.0x real time"
    state.position_s = 17.0  # 2.4x where 4x was asked
    assert state.behind and state.text().endswith("running at 2.4x real time (this computer cannot keep up with 4x)")
    state.state = "stopped"
    assert state.text() == "Replay stopped at 00:17 of 02:00 (it ran at 2.4x real time; asked 4x)."
    done = cv.ReplayProgress(state="finished", position_s=120.0, duration_s=120.0, elapsed_s=30.0, asked=None)
    assert done.text() == "Replay finished: 02:00 of call in 30 s (4.0x real time; asked as fast as possible)."
    assert not done.behind  # nothing was asked
    quick = cv.ReplayProgress(state="finished", position_s=19.0, duration_s=19.0, elapsed_s=0.5, asked=None)
    assert quick.text() == "Replay finished: 00:19 of call in 0.5 s (38.0x real time; asked as fast as possible)."


# --- the recording ---------------------------------------------------------------------------------


def test_upload_limit_note_in_minutes_and_where_longer_calls_go():
    note = cv.upload_limit_note(100)
    assert note.startswith("Up to 100 MB per file: about 55 minutes of 16 kHz mono WAV, 109 minutes of 8 kHz stereo")
    assert "python -m ser_lib analyze-call CALL.wav" in note


def test_the_player_gets_audio_a_browser_plays():
    x = (0.3 * np.sin(np.arange(2 * 8000) / 5.0)).astype(np.float32)
    pcm, mulaw, flac = io.BytesIO(), io.BytesIO(), io.BytesIO()
    sf.write(pcm, np.stack([x, x], axis=1), 8000, format="WAV", subtype="PCM_16")
    sf.write(mulaw, np.stack([x, x], axis=1), 8000, format="WAV", subtype="ULAW")
    sf.write(flac, x, 8000, format="FLAC")
    assert cv.player_audio(pcm.getvalue(), "call.wav") == (pcm.getvalue(), "audio/wav")  # as uploaded
    assert cv.player_audio(flac.getvalue(), "call.flac") == (flac.getvalue(), "audio/flac")
    data, mime = cv.player_audio(mulaw.getvalue(), "phone.wav")  # mu-law: converted, same rate and channels
    info = sf.info(io.BytesIO(data))
    assert mime == "audio/wav" and (info.subtype, info.samplerate, info.channels, info.frames) == ("PCM_16", 8000, 2, len(x))


def test_call_facts_name_the_file_not_an_object():
    with pytest.raises(UnreadableAudioError) as caught:
        cv.call_facts(b"a text file renamed" * 20, "notes.wav")
    message = str(caught.value)
    assert message.startswith("Could not read notes.wav as audio") and "object at 0x" not in message
    assert "BytesIO" not in message


# --- the example call ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_manifest(tmp_path_factory):
    from conftest import build_fake_corpus
    from ser_lib.corpora import find_corpora

    root = tmp_path_factory.mktemp("example") / "data"
    build_fake_corpus(root, speakers=3, per_emotion=8, corpora=("CREMA-D",), extras=False)
    return find_corpora(root).manifest


def test_an_example_call_is_built_from_the_cards_held_out_speakers(example_manifest):
    held_out = ["CREMA-D_1001", "CREMA-D_1002"]
    card = {"training": {"split": "speaker", "train_speakers": ["CREMA-D_1003"], "test_speakers": held_out}}
    ex = cv.example_call(example_manifest, card, model="mine")
    assert ex.name == "example-call.wav"
    assert set(ex.turns["speaker"]) == {"CREMA-D_1001", "CREMA-D_1002"}  # never a training speaker
    assert list(ex.turns["role"]) == ["agent", "customer"] * 4
    assert list(ex.turns["emotion"]) == ["neutral", "neutral", "neutral", "angry", "neutral", "angry", "neutral", "sad"]
    assert "2 speakers mine never heard in training" in ex.note
    y, sr = sf.read(io.BytesIO(ex.data), dtype="float32")
    assert sr == SR and y.shape[1] == 2
    agent_turn = ex.turns.iloc[0]  # on the left channel only
    a = int(0.6 * SR)
    assert np.abs(y[a : a + SR, 0]).max() > 0.01 and np.abs(y[a : a + SR, 1]).max() < 0.01
    clips = [c for cs in ex.turns["clips"] for c in cs.split(", ")]
    assert len(clips) == len(set(clips)) == 16  # every clip used once
    assert agent_turn["clips"].count("_NEU_") == 2


def test_an_example_call_for_a_model_trained_on_everyone_says_so(example_manifest):
    card = {
        "training": {
            "split": "none",
            "train_speakers": ["CREMA-D_1001", "CREMA-D_1002", "CREMA-D_1003"],
            "test_speakers": [],
            "held_out_run": {"test_speakers": ["CREMA-D_1001", "CREMA-D_1002"]},
        },
        "metrics": {"source": "held-out run sibling-heldout"},
    }
    ex = cv.example_call(example_manifest, card, model="final")
    assert "held out by sibling-heldout" in ex.note and "final itself was trained on every speaker, these included" in ex.note
    assert cv.example_call(example_manifest, {"training": {"split": "none"}}) is None  # no held-out speaker: no example


# --- the microphone conversation -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")


def wav(y: np.ndarray) -> bytes:
    return to_wav_bytes(y, sr=SR)


@pytest.fixture
def mic(bundle) -> cv.MicConversation:
    return cv.MicConversation(bundle, settings=TimelineSettings(vad=VADSettings(detector="energy")))


def test_microphone_turns_are_appended_once_each_with_a_gap(mic):
    first, second = wav(speechlike(4.0, style="neutral", seed=1)), wav(speechlike(4.0, style="angry", seed=2))
    assert mic.turns == 0
    assert mic.add(first) is True and mic.turns == 1
    assert mic.add(first) is False and mic.turns == 1  # Streamlit hands the same recording back on every rerun
    assert mic.add(second) is True and mic.turns == 2
    y, sr = sf.read(io.BytesIO(mic.wav()), dtype="float32")
    assert sr == SR and len(y) == 2 * (4 + 1) * SR  # each turn, then gap_s (1 s) of silence
    assert not np.any(y[4 * SR : 5 * SR])


def test_microphone_timeline_grows_turn_by_turn(mic):
    mic.add(wav(speechlike(4.0, style="neutral", seed=1)))
    after_one = mic.result()
    assert after_one.roles == ["speaker"] and after_one.duration_s == pytest.approx(5.0)
    assert set(after_one.windows["emotion"]) == {"neutral"}
    mic.add(wav(speechlike(4.0, style="angry", seed=2)))
    after_two = mic.result()
    assert after_two.duration_s == pytest.approx(10.0)
    first_turn = after_two.windows[after_two.windows["end_s"] <= 5.0]
    second_turn = after_two.windows[after_two.windows["start_s"] >= 5.0 - 0.5]
    assert len(first_turn) and set(first_turn["emotion"]) == {"neutral"}
    assert len(second_turn) and set(second_turn["emotion"]) == {"angry"}
    segments = after_two.segments
    assert segments["emotion"].tolist() == ["neutral", "angry"]  # one segment per turn
    judged = (segments["end_s"] - segments["start_s"]).groupby(segments["emotion"]).sum()
    (card,) = cv.party_cards(after_two)
    assert card.role == "speaker" and card.dominant == judged.idxmax()
    assert card.dominant_share == f"{100 * judged.max() / judged.sum():.0f}% of judged speech"
    assert cv.segments_table(after_two)["emotion"].tolist() == ["neutral", "angry"]


def test_an_empty_recording_is_refused(mic):
    with pytest.raises(ParameterError, match="The recording is empty: record again"):
        mic.add(wav(np.zeros(0, np.float32)))
    with pytest.raises(UnreadableAudioError, match="Could not read turn3.wav as audio") as caught:
        mic.add(b"not a recording" * 30, name="turn3.wav")
    assert "object at 0x" not in str(caught.value)
    assert mic.turns == 0
    y, _ = sf.read(io.BytesIO(mic.wav()), dtype="float32")
    assert len(y) == SR // 10 and not np.any(y)  # nothing recorded yet: a tenth of a second of silence for the player
