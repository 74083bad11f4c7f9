"""Loading, resampling and validating audio.

Everything the library reads goes through :func:`load_audio` (files, bytes, uploads) or
:func:`iter_blocks` (long calls, streamed from disk), and everything it computes on goes
through :func:`validate_audio`: the one validator used at every public entry point.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from .config import SAMPLE_RATE
from .errors import (
    EmptyAudioError,
    NonFiniteAudioError,
    ParameterError,
    SilentAudioError,
    TooShortAudioError,
    UnreadableAudioError,
)

logger = logging.getLogger(__name__)

#: Peak amplitude below which a signal counts as silent (about -80 dBFS).
SILENCE_PEAK: float = 1e-4
#: Shortest clip the models judge, in seconds.
MIN_SECONDS: float = 0.25

AudioSource = str | os.PathLike | bytes | BinaryIO


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header without decoding it."""

    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def source_name(source: AudioSource) -> str:
    """How errors name ``source``: its path, a file object's name, or "the uploaded audio"."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else "the uploaded audio"


def _open(source: AudioSource) -> sf.SoundFile:
    """Open ``source`` with libsndfile (WAV incl. mu-law, AIFF, FLAC, Ogg Vorbis/Opus, MP3)."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise UnreadableAudioError(f"Audio file {name} does not exist: check the path.")
        if path.is_dir():
            raise UnreadableAudioError(f"Audio path {name} is a folder: pass an audio file.")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"Audio file {name} is empty (0 bytes): re-export or re-download it.")
        target: object = str(path)
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            if len(source) == 0:
                raise EmptyAudioError("The uploaded audio is empty (0 bytes).")
            target = io.BytesIO(bytes(source))
        else:
            target = source
    try:
        return sf.SoundFile(target)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UnreadableAudioError(
            f"Could not read {name} as audio ({exc}). Supported formats: WAV (PCM, mu-law, A-law), "
            "AIFF, FLAC, Ogg Vorbis/Opus and MP3; convert the file to one of them."
        ) from exc


def audio_info(source: AudioSource) -> AudioInfo:
    """Header facts of ``source`` (rate, channels, length) without decoding the samples."""
    with _open(source) as f:
        return AudioInfo(f.samplerate, f.channels, f.frames, f.format, f.subtype)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` [shape=(n,) or (n, channels)] from ``orig_sr`` to ``target_sr`` with soxr."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(f"Sample rates must be positive, got orig_sr={orig_sr}, target_sr={target_sr}")
    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(
    source: AudioSource,
    *,
    sr: int = SAMPLE_RATE,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    validate: bool = True,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode ``source``, mix to mono (unless ``mono=False``) and resample to ``sr``.

    Parameters
    ----------
    source : path, bytes or binary file object
    sr : int
        Target sample rate (default 16 kHz).
    mono : bool
        Average the channels. With ``mono=False`` the result has shape (channels, n).
    offset, duration : float
        Seconds to skip and to keep (``None``: to the end).
    validate : bool
        Run :func:`validate_audio` on the result.
    max_seconds : float or None
        Refuse files longer than this, with an error that says so.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (channels, n)], float32 in [-1, 1]
    """
    name = source_name(source)
    with _open(source) as f:
        native = f.samplerate
        if max_seconds is not None and f.frames / native > max_seconds:
            raise ParameterError(
                f"{name} lasts {f.frames / native:.0f} s, more than the {max_seconds:.0f} s this step "
                "accepts: analyse it as a call (`python -m ser_lib analyze-call` or the Call timeline page) instead."
            )
        start = int(round(offset * native))
        if start:
            f.seek(min(start, f.frames))
        frames = -1 if duration is None else int(round(duration * native))
        try:
            data = f.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UnreadableAudioError(f"{name} is truncated or corrupt: {exc}") from exc
    if mono:
        y = resample(data.mean(axis=1), orig_sr=native, target_sr=sr)
    else:
        y = resample(data, orig_sr=native, target_sr=sr).T
    y = np.ascontiguousarray(y, dtype=np.float32)
    if validate:
        validate_audio(y, sr=sr, name=name)
    return y


def validate_audio(y: np.ndarray, *, sr: int, name: str = "audio", min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Check that ``y`` is usable audio and return it.

    Raises
    ------
    EmptyAudioError, NonFiniteAudioError, SilentAudioError, TooShortAudioError
        Each with a message that names the problem and the value seen.
    """
    y = np.asarray(y)
    if y.size == 0:
        raise EmptyAudioError(f"{name} holds no samples: record or export it again.")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"{name} must be floating-point samples in [-1, 1], got dtype={y.dtype}")
    if not np.all(np.isfinite(y)):
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise NonFiniteAudioError(f"{name} contains {bad} NaN or infinite samples: the file is damaged.")
    seconds = y.shape[-1] / sr
    if seconds < min_seconds:
        raise TooShortAudioError(
            f"{name} lasts {seconds:.3f} s; at least {min_seconds} s of speech is needed to judge an emotion."
        )
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        raise SilentAudioError(
            f"{name} is silent (peak amplitude {peak:.1e}, below {SILENCE_PEAK:.0e}): check the microphone or the file."
        )
    return y


def iter_blocks(
    source: str | os.PathLike,
    *,
    sr: int = SAMPLE_RATE,
    block_seconds: float = 30.0,
) -> Iterator[np.ndarray]:
    """Stream ``source`` from disk in blocks, per channel, resampled to ``sr``.

    Memory stays flat however long the file is: only one block is decoded at a time, and the
    resampler keeps its state between blocks so the joins are seamless.

    Yields
    ------
    block : np.ndarray [shape=(channels, n)], float32
    """
    name = source_name(source)
    with _open(source) as f:
        native, channels = f.samplerate, f.channels
        resampler = None if native == sr else soxr.ResampleStream(native, sr, channels, dtype="float32", quality="HQ")
        block = max(1, int(block_seconds * native))
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise UnreadableAudioError(f"{name} is truncated or corrupt: {exc}") from exc
            last = len(data) < block
            if resampler is not None:
                data = resampler.resample_chunk(data, last=last)
            if len(data):
                yield np.ascontiguousarray(data.T)
            if last:
                break


def write_audio(path: str | os.PathLike, y: np.ndarray, *, sr: int, subtype: str | None = None) -> Path:
    """Write ``y`` [shape=(n,) or (channels, n)] to ``path`` (format from the extension)."""
    path = Path(path)
    data = y.T if y.ndim == 2 else y
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def to_wav_bytes(y: np.ndarray, *, sr: int) -> bytes:
    """``y`` as 16-bit WAV bytes (for audio players)."""
    buf = io.BytesIO()
    sf.write(buf, y.T if y.ndim == 2 else y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()
