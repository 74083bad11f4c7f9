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
from ser_lib.calls import CallAnalysis, TimelineSettings, VADSettings, summarize
from ser_lib.errors import ParameterError

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
    assert list(table.columns) == ["start", "end", "party", "emotion", "confidence", "sentiment"]
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
    assert cv.REPLAY_SPEEDS["as fast as possible"] is None


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
    assert mic.turns == 0
    y, _ = sf.read(io.BytesIO(mic.wav()), dtype="float32")
    assert len(y) == SR // 10 and not np.any(y)  # nothing recorded yet: a tenth of a second of silence for the player
