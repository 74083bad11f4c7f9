"""Training-side augmentation, audiomentations-style, with a seeded ``numpy.random.Generator``.

Each augmentation is a small class: ranges validated in ``__init__``, probability ``p``, and
``__call__(samples, sample_rate, *, rng)`` returning a new float32 array. :class:`Compose`
chains them. Nothing here touches the global numpy random state.

The notebook's three rows per clip are :func:`notebook_variants`; :class:`TelephoneChannel`
makes a clip sound like a customer-care call (8 kHz band-limit, G.711 mu-law).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import librosa
import numpy as np
from scipy import signal

from .audio import resample
from .errors import ParameterError


def _check_range(name: str, lo: float, hi: float, *, minimum: float | None = None) -> None:
    if lo > hi:
        raise ParameterError(f"{name}: min={lo} must not exceed max={hi}")
    if minimum is not None and lo < minimum:
        raise ParameterError(f"{name}: min={lo} must be at least {minimum}")


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ParameterError(f"Probability p={p} must be in [0, 1]")


class Augmentation:
    """Base class: apply with probability ``p``."""

    p: float = 1.0

    def __call__(self, samples: np.ndarray, sample_rate: int, *, rng: np.random.Generator) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if self.p < 1.0 and rng.random() >= self.p:
            return samples.copy()
        return self.apply(samples, sample_rate, rng=rng).astype(np.float32, copy=False)

    def apply(self, samples: np.ndarray, sample_rate: int, *, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class AddNoise(Augmentation):
    """The notebook's noise: ``amp = max_factor * U(0, 1) * max(y)``; ``y + amp * N(0, 1)``."""

    def __init__(self, *, min_factor: float = 0.0, max_factor: float = 0.035, p: float = 1.0):
        _check_range("AddNoise factor", min_factor, max_factor, minimum=0.0)
        _check_p(p)
        self.min_factor, self.max_factor, self.p = min_factor, max_factor, p

    def apply(self, samples, sample_rate, *, rng):
        amp = rng.uniform(self.min_factor, self.max_factor) * float(np.max(samples))
        return samples + amp * rng.standard_normal(len(samples)).astype(np.float32)


class Shift(Augmentation):
    """Roll the signal by up to ``max_seconds`` either way (the notebook's unused ``shift``)."""

    def __init__(self, *, max_seconds: float = 0.3, p: float = 1.0):
        _check_range("Shift seconds", 0.0, max_seconds, minimum=0.0)
        _check_p(p)
        self.max_seconds, self.p = max_seconds, p

    def apply(self, samples, sample_rate, *, rng):
        n = int(self.max_seconds * sample_rate)
        return np.roll(samples, int(rng.integers(-n, n + 1)))


class TimeStretch(Augmentation):
    """Change the tempo by a rate in [min_rate, max_rate] (phase vocoder), pitch kept."""

    def __init__(self, *, min_rate: float = 0.8, max_rate: float = 1.25, p: float = 1.0):
        _check_range("TimeStretch rate", min_rate, max_rate, minimum=0.1)
        _check_p(p)
        self.min_rate, self.max_rate, self.p = min_rate, max_rate, p

    def apply(self, samples, sample_rate, *, rng):
        return librosa.effects.time_stretch(samples, rate=float(rng.uniform(self.min_rate, self.max_rate)))


class PitchShift(Augmentation):
    """Shift the pitch by [min_semitones, max_semitones], duration kept."""

    def __init__(self, *, min_semitones: float = -2.0, max_semitones: float = 2.0, p: float = 1.0):
        _check_range("PitchShift semitones", min_semitones, max_semitones)
        _check_p(p)
        self.min_semitones, self.max_semitones, self.p = min_semitones, max_semitones, p

    def apply(self, samples, sample_rate, *, rng):
        steps = float(rng.uniform(self.min_semitones, self.max_semitones))
        return librosa.effects.pitch_shift(samples, sr=sample_rate, n_steps=steps, res_type="soxr_hq")


