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


# --- the named augmentations (pages, CLI): each one's own property, at two strengths ---------------


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def peak_hz(x: np.ndarray, sr: int) -> float:
    """The strongest frequency (Hann window; 0.5 Hz bins on 2 s)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def circular_lag(x: np.ndarray, ref: np.ndarray) -> int:
    """``k`` with ``x`` closest to ``np.roll(ref, k)`` (circular cross-correlation peak)."""
    xcorr = np.fft.irfft(np.fft.rfft(x) * np.conj(np.fft.rfft(ref)), n=len(x))
    k = int(np.argmax(xcorr))
    return k if k <= len(x) // 2 else k - len(x)


def median_f0_ratio(out: np.ndarray, ref: np.ndarray, sr: int) -> float:
    """Median over frames voiced in both of f0(out) / f0(ref), tracked with librosa.pyin."""
    import librosa

    f_ref, voiced_ref, _ = librosa.pyin(ref, fmin=80, fmax=400, sr=sr, frame_length=1024)
    f_out, voiced_out, _ = librosa.pyin(out, fmin=80, fmax=400, sr=sr, frame_length=1024)
    both = voiced_ref & voiced_out
    assert both.mean() > 0.8, "the generated voice should be voiced almost throughout"
    return float(np.median(f_out[both] / f_ref[both]))


def test_every_named_augmentation_has_a_property_test():
    """A name added to AUGMENTATIONS needs its own property test below."""
    assert set(AUGMENTATIONS) == {"noise", "shift", "stretch", "pitch", "telephone"}


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_named_augmentations_are_seeded(name, y):
    aug = make_augmentation(name, 0.5)
    np.testing.assert_array_equal(aug(y, SR, rng=rng(3)), aug(y, SR, rng=rng(3)))
    if name in ("noise", "shift"):  # the random ones: another seed, another draw
        assert not np.array_equal(aug(y, SR, rng=rng(3)), aug(y, SR, rng=rng(4)))


@pytest.mark.parametrize("strength", [0.25, 1.0])
def test_named_noise_sets_the_signal_to_noise_ratio(strength, tone):
    sine = tone(1.0, sr=SR, freq=1000.0, amplitude=0.5)
    out = make_augmentation("noise", strength)(sine, SR, rng=rng(1))
    noise = out - sine
    expected_std = 0.07 * strength * 0.5  # factor 0.07 x strength, times the clip's peak
    assert np.std(noise) == pytest.approx(expected_std, rel=0.03)
    snr_db = 20 * np.log10(rms(sine) / rms(noise))
    assert snr_db == pytest.approx(20 * np.log10((0.5 / np.sqrt(2)) / expected_std), abs=0.3)  # 32.1 dB, 20.1 dB
    assert abs(float(np.mean(noise))) < 0.1 * expected_std  # zero-mean: it adds hiss, not an offset


@pytest.mark.parametrize("strength", [0.25, 1.0])
def test_named_shift_rolls_by_at_most_its_range(strength, y):
    aug = make_augmentation("shift", strength)
    limit = int(0.6 * strength * SR)  # 0.6 s at full strength
    lags = []
    for seed in range(20):
        out = aug(y, SR, rng=rng(seed))
        k = circular_lag(out, y)
        np.testing.assert_array_equal(out, np.roll(y, k))  # a pure circular shift: nothing else changes
        assert abs(k) <= limit
        lags.append(k)
    assert min(lags) < -limit // 4 and max(lags) > limit // 4  # both ways, spread over the range
    assert len(set(lags)) >= 15


@pytest.mark.parametrize("strength", [0.25, 1.0])
def test_named_stretch_changes_the_length_not_the_pitch(strength, tone):
    sine = tone(2.0, sr=SR, freq=440.0)
    out = make_augmentation("stretch", strength)(sine, SR, rng=rng())
    rate = 1.0 - 0.4 * strength  # slower: 0.9, 0.6
    assert len(out) == pytest.approx(len(sine) / rate, rel=0.01)
    assert peak_hz(out, SR) == pytest.approx(440.0, abs=2.0)


@pytest.mark.parametrize("strength", [0.25, 1.0])
def test_named_pitch_moves_f0_not_the_duration(strength, synth):
    voice = synth.voice(2.0, sr=SR, f0=150.0, seed=1)  # a wobbling f0 around 150 Hz, with harmonics
    out = make_augmentation("pitch", strength)(voice, SR, rng=rng())
    assert len(out) == len(voice)
    semitones = 4.0 * strength  # up: +1, +4
    assert median_f0_ratio(out, voice, SR) == pytest.approx(2 ** (semitones / 12), rel=0.01)


@pytest.mark.parametrize("strength", [0.0, 1.0])  # 0: band-limit only; above 0: and mu-law
def test_named_telephone_band_limits(strength, tone):
    noise = tone(2.0, sr=SR, freq=None, amplitude=0.5)
    out = make_augmentation("telephone", strength)(noise, SR, rng=rng())
    assert len(out) == len(noise)
    assert band_energy(out, SR, 500, 3000) / band_energy(noise, SR, 500, 3000) == pytest.approx(1.0, rel=0.2)
    assert band_energy(out, SR, 4200, 8000) < 1e-3 * band_energy(noise, SR, 4200, 8000)
    assert band_energy(out, SR, 0, 150) < 0.05 * band_energy(noise, SR, 0, 150)
    linear = telephone_channel(noise, sr=SR, mu_law=False)
    if strength == 0.0:
        np.testing.assert_allclose(out, linear[: len(noise)], atol=1e-6)
    else:  # 8-bit mu-law: quantisation noise some 30-40 dB under the signal
        snr_db = 20 * np.log10(rms(linear) / rms(out - linear[: len(noise)]))
        assert 25 < snr_db < 45


# --- the classes ---------------------------------------------------------------------------------


def test_time_stretch_changes_length(y):
    out = TimeStretch(min_rate=0.8, max_rate=0.8)(y, SR, rng=rng())
    assert len(out) == pytest.approx(len(y) / 0.8, rel=0.01)


def test_noise_raises_noise_level(tone):
    clean = tone(1.0, sr=SR, freq=1000.0, amplitude=0.5)
    out = AddNoise(min_factor=0.03, max_factor=0.03)(clean, SR, rng=rng())
    residual = out - clean
    assert np.std(residual) == pytest.approx(0.03 * 0.5, rel=0.05)  # amp = factor * max(y), N(0, 1)
    assert band_energy(out, SR, 3000, 8000) > 100 * band_energy(clean, SR, 3000, 8000)


def test_shift_rolls_within_max_seconds(y):
    out = Shift(max_seconds=0.1)(y, SR, rng=rng())
    k = circular_lag(out, y)
    np.testing.assert_array_equal(out, np.roll(y, k))
    assert 0 < abs(k) <= 1600


def test_pitch_shift_down(synth):
    voice = synth.voice(2.0, sr=SR, f0=180.0, seed=2)
    out = PitchShift(min_semitones=-3.0, max_semitones=-3.0)(voice, SR, rng=rng())
    assert median_f0_ratio(out, voice, SR) == pytest.approx(2 ** (-3 / 12), rel=0.01)


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
