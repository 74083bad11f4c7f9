"""Front ends: how a model hears a clip, from the file to the array its network takes.

A front end owns both halves of the path, so training and serving call the same code:

- :meth:`load` decodes a file (or bytes, or a file object) at the front end's own sample rate and
  keeps the part it judges (the notebook's 2.5 s from 0.6 s in; everything for the others);
- :meth:`features` turns audio at any rate into the model's input (without the batch axis).

``fe.features(fe.load(path), fe.sample_rate)`` is what the training extractors
(:mod:`ser_lib.featurize`) store and what :meth:`ser_lib.bundle.ModelBundle.predict_source` computes
for the same file. A front end's ``settings()`` dict is stored in a bundle's card;
:func:`frontend_from_settings` rebuilds it (old cards' ``"seed162"`` kind is read as the notebook's).

Three front ends:

- :class:`NotebookFrontEnd`: the notebook's 162 averaged features (ZCR, chroma, MFCC, RMS, mel).
- :class:`LogMelFrontEnd`: a fixed-length 64-band log-mel.
- :class:`EncoderFrontEnd`: a pretrained encoder's frames (Whisper base), 50 per second.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import librosa
import numpy as np

from .audio import AudioSource, load_audio, resample
from .backbone import CHUNKS
from .config import SAMPLE_RATE
from .errors import BundleError
from .features import WHISPER_FRAME_RATE, notebook_features


def _load(source: AudioSource, sr: int, max_seconds: float | None) -> np.ndarray:
    """``load_audio`` at ``sr``, with the caller's duration limit (default: the library's)."""
    return load_audio(source, sr=sr) if max_seconds is None else load_audio(source, sr=sr, max_seconds=max_seconds)


@dataclass(frozen=True)
class NotebookFrontEnd:
    """The notebook's front end: 2.5 s from 0.6 s in, at 22,050 Hz, 162 averaged features.

    A clip with less than 0.5 s left after the offset (a short upload) is kept whole.
    """

    kind: str = "notebook162"
    sample_rate: int = 22_050
    offset: float = 0.6
    duration: float = 2.5

    def settings(self) -> dict:
        return asdict(self)

    def crop(self, y: np.ndarray) -> np.ndarray:
        """The part of ``y`` (at :attr:`sample_rate`) the notebook judged."""
        start = int(self.offset * self.sample_rate)
        if len(y) - start < self.sample_rate * 0.5:
            start = 0
        return y[start : start + int(self.duration * self.sample_rate)]

    def load(self, source: AudioSource, *, max_seconds: float | None = None) -> np.ndarray:
        """Decode ``source`` straight to 22,050 Hz (one resampling from the file's own rate) and crop."""
        return self.crop(_load(source, self.sample_rate, max_seconds))

    def features(self, y: np.ndarray, sr: int, *, cropped: bool = False) -> np.ndarray:
        """``y`` at ``sr`` -> features [shape=(162,)]; ``cropped``: ``y`` is already :meth:`load`'s output."""
        y = resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=self.sample_rate)
        return notebook_features(y if cropped else self.crop(y), sr=self.sample_rate)

    __call__ = features


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

    def load(self, source: AudioSource, *, max_seconds: float | None = None) -> np.ndarray:
        """Decode ``source`` at 16 kHz, mono."""
        return _load(source, self.sample_rate, max_seconds)

    def features(self, y: np.ndarray, sr: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """``y`` at ``sr`` -> log-mel [shape=(n_frames, n_mels)], float32 (dB / 80)."""
        y = self.fit_length(resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=self.sample_rate), rng=rng)
        mel = librosa.feature.melspectrogram(
            y=y, sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels, fmax=8000
        )
        return (librosa.power_to_db(mel, ref=1.0, top_db=80.0) / 80.0).T.astype(np.float32)

    __call__ = features


_encoders: dict = {}
_encoders_lock = threading.Lock()


def shared_encoder(backbone: str = "whisper-base", *, threads: int | None = None):
    """One loaded encoder per (backbone, threads) in this process, made on first use.

    Bundles, featurising workers and the call engine share it; its ``encode`` is thread-safe.
    """
    key = (backbone, threads)
    with _encoders_lock:
        if key not in _encoders:
            from .backbone import WhisperEncoder

            _encoders[key] = WhisperEncoder(backbone, threads=threads)
        return _encoders[key]


@dataclass(frozen=True)
class EncoderFrontEnd:
    """A pretrained encoder's frames [shape=(t, dim)], 50 per second; the head sees them all.

    Clips longer than ``chunk_seconds`` are encoded in consecutive pieces of that length
    (:data:`ser_lib.backbone.CHUNKS`).
    """

    kind: str = "encoder"
    backbone: str = "whisper-base"
    sample_rate: int = SAMPLE_RATE
    frame_rate: int = WHISPER_FRAME_RATE
    train_frames: int = 150
    chunk_seconds: float = CHUNKS.clip_s

    def settings(self) -> dict:
        from .backbone import weights_sha256

        return {**asdict(self), "sha256": weights_sha256(self.backbone)}

    def encoder(self, *, threads: int | None = None):
        """The loaded encoder (shared in this process)."""
        return shared_encoder(self.backbone, threads=threads)

    def load(self, source: AudioSource, *, max_seconds: float | None = None) -> np.ndarray:
        """Decode ``source`` at 16 kHz, mono."""
        return _load(source, self.sample_rate, max_seconds)

    def features(self, y: np.ndarray, sr: int, *, threads: int | None = None) -> np.ndarray:
        """Encoder frames of ``y`` at ``sr`` [shape=(ceil(n / 320), dim)], float32."""
        y = resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=self.sample_rate)
        enc = self.encoder(threads=threads)
        step = int(self.chunk_seconds * self.sample_rate)
        if len(y) <= step:
            return enc.encode(y)
        return np.concatenate([enc.encode(y[i : i + step]) for i in range(0, len(y), step)], axis=0)

    __call__ = features


FrontEnd = NotebookFrontEnd | LogMelFrontEnd | EncoderFrontEnd

#: Front-end kinds as cards name them; ``seed162`` is the notebook's, in cards written before 0.2.
FRONTEND_KINDS: dict[str, type] = {
    "notebook162": NotebookFrontEnd,
    "seed162": NotebookFrontEnd,
    "logmel": LogMelFrontEnd,
    "encoder": EncoderFrontEnd,
}


def frontend_from_settings(settings: dict) -> FrontEnd:
    """Rebuild a front end from the settings stored in a card."""
    kind = settings.get("kind") if isinstance(settings, dict) else None
    if kind not in FRONTEND_KINDS:
        raise BundleError(f"Unknown front end kind={kind!r} in the card: expected one of {sorted(FRONTEND_KINDS)}")
    cls = FRONTEND_KINDS[kind]
    names = set(cls.__dataclass_fields__) - {"kind"}
    try:
        return cls(**{k: v for k, v in settings.items() if k in names})
    except TypeError as exc:
        raise BundleError(f"The card's front end settings {settings} do not fit {cls.__name__}: {exc}") from exc