@lru_cache(maxsize=4)
def _telephone_filter(rate: int) -> np.ndarray:
    return signal.butter(6, [300, 3400], btype="bandpass", fs=rate, output="sos")


def telephone_channel(samples: np.ndarray, *, sr: int, mu_law: bool = True) -> np.ndarray:
    """Pass ``samples`` through a telephone line: 8 kHz, 300-3400 Hz, 8-bit mu-law, back to ``sr``."""
    y8 = resample(np.asarray(samples, dtype=np.float32), orig_sr=sr, target_sr=8000)
    y8 = signal.sosfilt(_telephone_filter(8000), y8).astype(np.float32)
    if mu_law:
        peak = float(np.max(np.abs(y8))) or 1.0
        scale = min(1.0, 0.99 / peak)  # a line clips, but keep levels as a codec would see them
        y8 = librosa.mu_expand(librosa.mu_compress(y8 * scale, mu=255, quantize=True), mu=255, quantize=True) / scale
    return resample(y8.astype(np.float32), orig_sr=8000, target_sr=sr)


class TelephoneChannel(Augmentation):
    """Customer-call sound: 8 kHz band-limit (300-3400 Hz) and G.711 mu-law quantisation."""

    def __init__(self, *, mu_law: bool = True, p: float = 1.0):
        _check_p(p)
        self.mu_law, self.p = mu_law, p

    def apply(self, samples, sample_rate, *, rng):
        out = telephone_channel(samples, sr=sample_rate, mu_law=self.mu_law)
        return out[: len(samples)]


@dataclass
class Compose:
    """Apply ``transforms`` in order (each with its own ``p``)."""

    transforms: list[Augmentation]

    def __call__(self, samples: np.ndarray, sample_rate: int, *, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            samples = t(samples, sample_rate, rng=rng)
        return samples


#: Names the CLI and the pages use for single augmentations at a given strength in [0, 1].
def make_augmentation(name: str, strength: float = 0.5) -> Augmentation:
    """One augmentation by name (``noise``, ``shift``, ``stretch``, ``pitch``, ``telephone``).

    ``strength`` in [0, 1] scales its range: for previews and for the Training page.
    """
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength={strength} must be in [0, 1]")
    s = strength
    table = {
        "noise": lambda: AddNoise(min_factor=0.07 * s, max_factor=0.07 * s),
        "shift": lambda: Shift(max_seconds=0.6 * s),
        "stretch": lambda: TimeStretch(min_rate=1.0 - 0.4 * s, max_rate=1.0 - 0.4 * s),
        "pitch": lambda: PitchShift(min_semitones=4.0 * s, max_semitones=4.0 * s),
        "telephone": lambda: TelephoneChannel(mu_law=s > 0),
    }
    if name not in table:
        raise ParameterError(f"Unknown augmentation {name!r}: expected one of {sorted(table)}")
    return table[name]()


AUGMENTATIONS: tuple[str, ...] = ("noise", "shift", "stretch", "pitch", "telephone")


def notebook_variants(y: np.ndarray, sr: int, *, rng: np.random.Generator) -> list[np.ndarray]:
    """The notebook's three training rows per clip: as loaded; noise; stretch 0.8 then pitch +0.7.

    Stretch-then-pitch is done as one phase vocoder at the combined rate plus one resampling,
    which is what ``pitch_shift(time_stretch(y, 0.8), 0.7)`` computes, at half the cost.
    """
    noisy = AddNoise(min_factor=0.0, max_factor=0.035)(y, sr, rng=rng)
    pitch_rate = 2.0 ** (-0.7 / 12)
    stretched = librosa.effects.time_stretch(y, rate=0.8 * pitch_rate)
    shifted = resample(stretched, orig_sr=int(round(sr / pitch_rate)), target_sr=sr)
    return [y, noisy, shifted]
