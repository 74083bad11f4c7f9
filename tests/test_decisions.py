"""What the product says: "no speech found" for generated signals and never for held-out speech,
"uncertain" below the threshold (card, environment, option), and valence/arousal on the circumplex,
through the bundle, the predict command and the call analysis."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from call_audio import SR, make_call, speechlike
from ser_lib.affect import CIRCUMPLEX, CIRCUMPLEX_ANGLES, affect, describe, valence_arousal
from ser_lib.bundle import ModelBundle, Prediction
from ser_lib.calls import analyze_call
from ser_lib.cli import main
from ser_lib.config import EMOTIONS, MODELS_DIR
from ser_lib.decisions import ENV_UNCERTAIN_BELOW, NO_SPEECH, UNCERTAIN, speech_check, uncertain_below
from ser_lib.errors import ParameterError


def _coloured(n: int, power: float, rng) -> np.ndarray:
    f = np.fft.rfft(rng.normal(size=n))
    k = np.arange(len(f), dtype=float)
    k[0] = 1.0
    y = np.fft.irfft(f / k ** (power / 2), n)
    return y / np.abs(y).max()


def generated(seconds: float = 3.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    sig = {
        "silence": np.zeros(n),
        "dc": np.full(n, 0.4),
        "negative dc": np.full(n, -0.2),
        "white noise": 0.3 * rng.normal(size=n).clip(-3, 3) / 3,
        "quiet white noise": 0.003 * rng.normal(size=n),
        "pink noise": 0.3 * _coloured(n, 1.0, rng),
        "brown noise": 0.3 * _coloured(n, 2.0, rng),
        "chord": 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.6, 329.6)),
        "harmonic tone": 0.1 * sum(np.sin(2 * np.pi * k * 100 * t) / k for k in range(1, 15)),
        "AM tone": 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)),
        "sweep": 0.4 * np.sin(2 * np.pi * (100 * t + 300 * t**2)),
    }
    for f in (60, 150, 180, 220, 440, 1000, 3000):
        sig[f"tone {f} Hz"] = 0.3 * np.sin(2 * np.pi * f * t)
    return {k: v.astype(np.float32) for k, v in sig.items()}


@pytest.fixture(scope="module")
def default() -> ModelBundle:
    return ModelBundle.load(MODELS_DIR / "default")


# --- no speech --------------------------------------------------------------------------------------


def test_no_generated_signal_holds_speech():
    found = {name: speech_check(y, sr=SR) for name, y in generated().items()}
    assert [name for name, c in found.items() if c.found] == []
    assert len(found) == 18


@pytest.mark.parametrize("sr", [8_000, 16_000, 44_100])
def test_speech_is_found_at_any_rate(sr):
    from ser_lib.audio import resample

    y = resample(speechlike(2.0, style="angry"), orig_sr=SR, target_sr=sr)
    check = speech_check(y, sr=sr)
    assert check.found and check.peak_score >= 0.5 and check.speech_s > 0.3


def test_held_out_corpus_clips_are_never_no_speech(shared_corpora):
    """A sample of the default's held-out clips (all seven corpora), with the seven whose Silero scores never reach 0.5."""
    from ser_lib.audio import load_audio

    ev = json.loads((MODELS_DIR / "default" / "evaluation.json").read_text())
    paths = [p["path"] for p in ev["predictions"]][::120]
    hard = [
        "crema-d/1078_IEO_FEA_HI.opus",
        "ravdess/Actor_14/03-01-02-02-01-01-14.opus",
        "crema-d/1009_IEO_ANG_HI.opus",
        "crema-d/1009_TSI_ANG_XX.opus",
        "crema-d/1034_IEO_DIS_LO.opus",
        "ravdess/Actor_14/03-01-05-02-02-01-14.opus",
        "ravdess/Actor_14/03-01-02-02-01-02-14.opus",
    ]
    files = [shared_corpora / p.split("corpora/", 1)[1] for p in paths] + [shared_corpora / h for h in hard]
    missing = [f for f in files if not f.is_file()]
    if missing:
        pytest.skip(f"{len(missing)} held-out clips are not under {shared_corpora} (e.g. {missing[0]})")
    silent = [str(f) for f in files if not speech_check(load_audio(f, sr=SR), sr=SR).found]
    assert silent == [] and len(paths) >= 30 and len(files) == len(paths) + len(hard)
    assert {"URDU", "ASED", "EMOVO"} & {p["corpus"] for p in ev["predictions"][::120]}  # not only acted English


