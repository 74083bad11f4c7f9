"""Feature extractors: the notebook's 162-value vector, log-mel, and Whisper's log-mel.

Each front end is a small class with a JSON-serialisable ``settings()`` dict (stored in a model
bundle's card) and ``__call__(y, sr)`` that returns the features the model sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import librosa
import numpy as np

from .audio import resample
from .errors import ParameterError

# --- the notebook's 162 features ------------------------------------------------------------


def seed_features(y: np.ndarray, *, sr: int = 22_050, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """The notebook's 162-value vector: means over frames of ZCR, 12 chroma, 20 MFCC, RMS, 128 mel.

    Computed from one STFT shared by chroma, mel, MFCC and RMS (the notebook computed it four
    times); the values agree with the notebook's five separate librosa calls.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr : int

    Returns
    -------
    features : np.ndarray [shape=(162,)], float32
    """
    y = np.asarray(y, dtype=np.float32)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length)
    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)).astype(np.float32)
    # chroma_stft(S=mag) as the notebook called it: tuning estimated from the magnitude, raw
    # chroma = filters @ magnitude, each frame normalised by its maximum. Plain matrix products
    # replace librosa's einsum, which is several times slower here.
    tuning = librosa.estimate_tuning(S=mag, sr=sr, bins_per_octave=12)
    chroma = librosa.util.normalize(_chroma_filters(sr, n_fft, round(float(tuning), 2)) @ mag, norm=np.inf, axis=0)
    mel = _mel_filters(sr, n_fft) @ (mag * mag)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    # from the samples, as the notebook did: RMS from the Hann-windowed STFT reads about 0.6x lower
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop_length)
    return np.concatenate(
        [zcr.mean(axis=1), chroma.mean(axis=1), mfcc.mean(axis=1), rms.mean(axis=1), mel.mean(axis=1)]
    ).astype(np.float32)


@lru_cache(maxsize=8)
def _mel_filters(sr: int, n_fft: int, n_mels: int = 128) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


@lru_cache(maxsize=512)
def _chroma_filters(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    """Chroma filters for a tuning (librosa's estimate is on a 0.01-bin grid, so this caches well)."""
    return librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=12).astype(np.float32)


def seed_features_reference(y: np.ndarray, *, sr: int = 22_050) -> np.ndarray:
    """The notebook's own code: five separate librosa calls (kept to check and time against)."""
    zcr = np.mean(librosa.feature.zero_crossing_rate(y=y).T, axis=0)
    stft = np.abs(librosa.stft(y))
    chroma = np.mean(librosa.feature.chroma_stft(S=stft, sr=sr).T, axis=0)
    mfcc = np.mean(librosa.feature.mfcc(y=y, sr=sr).T, axis=0)
    rms = np.mean(librosa.feature.rms(y=y).T, axis=0)
    mel = np.mean(librosa.feature.melspectrogram(y=y, sr=sr).T, axis=0)
    return np.hstack([zcr, chroma, mfcc, rms, mel]).astype(np.float32)


