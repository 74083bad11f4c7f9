"""Feature functions: the notebook's 162-value vector, Whisper's log-mel, and window pooling.

The front ends built on them (what a model hears, from file to input) are in :mod:`ser_lib.frontends`.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np

from .errors import ParameterError

# --- the notebook's 162 features ------------------------------------------------------------


def notebook_features(y: np.ndarray, *, sr: int = 22_050, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
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
    return np.concatenate([zcr.mean(axis=1), chroma.mean(axis=1), mfcc.mean(axis=1), rms.mean(axis=1), mel.mean(axis=1)]).astype(
        np.float32
    )


@lru_cache(maxsize=8)
def _mel_filters(sr: int, n_fft: int, n_mels: int = 128) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


@lru_cache(maxsize=512)
def _chroma_filters(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    """Chroma filters for a tuning (librosa's estimate is on a 0.01-bin grid, so this caches well)."""
    return librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=12).astype(np.float32)


def notebook_features_reference(y: np.ndarray, *, sr: int = 22_050) -> np.ndarray:
    """The notebook's own code: five separate librosa calls (kept to check and time against)."""
    zcr = np.mean(librosa.feature.zero_crossing_rate(y=y).T, axis=0)
    stft = np.abs(librosa.stft(y))
    chroma = np.mean(librosa.feature.chroma_stft(S=stft, sr=sr).T, axis=0)
    mfcc = np.mean(librosa.feature.mfcc(y=y, sr=sr).T, axis=0)
    rms = np.mean(librosa.feature.rms(y=y).T, axis=0)
    mel = np.mean(librosa.feature.melspectrogram(y=y, sr=sr).T, axis=0)
    return np.hstack([zcr, chroma, mfcc, rms, mel]).astype(np.float32)


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


def window_frames(
    frames: np.ndarray, start_s: float, end_s: float, *, rate: int = WHISPER_FRAME_RATE, first: int = 0
) -> np.ndarray:
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
