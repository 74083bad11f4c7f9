"""ser_lib.features: the notebook's 162 values, the log-mel front end, Whisper's log-mel."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from ser_lib.audio import load_audio
from ser_lib.errors import ParameterError
from ser_lib.features import notebook_features, notebook_features_reference, whisper_log_mel, window_frames
from ser_lib.frontends import LogMelFrontEnd, NotebookFrontEnd

SEED_SR = 22_050


@pytest.fixture
def speech(synth):
    return synth.voice(2.5, sr=SEED_SR, f0=140.0, seed=3)


# --- the notebook's 162 values ------------------------------------------------------------------


def test_notebook_features_shape_and_layout(speech):
    f = notebook_features(speech, sr=SEED_SR)
    assert f.shape == (162,) and f.dtype == np.float32 and np.isfinite(f).all()
    zcr, chroma, mfcc, rms, mel = f[0], f[1:13], f[13:33], f[33], f[34:]
    assert 0 < zcr < 0.5 and (chroma >= 0).all() and chroma.max() <= 1.0
    assert mfcc[0] < 0 and mel.shape == (128,) and (mel >= 0).all()
    assert rms == pytest.approx(np.sqrt(np.mean(speech**2)), rel=0.15)


def _agreement(y):
    ours, ref = notebook_features(y, sr=SEED_SR), notebook_features_reference(y, sr=SEED_SR)
    # Same librosa operations on the same float32 signal; only the STFT is shared instead of being
    # recomputed, so any difference is float32 rounding: relative 1e-5 on each value, plus an
    # absolute 1e-6 * scale of that block for values near zero (high mel bands, MFCC near 0).
    blocks = [slice(0, 1), slice(1, 13), slice(13, 33), slice(33, 34), slice(34, 162)]
    for b in blocks:
        np.testing.assert_allclose(ours[b], ref[b], rtol=1e-5, atol=1e-6 * np.abs(ref[b]).max())


def test_notebook_features_agree_with_notebook_calls(speech, synth):
    _agreement(speech)
    _agreement(synth.tone(1.3, sr=SEED_SR, freq=None, amplitude=0.3, seed=5))  # noise
    _agreement(synth.tone(2.0, sr=SEED_SR, freq=220.0, amplitude=0.8, noise=0.01))


def test_notebook_features_agree_on_a_real_clip(raw_sample):
    path = raw_sample / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.wav"
    _agreement(load_audio(path, sr=SEED_SR, offset=0.6, duration=2.5))


def test_notebook_front_end_crops_like_the_notebook(synth):
    y = synth.voice(4.0, sr=16_000, f0=150.0)
    fe = NotebookFrontEnd()
    cropped = fe.crop(librosa.resample(y, orig_sr=16_000, target_sr=SEED_SR, res_type="soxr_hq"))
    assert len(cropped) == int(2.5 * SEED_SR)
    window = librosa.resample(y, orig_sr=16_000, target_sr=SEED_SR, res_type="soxr_hq")[13230 : 13230 + 55125]
    np.testing.assert_allclose(fe(y, 16_000), notebook_features(window, sr=SEED_SR), rtol=1e-3, atol=1e-5)
    assert json.loads(json.dumps(fe.settings())) == {"kind": "notebook162", "sample_rate": 22050, "offset": 0.6, "duration": 2.5}


def test_notebook_front_end_keeps_short_uploads_whole(synth):
    y = synth.voice(0.9, sr=SEED_SR, f0=150.0)
    assert len(NotebookFrontEnd().crop(y)) == len(y)


def test_window_frames_takes_the_frames_a_window_covers():
    frames = np.arange(100, dtype=np.float32)[:, None]  # frame k holds k
    np.testing.assert_array_equal(window_frames(frames, 0.5, 1.0, rate=50)[:, 0], np.arange(25, 50))
    # frames given from frame 20 on: the same window, the same frames
    np.testing.assert_array_equal(window_frames(frames[20:], 0.5, 1.0, rate=50, first=20)[:, 0], np.arange(25, 50))
    # at least one frame, never past the end
    assert window_frames(frames, 1.0, 1.001, rate=50).shape == (1, 1)
    np.testing.assert_array_equal(window_frames(frames, 1.9, 5.0, rate=50)[:, 0], np.arange(95, 100))


# --- log-mel ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1.0, 3.0, 5.2])
def test_log_mel_front_end_shape(synth, seconds):
    fe = LogMelFrontEnd()
    out = fe(synth.voice(seconds, sr=22_050, f0=180.0), 22_050)
    assert out.shape == (fe.n_frames, fe.n_mels) == (151, 64)
    assert out.dtype == np.float32
    assert out.max() - out.min() <= 1.0 + 1e-6  # top_db=80, divided by 80


def test_log_mel_pads_short_and_crops_randomly(synth):
    fe = LogMelFrontEnd(seconds=1.0)
    short = fe.fit_length(np.ones(4000, np.float32))
    assert len(short) == 16_000 and short[:6000].sum() == 0 and short[6000:10_000].sum() == 4000
    y = np.arange(32_000, dtype=np.float32)
    a = fe.fit_length(y, rng=np.random.default_rng(1))
    b = fe.fit_length(y, rng=np.random.default_rng(2))
    assert len(a) == len(b) == 16_000 and a[0] != b[0]
    assert fe.fit_length(y)[0] == 8000  # centre crop without rng


# --- Whisper's log-mel --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16_000, 16_159, 48_000 + 7])
def test_whisper_log_mel_shape_and_range(synth, n):
    y = synth.voice(n / 16_000, sr=16_000, f0=130.0)[:n]
    mel = whisper_log_mel(y)
    assert mel.shape == (80, n // 160) and mel.dtype == np.float32
    # independent power mel (librosa's Slaney filters, n_fft 400, hop 160, last frame dropped)
    power = librosa.feature.melspectrogram(y=y, sr=16_000, n_fft=400, hop_length=160, n_mels=80)[:, :-1]
    max_log = np.log10(power.max())
    assert mel.max() == pytest.approx((max_log + 4) / 4, abs=1e-4)
    assert mel.max() - mel.min() <= 2.0 + 1e-6  # clamped 8 below the max, then / 4


def test_whisper_log_mel_rejects_stereo():
    with pytest.raises(ParameterError, match=r"expects mono audio of shape \(n,\), got shape=\(2, 16000\)"):
        whisper_log_mel(np.zeros((2, 16_000), np.float32))