# --- front ends -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedFrontEnd:
    """The notebook's front end: 2.5 s from 0.6 s in, at 22,050 Hz, 162 averaged features."""

    kind: str = "seed162"
    sample_rate: int = 22_050
    offset: float = 0.6
    duration: float = 2.5

    def settings(self) -> dict:
        return asdict(self)

    def crop(self, y: np.ndarray, sr: int) -> np.ndarray:
        y = resample(y, orig_sr=sr, target_sr=self.sample_rate)
        start = int(self.offset * self.sample_rate)
        if len(y) - start < self.sample_rate * 0.5:  # short clip (an upload): keep all of it
            start = 0
        return y[start : start + int(self.duration * self.sample_rate)]

    def __call__(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``y`` at ``sr`` -> features [shape=(162,)]."""
        return seed_features(self.crop(y, sr), sr=self.sample_rate)


@dataclass(frozen=True)
class LogMelFrontEnd:
    """Log-mel spectrogram: 64 mels, 32 ms windows, 20 ms hop, at 16 kHz, fixed length.

    A 20 ms hop (rather than 10 ms) halves the CNN's cost on a 2-core machine; emotion cues
    (pitch contour, energy, spectral tilt) change more slowly than that.
    """

    kind: str = "logmel"
    sample_rate: int = 16_000
    n_fft: int = 512
    hop_length: int = 320
    n_mels: int = 64
    seconds: float = 3.0

    def settings(self) -> dict:
        return asdict(self)

    @property
    def n_frames(self) -> int:
        return int(self.seconds * self.sample_rate) // self.hop_length + 1

    def fit_length(self, y: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Crop (centre, or random with ``rng``) or zero-pad ``y`` to ``seconds``."""
        n = int(self.seconds * self.sample_rate)
        if len(y) >= n:
            start = (len(y) - n) // 2 if rng is None else int(rng.integers(0, len(y) - n + 1))
            return y[start : start + n]
        out = np.zeros(n, dtype=np.float32)
        start = (n - len(y)) // 2
        out[start : start + len(y)] = y
        return out

    def __call__(self, y: np.ndarray, sr: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """``y`` at ``sr`` -> log-mel [shape=(n_frames, n_mels)], float32 (dB / 80)."""
        y = self.fit_length(resample(y, orig_sr=sr, target_sr=self.sample_rate), rng=rng)
        mel = librosa.feature.melspectrogram(
            y=y, sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels, fmax=8000
        )
        return (librosa.power_to_db(mel, ref=1.0, top_db=80.0) / 80.0).T.astype(np.float32)


# --- Whisper's front end ----------------------------------------------------------------------

WHISPER_SR = 16_000
WHISPER_N_FFT = 400
WHISPER_HOP = 160
WHISPER_N_MELS = 80
#: Encoder output frames per second (one frame covers 20 ms).
WHISPER_FRAME_RATE = 50


@lru_cache(maxsize=4)
def _whisper_filters(n_mels: int) -> np.ndarray:
    return librosa.filters.mel(sr=WHISPER_SR, n_fft=WHISPER_N_FFT, n_mels=n_mels).astype(np.float32)


def whisper_log_mel(y: np.ndarray, *, n_mels: int = WHISPER_N_MELS) -> np.ndarray:
    """Whisper's log-mel input for 16 kHz audio ``y`` [shape=(n,)].

    Power STFT (n_fft 400, hop 160, Hann, centred, last frame dropped), Slaney mel filters,
    log10, clamped to 8 below the maximum, then ``(x + 4) / 4``: exactly Whisper's recipe.

    Returns
    -------
    mel : np.ndarray [shape=(n_mels, len(y) // 160)], float32
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"whisper_log_mel expects mono audio of shape (n,), got shape={y.shape}")
    spec = np.abs(librosa.stft(y, n_fft=WHISPER_N_FFT, hop_length=WHISPER_HOP, window="hann", center=True)) ** 2
    mel = _whisper_filters(n_mels) @ spec[:, :-1]
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)


def window_frames(frames: np.ndarray, start_s: float, end_s: float, *, rate: int = WHISPER_FRAME_RATE, first: int = 0) -> np.ndarray:
    """The encoder frames covering ``[start_s, end_s)`` of a signal: how every window is pooled.

    The one rule shared by :meth:`ser_lib.bundle.ModelBundle.window_probabilities` and the call
    engine: frame ``k`` covers ``[k / rate, (k + 1) / rate)``; a window takes frames
    ``round(start_s * rate)`` up to ``round(end_s * rate)`` (at least one, never past the end).

    Parameters
    ----------
    frames : np.ndarray [shape=(t, dim)]
        Frames of the signal, the first of which is frame number ``first`` of the whole signal.
    start_s, end_s : float
        The window, in seconds from the start of the whole signal.
    rate : int
        Frames per second.
    first : int
        Frame number of ``frames[0]``.

    Returns
    -------
    window : np.ndarray [shape=(k, dim)], a view into ``frames``
    """
    a = int(round(start_s * rate)) - first
    b = min(len(frames), int(round(end_s * rate)) - first)
    return frames[a : max(a + 1, b)]