def test_a_constant_signal_is_no_speech_not_sad(default):
    pred = default.predict(np.full(3 * SR, 0.3, np.float32), sr=SR, name="dc.wav")
    assert pred.no_speech and pred.verdict == NO_SPEECH and not pred.uncertain
    assert pred.message.startswith("No speech found in dc.wav: the voice-activity detector heard no speech")
    assert pred.probabilities  # still there, for whoever wants them
    silent = default.predict(np.zeros(2 * SR, np.float32), sr=SR, name="quiet.wav")
    assert silent.no_speech and silent.probabilities == {} and "quiet.wav is silent" in silent.message


def test_predict_command_says_no_speech_and_keeps_speech(default, tmp_path, capsys):
    dc, tone, speech = tmp_path / "dc.wav", tmp_path / "tone.wav", tmp_path / "speech.wav"
    sf.write(dc, np.full(2 * SR, 0.5, np.float32), SR)
    sf.write(tone, 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * SR) / SR).astype(np.float32), SR)
    sf.write(speech, speechlike(2.5, style="angry"), SR)
    out_json = tmp_path / "p.json"
    code = main(["predict", str(dc), str(tone), str(speech), "--uncertain-below", "0", "--json", str(out_json)])
    assert code == 0
    lines = {ln.split(": ", 1)[0]: ln.split(": ", 1)[1] for ln in capsys.readouterr().out.splitlines() if ": " in ln}
    assert lines[str(dc)].startswith("no speech found (") and lines[str(tone)].startswith("no speech found (")
    assert lines[str(speech)].split(" ")[0] in EMOTIONS and "valence" in lines[str(speech)]
    rows = {r["path"]: r for r in json.loads(out_json.read_text())["predictions"]}
    assert rows[str(dc)]["verdict"] == NO_SPEECH and rows[str(dc)]["no_speech"] is True
    assert rows[str(speech)]["verdict"] == rows[str(speech)]["emotion"] and rows[str(speech)]["no_speech"] is False
    assert -1 <= rows[str(speech)]["valence"] <= 1 and -1 <= rows[str(speech)]["arousal"] <= 1


def test_a_call_of_noise_or_dc_is_no_speech(default, tmp_path):
    rng = np.random.default_rng(0)
    for name, y in (("noise", 0.2 * rng.normal(size=6 * SR)), ("dc", np.full(6 * SR, 0.3))):
        path = tmp_path / f"{name}.wav"
        sf.write(path, y.astype(np.float32), SR)
        result = analyze_call(path, bundle=default)
        assert result.no_speech and result.message.startswith("No speech found in") and result.segments.empty


# --- uncertain --------------------------------------------------------------------------------------


def test_uncertain_threshold_comes_from_option_env_or_card(monkeypatch):
    card = {"decision": {"uncertain_below": 0.42}}
    monkeypatch.delenv(ENV_UNCERTAIN_BELOW, raising=False)
    assert uncertain_below(card) == 0.42 and uncertain_below({}) == 0.0
    monkeypatch.setenv(ENV_UNCERTAIN_BELOW, "0.6")
    assert uncertain_below(card) == 0.6
    assert uncertain_below(card, override=0.1) == 0.1
    monkeypatch.setenv(ENV_UNCERTAIN_BELOW, "high")
    with pytest.raises(ParameterError, match="SER_UNCERTAIN_BELOW='high' is not a number"):
        uncertain_below(card)
    with pytest.raises(ParameterError, match="must be from 0 to 1"):
        uncertain_below(card, override=1.5)


def test_prediction_says_uncertain_below_the_threshold():
    p = Prediction("angry", 0.45, {"angry": 0.45, "sad": 0.3, "neutral": 0.25})
    assert p.verdict == "angry"
    unsure = p.with_threshold(0.5)
    assert unsure.uncertain and unsure.verdict == UNCERTAIN and unsure.probabilities == p.probabilities
    assert not unsure.with_threshold(0.45).uncertain  # at the threshold: named
    assert not Prediction("", float("nan"), {}, no_speech=True).with_threshold(0.9).uncertain


def test_default_bundle_uses_its_card_threshold(default, monkeypatch):
    assert default.uncertain_below == pytest.approx(default.card["decision"]["uncertain_below"])
    y = speechlike(2.5, style="neutral")
    default.uncertain_below = 1.0
    try:
        pred = default.predict(y, sr=SR)
        assert pred.uncertain and pred.verdict == UNCERTAIN and pred.emotion in EMOTIONS
    finally:
        default.uncertain_below = default.card["decision"]["uncertain_below"]


