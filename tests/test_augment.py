"""ser_lib.augment: each augmentation's behaviour, seeding, ranges, the telephone channel."""

from __future__ import annotations

import numpy as np
import pytest

from ser_lib.augment import (
    AUGMENTATIONS,
    AddNoise,
    Compose,
    PitchShift,
    Shift,
    TelephoneChannel,
    TimeStretch,
    make_augmentation,
    notebook_variants,
    telephone_channel,
)
from ser_lib.errors import ParameterError

SR = 16_000


@pytest.fixture
def y(synth):
    return synth.voice(1.0, sr=SR, f0=150.0, seed=1)


@pytest.fixture
def tone(synth):
    return synth.tone


def rng(seed=0):
    return np.random.default_rng(seed)


def band_energy(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_keeps_float32(name, y):
    out = make_augmentation(name, 0.5)(y, SR, rng=rng())
    assert out.dtype == np.float32 and out.ndim == 1 and np.isfinite(out).all()
    assert not np.array_equal(out, y)


@pytest.mark.parametrize("aug", [AddNoise(), Shift(), PitchShift(), TelephoneChannel()])
def test_length_kept(aug, y):
    assert len(aug(y, SR, rng=rng())) == len(y)


def test_time_stretch_changes_length(y):
    out = TimeStretch(min_rate=0.8, max_rate=0.8)(y, SR, rng=rng())
    assert len(out) == pytest.approx(len(y) / 0.8, rel=0.01)


def test_noise_raises_noise_level(tone):
    clean = tone(1.0, sr=SR, freq=1000.0, amplitude=0.5)
    out = AddNoise(min_factor=0.03, max_factor=0.03)(clean, SR, rng=rng())
    residual = out - clean
    assert np.std(residual) == pytest.approx(0.03 * 0.5, rel=0.05)  # amp = factor * max(y), N(0, 1)
    assert band_energy(out, SR, 3000, 8000) > 100 * band_energy(clean, SR, 3000, 8000)


def test_shift_rolls(y):
    out = Shift(max_seconds=0.1)(y, SR, rng=rng())
    lags = [k for k in range(-1600, 1601) if np.array_equal(np.roll(y, k), out)]
    assert len(lags) == 1


def test_pitch_shift_moves_pitch(tone):
    sine = tone(1.0, sr=SR, freq=440.0)
    out = PitchShift(min_semitones=12.0, max_semitones=12.0)(sine, SR, rng=rng())
    freqs = np.fft.rfftfreq(len(out), 1 / SR)
    assert freqs[np.argmax(np.abs(np.fft.rfft(out)))] == pytest.approx(880.0, abs=5.0)


def test_telephone_channel_band_limits(tone):
    noise = tone(2.0, sr=SR, freq=None, amplitude=0.5)
    out = telephone_channel(noise, sr=SR)
    assert out.dtype == np.float32
    assert len(out) == pytest.approx(len(noise), abs=2)
    in_band = band_energy(out, SR, 500, 3000) / band_energy(noise, SR, 500, 3000)
    assert in_band == pytest.approx(1.0, rel=0.2)  # speech band passes at its level
    # above 4 kHz: the 8 kHz line has nothing (only resampler leakage and mu-law noise is left)
    assert band_energy(out, SR, 4200, 8000) < 1e-3 * band_energy(noise, SR, 4200, 8000)
    # below 300 Hz: the 6th-order band-pass takes most of it away
    assert band_energy(out, SR, 0, 150) < 0.05 * band_energy(noise, SR, 0, 150)


def test_telephone_mu_law_adds_quantisation_noise(tone):
    sine = tone(1.0, sr=SR, freq=1000.0, amplitude=0.5)
    linear, mu = telephone_channel(sine, sr=SR, mu_law=False), telephone_channel(sine, sr=SR, mu_law=True)
    err = mu - linear
    assert 1e-4 < np.sqrt(np.mean(err**2)) < 0.02  # 8-bit mu-law: roughly 35-40 dB SNR on a loud tone


def test_seeded_rng_reproducible(y):
    aug = Compose([AddNoise(), Shift(), PitchShift(), TimeStretch(min_rate=0.9, max_rate=1.1)])
    a, b, c = aug(y, SR, rng=rng(7)), aug(y, SR, rng=rng(7)), aug(y, SR, rng=rng(8))
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)


def test_global_random_state_untouched(y):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    Compose([AddNoise(), Shift()])(y, SR, rng=rng())
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_probability_zero_and_one(y):
    assert np.array_equal(AddNoise(p=0.0)(y, SR, rng=rng()), y)
    outs = [Shift(max_seconds=0.2, p=0.5)(y, SR, rng=rng(s)) for s in range(40)]
    unchanged = sum(np.array_equal(o, y) for o in outs)
    assert 8 <= unchanged <= 32


def test_notebook_variants(y):
    rows = notebook_variants(y, SR, rng=rng())
    assert len(rows) == 3
    np.testing.assert_array_equal(rows[0], y)
    assert rows[1].shape == y.shape and not np.array_equal(rows[1], y)
    assert len(rows[2]) == pytest.approx(len(y) / 0.8, rel=0.01)  # stretch 0.8: 25% longer
    assert all(r.dtype == np.float32 for r in rows)


def test_notebook_variants_pitch_up_07_semitones(tone):
    sine = tone(2.0, sr=SR, freq=440.0)
    shifted = notebook_variants(sine, SR, rng=rng())[2]
    freqs = np.fft.rfftfreq(len(shifted), 1 / SR)
    peak = freqs[np.argmax(np.abs(np.fft.rfft(shifted * np.hanning(len(shifted)))))]
    assert peak == pytest.approx(440.0 * 2 ** (0.7 / 12), abs=2.0)


# --- error paths --------------------------------------------------------------------------------


def test_unknown_augmentation():
    with pytest.raises(ParameterError, match=r"Unknown augmentation 'reverb': expected one of \['noise'"):
        make_augmentation("reverb")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: AddNoise(min_factor=0.05, max_factor=0.01), r"AddNoise factor: min=0.05 must not exceed max=0.01"),
        (lambda: AddNoise(min_factor=-0.1, max_factor=0.1), r"min=-0.1 must be at least 0.0"),
        (lambda: TimeStretch(min_rate=1.2, max_rate=0.9), r"TimeStretch rate: min=1.2 must not exceed max=0.9"),
        (lambda: TimeStretch(min_rate=0.0, max_rate=0.9), r"min=0.0 must be at least 0.1"),
        (lambda: PitchShift(min_semitones=3, max_semitones=-3), r"PitchShift semitones: min=3 must not exceed"),
        (lambda: Shift(max_seconds=-0.5), r"Shift seconds: min=0.0 must not exceed max=-0.5"),
    ],
)
def test_bad_ranges(make, message):
    with pytest.raises(ParameterError, match=message):
        make()


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_probability(p):
    with pytest.raises(ParameterError, match=rf"Probability p={p} must be in \[0, 1\]"):
        AddNoise(p=p)
    with pytest.raises(ParameterError, match=r"Probability"):
        TelephoneChannel(p=p)


def test_bad_strength():
    with pytest.raises(ParameterError, match=r"strength=2 must be in \[0, 1\]"):
        make_augmentation("noise", 2)