def test_predict_command_says_uncertain(tmp_path, capsys, monkeypatch):
    speech = tmp_path / "speech.wav"
    sf.write(speech, speechlike(2.5), SR)
    assert main(["predict", str(speech), "--uncertain-below", "1"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(str(speech)))
    assert line.startswith(f"{speech}: uncertain (most likely ")
    monkeypatch.setenv(ENV_UNCERTAIN_BELOW, "1")
    assert main(["predict", str(speech)]) == 0
    assert "uncertain (most likely" in capsys.readouterr().out


def test_call_windows_and_segments_say_uncertain_and_carry_affect(default, tmp_path):
    path = tmp_path / "call.wav"
    turns = [("agent", "neutral", 0.5, 4.0), ("customer", "angry", 5.0, 4.0)]
    sf.write(path, make_call(turns, total_s=10.0).T, SR)
    default.uncertain_below = 1.0
    try:
        unsure = analyze_call(path, bundle=default)
    finally:
        default.uncertain_below = default.card["decision"]["uncertain_below"]
    assert len(unsure.segments) and unsure.segments["uncertain"].all() and unsure.windows["uncertain"].all()
    data = json.loads(unsure.to_json())
    assert {s["verdict"] for s in data["segments"]} == {UNCERTAIN}
    assert all(s["emotion"] in EMOTIONS and set(s["probabilities"]) == set(EMOTIONS) for s in data["segments"])
    assert data["settings"]["uncertain_below"] == 1.0
    for frame in (unsure.windows, unsure.segments):
        assert frame[["valence", "arousal"]].abs().le(1.0).all().all()
    probs = unsure.windows[[f"p_{e}" for e in default.labels]].to_numpy()
    assert np.allclose(unsure.windows[["valence", "arousal"]].to_numpy(), affect(probs, labels=default.labels))
    sure = analyze_call(path, bundle=default, settings=None)
    assert sure.uncertain_below == pytest.approx(default.uncertain_below)
    named = sure.segments[~sure.segments["uncertain"]]
    assert (named["confidence"] >= default.uncertain_below).all()
    assert "mean_valence" in sure.summary["overall"] and "uncertain_share" in sure.summary["overall"]


# --- arousal and valence ----------------------------------------------------------------------------


def test_every_emotion_has_a_point_on_the_circumplex():
    assert set(CIRCUMPLEX) == set(EMOTIONS)
    for e, (v, a) in CIRCUMPLEX.items():
        assert -1 <= v <= 1 and -1 <= a <= 1
        if CIRCUMPLEX_ANGLES[e] is not None:
            assert np.hypot(v, a) == pytest.approx(1.0)
    assert CIRCUMPLEX["neutral"] == (0.0, 0.0)
    # Russell's quadrants: pleasant/aroused, unpleasant/aroused, unpleasant/subdued, pleasant/subdued
    assert CIRCUMPLEX["happy"][0] > 0 < CIRCUMPLEX["happy"][1]
    assert CIRCUMPLEX["angry"][0] < 0 < CIRCUMPLEX["angry"][1] and CIRCUMPLEX["fear"][0] < 0 < CIRCUMPLEX["fear"][1]
    assert CIRCUMPLEX["sad"][0] < 0 and CIRCUMPLEX["sad"][1] < 0
    assert CIRCUMPLEX["calm"][0] > 0 > CIRCUMPLEX["calm"][1]


def test_affect_is_the_probability_weighted_point():
    labels = list(EMOTIONS)
    one_hot = np.eye(len(labels))
    assert np.allclose(affect(one_hot, labels=labels), [CIRCUMPLEX[e] for e in labels])
    mix = {"angry": 0.5, "sad": 0.5}
    v, a = valence_arousal(mix)
    assert (v, a) == pytest.approx(tuple((np.array(CIRCUMPLEX["angry"]) + CIRCUMPLEX["sad"]) / 2))
    assert valence_arousal({"angry": 2.0, "sad": 2.0}) == pytest.approx((v, a))  # normalised
    assert tuple(affect(np.zeros(len(labels)), labels=labels)) == (0.0, 0.0)
    assert describe(-0.4, 0.8) == "agitated and negative" and describe(0.7, -0.7) == "subdued and positive"
    assert describe(0.0, 0.05) == "neutral"
