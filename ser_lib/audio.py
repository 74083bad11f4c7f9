"""Loading, resampling and validating audio.

Everything the library reads goes through :func:`load_audio` (files, bytes, uploads) or
:func:`iter_blocks` (long calls, streamed from disk), and everything it computes on goes
through :func:`validate_audio`: the one validator used at every public entry point.

Both decode with one bounded decoder, so a clip, a call, a page and the live service get the same
samples and the same errors from the same file:

- the header is checked before anything is allocated: a sample rate within
  :data:`~ser_lib.config.MIN_SAMPLE_RATE`-:data:`~ser_lib.config.MAX_SAMPLE_RATE` (1,000-384,000 Hz),
  1 to :data:`~ser_lib.config.MAX_CHANNELS` (16) channels, and a WAV file holding the data its
  header announces (:func:`check_complete`);
- the header's length is never trusted to size anything: the file is decoded in reads of at most
  about 4 MB until the data really ends (a streaming FLAC's ``total_samples = 0``, an MP3 Xing count
  or an Opus granule position larger than the file are all just decoded to their real end);
- a duration limit per entry point (``max_seconds``: :data:`~ser_lib.config.MAX_CLIP_SECONDS` for a
  clip, :data:`~ser_lib.config.MAX_UPLOAD_SECONDS` for an uploaded call,
  :data:`~ser_lib.config.MAX_CALL_SECONDS` by default) is checked while decoding: decoding stops as
  soon as the audio passes it, with :class:`~ser_lib.errors.AudioTooLongError`;
- a believable header length that the data falls short of (a truncated FLAC, MP3 or Opus file)
  is reported as truncated, for clips and calls alike.

Every failure is a :class:`~ser_lib.errors.AudioError` naming the file as the caller named it.
"""

from __future__ import annotations

import io
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from .config import (
    INFO_PROBE_SECONDS,
    MAX_CALL_SECONDS,
    MAX_CHANNELS,
    MAX_CLIP_SECONDS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SAMPLE_RATE,
)
from .errors import (
    AudioTooLongError,
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

#: Samples (frames x channels) decoded per read: 4 MB of float32, whatever the header says.
_READ_SAMPLES = 1 << 20
#: Most frames per byte of file a believable header may claim, per compressed format (MP3 tops out
#: near 12; Opus in silence and FLAC's constant subframes reach a few thousand). A longer claim is
#: treated as no length at all.
_MAX_FRAMES_PER_BYTE = {"MP3": 48, "OGG": 4096, "FLAC": 4096}
#: Errors libsndfile (through soundfile and cffi) raises for files it cannot decode.
_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError, MemoryError)
_FORMATS = "WAV (PCM, mu-law, A-law), AIFF, FLAC, Ogg Vorbis/Opus and MP3"


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (decoding only where the header states no length).

    ``exact`` is False when ``frames`` is an estimate: the header's own guess (an MP3 without a
    Xing/Info tag), or, for a header that states no believable length, the frames found in the
    first :data:`~ser_lib.config.INFO_PROBE_SECONDS` of decoding: the file lasts at least that long.
    """

    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    exact: bool = True

    @property
    def duration(self) -> float:
        """Seconds (an estimate, or a lower bound, when not :attr:`exact`)."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def source_name(source: AudioSource) -> str:
    """How errors name ``source``: its path, a file object's name, or "the uploaded audio"."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else "the uploaded audio"


# --- the raw bytes: size and a peek at the header, without disturbing a file object -------------


def _peek(source: AudioSource, offset: int = 0, n: int = 1 << 16) -> tuple[bytes, int | None]:
    """Up to ``n`` bytes of ``source`` from ``offset``, and its size in bytes (None: unknown)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                f.seek(offset)
                return f.read(n), os.fstat(f.fileno()).st_size
        if isinstance(source, (bytes, bytearray, memoryview)):
            return bytes(source[offset : offset + n]), len(source)
        if source.seekable():
            pos = source.tell()
            try:
                size = source.seek(0, io.SEEK_END) - pos
                source.seek(pos + offset)
                return source.read(n) or b"", size
            finally:
                source.seek(pos)
    except (OSError, AttributeError, ValueError):
        pass
    return b"", None


def check_complete(source: AudioSource, *, name: str | None = None) -> None:
    """Raise :class:`UnreadableAudioError` if a WAV file's header promises more audio than it holds.

    libsndfile silently plays a cut-off WAV up to where it stops; the library says the recording is
    incomplete instead of judging part of it. Files that are not RIFF/RIFX WAVE, a data chunk of
    size 0 or 0xFFFFFFFF (a recorder that never finalised the header) and a data chunk beyond the
    first 64 KB pass unchecked. ``name`` names the source in the message (default :func:`source_name`).
    """
    head, size = _peek(source)
    if size is not None:
        _check_wav_complete(head, size, name or source_name(source))


def _check_wav_complete(head: bytes, size: int, name: str) -> None:
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return
    order = "<" if head[:4] == b"RIFF" else ">"
    pos = 12
    while pos + 8 <= len(head):
        cid = head[pos : pos + 4]
        (csize,) = struct.unpack(order + "I", head[pos + 4 : pos + 8])
        if cid == b"data":
            if csize in (0, 0xFFFFFFFF):  # a recorder that never finalised the header: nothing to compare
                return
            have = max(size - (pos + 8), 0)
            if have < csize:
                raise UnreadableAudioError(
                    f"{name} is truncated: its header announces {csize:,} bytes of audio but the file holds only "
                    f"{have:,} ({100 * have / csize:.0f}%). Copy or export the recording again."
                )
            return
        pos += 8 + csize + (csize & 1)


def _mp3_has_length_tag(source: AudioSource, head: bytes) -> bool:
    """Whether an MP3's first frame carries a Xing, Info or VBRI tag (an exact frame count)."""
    if head[:3] == b"ID3" and len(head) >= 10:
        size = (head[6] & 127) << 21 | (head[7] & 127) << 14 | (head[8] & 127) << 7 | (head[9] & 127)
        head, _ = _peek(source, 10 + size + (10 if head[5] & 0x10 else 0), 1 << 12)
    for pos in range(max(len(head) - 1, 0)):
        if head[pos] == 0xFF and head[pos + 1] & 0xE0 == 0xE0:  # the first frame's sync word
            frame = head[pos : pos + 200]
            return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))
    return False


# --- opening and decoding -----------------------------------------------------------------------


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
    except _DECODE_ERRORS as exc:
        raise UnreadableAudioError(
            f"Could not read {name} as audio ({exc}). Supported formats: {_FORMATS}; convert the file to one of them."
        ) from exc


def _check_header(f: sf.SoundFile, name: str) -> None:
    """Refuse a sample rate or channel count outside the documented ranges, before any decoding."""
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        raise UnreadableAudioError(
            f"{name} states a sample rate of {f.samplerate:,} Hz, outside the {MIN_SAMPLE_RATE:,}-{MAX_SAMPLE_RATE:,} Hz "
            "this library decodes: its header is damaged, or it was exported at an unusual rate. Re-export it at "
            "8-48 kHz (for instance `ffmpeg -i IN -ar 16000 OUT.wav`)."
        )
    if not 1 <= f.channels <= MAX_CHANNELS:
        raise UnreadableAudioError(
            f"{name} states {f.channels} channels, outside the 1-{MAX_CHANNELS} this library decodes (a call has 1 or 2): "
            "its header is damaged, or mix it down (for instance `ffmpeg -i IN -ac 2 OUT.wav`)."
        )


def _too_long(name: str, seconds: float, max_seconds: float, *, at_least: bool) -> AudioTooLongError:
    fix = (
        "analyse it as a call (`python -m ser_lib analyze-call` or the Call timeline page) instead"
        if max_seconds <= MAX_CLIP_SECONDS
        else f"split it into parts (for instance `ffmpeg -i IN -f segment -segment_time {max_seconds:.0f} part%03d.wav`)"
    )
    if at_least:
        text = f"{name} lasts more than the {max_seconds:.0f} s this step accepts (decoding stopped there): {fix}."
    else:
        text = f"{name} lasts {seconds:.0f} s, more than the {max_seconds:.0f} s this step accepts: {fix}."
    return AudioTooLongError(text, seconds=seconds, max_seconds=max_seconds)


class _Decoder:
    """One open file decoded in bounded reads until its data really ends.

    ``expected`` is the header's frame count where it is believable and exact (None otherwise);
    ``estimate`` is the header's count where believable (exact or not). Reading past
    ``max_seconds`` raises :class:`AudioTooLongError`; reaching the real end well short of
    ``expected`` raises :class:`UnreadableAudioError` (truncated).
    """

    def __init__(self, source: AudioSource, *, max_seconds: float | None):
        if max_seconds is not None and not (max_seconds > 0 and np.isfinite(max_seconds)):
            raise ParameterError(f"max_seconds={max_seconds} must be a positive number of seconds, or None for no limit")
        self.name = source_name(source)
        head, size = _peek(source)  # before libsndfile owns a file object's position
        self.file = _open(source)
        try:
            _check_header(self.file, self.name)
            if size is not None:
                _check_wav_complete(head, size, self.name)
            self.estimate, self.expected = self._header_frames(source, head, size)
        except BaseException:
            self.file.close()
            raise
        self.sample_rate, self.channels = self.file.samplerate, self.file.channels
        self.max_seconds = max_seconds
        self.max_frames = None if max_seconds is None else int(max_seconds * self.sample_rate)
        self.read_frames = max(1, _READ_SAMPLES // self.channels)
        self.position = 0
        self.ended = False

    def _header_frames(self, source: AudioSource, head: bytes, size: int | None) -> tuple[int | None, int | None]:
        f = self.file
        frames = f.frames
        if frames < 0 or frames >= 1 << 62:  # SF_COUNT_MAX: the header leaves the length open
            return None, None
        per_byte = _MAX_FRAMES_PER_BYTE.get(f.format)
        if per_byte is not None and size is not None and frames > per_byte * size:
            return None, None
        if f.format == "MP3" and not _mp3_has_length_tag(source, head):
            return frames, None  # mpg123's guess from the first frame's bitrate
        return frames, frames

    def __enter__(self) -> _Decoder:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def refuse_if_longer(self) -> None:
        """Refuse at once a file whose exact header length is over the limit (no decoding)."""
        if self.max_frames is not None and self.expected is not None and self.expected > self.max_frames:
            raise _too_long(self.name, self.expected / self.sample_rate, self.max_seconds, at_least=False)

    def skip_to(self, frame: int) -> None:
        """Position the decoder at ``frame`` (seeking where libsndfile can, decoding otherwise)."""
        if self.expected is not None and frame <= self.expected:
            try:
                self.position = self.file.seek(frame)
                return
            except _DECODE_ERRORS:
                pass  # decode up to it instead
        while self.position < frame and not self.ended:
            self.read(min(self.read_frames, frame - self.position))

    def read(self, frames: int) -> np.ndarray:
        """Decode up to ``frames`` frames [shape=(n, channels)], float32; ``ended`` is set at the real end.

        Reads stop at an exact header length (the decoder is never asked to run into what follows
        it), and at most one frame past ``max_seconds``. Calls libsndfile directly:
        ``SoundFile.read`` clips every read to the header's frame count and seeks after each one,
        which fails at the end of a FLAC stream that leaves its length open.
        """
        want, at_end = frames, False
        if self.expected is not None and self.expected - self.position <= frames:
            want, at_end = max(self.expected - self.position, 0), True
        if self.max_frames is not None and self.max_frames + 1 - self.position < want:
            want, at_end = self.max_frames + 1 - self.position, False
        out = np.empty((max(want, 0), self.channels), dtype=np.float32)
        got = code = 0
        if want > 0:
            try:
                got = sf._snd.sf_readf_float(self.file._file, sf._ffi.cast("float *", out.ctypes.data), want)
                code = sf._snd.sf_error(self.file._file)
            except _DECODE_ERRORS as exc:
                raise self._corrupt(exc) from exc
        self.position += got
        if code:
            raise self._corrupt(sf.LibsndfileError(code))
        if self.max_frames is not None and self.position > self.max_frames:
            raise _too_long(self.name, self.position / self.sample_rate, self.max_seconds, at_least=True)
        out = out[:got] if got < len(out) else out
        if got and not np.isfinite(out).all():
            bad = int(np.count_nonzero(~np.isfinite(out)))
            raise NonFiniteAudioError(
                f"{self.name} decodes to {bad} NaN or infinite samples before {self.position / self.sample_rate:.1f} s: "
                "the file is damaged. Copy or export the recording again."
            )
        if got < want or at_end:
            self.ended = True
            self._check_length()
        return out

    def _corrupt(self, exc: Exception) -> UnreadableAudioError:
        return UnreadableAudioError(
            f"{self.name} is truncated or corrupt after {self.position / self.sample_rate:.1f} s of audio ({exc}). "
            "Copy or export the recording again."
        )

    def _check_length(self) -> None:
        """At the real end: the data must not fall short of an exact header length by more than
        :data:`MIN_SECONDS` or 1% (a few damaged frames a decoder skips are let through)."""
        if self.expected is None:
            return
        slack = max(int(MIN_SECONDS * self.sample_rate), self.expected // 100)
        if self.position < self.expected - slack:
            raise UnreadableAudioError(
                f"{self.name} is truncated or damaged: its header announces {self.expected / self.sample_rate:.2f} s but "
                f"only {self.position / self.sample_rate:.2f} s could be decoded. Copy or export the recording again."
            )


def audio_info(source: AudioSource) -> AudioInfo:
    """Header facts of ``source`` (rate, channels, length), checked as :func:`load_audio` checks them.

    A header that states no believable length is not repeated: up to
    :data:`~ser_lib.config.INFO_PROBE_SECONDS` are decoded to measure it, and :attr:`AudioInfo.exact`
    says whether the figure is exact. Raises the errors :func:`load_audio` raises for a bad header.
    """
    with _Decoder(source, max_seconds=None) as d:
        f = d.file
        frames, exact = d.expected, True
        if frames is None:
            probe = int(INFO_PROBE_SECONDS * d.sample_rate)
            while not d.ended and d.position < probe:
                d.read(min(d.read_frames, probe - d.position))
            frames, exact = d.position, d.ended
            if not exact and d.estimate is not None and d.estimate > frames:
                frames = d.estimate  # the header's guess, believable and not contradicted
        return AudioInfo(f.samplerate, f.channels, frames, f.format, f.subtype, exact)


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
    max_seconds: float | None = MAX_CALL_SECONDS,
) -> np.ndarray:
    """Decode ``source``, mix to mono (unless ``mono=False``) and resample to ``sr``.

    Parameters
    ----------
    source : path, bytes or binary file object
        WAV (PCM, mu-law, A-law), AIFF, FLAC, Ogg Vorbis/Opus or MP3, at 1,000-384,000 Hz with
        1-16 channels.
    sr : int
        Target sample rate (default 16 kHz).
    mono : bool
        Average the channels. With ``mono=False`` the result has shape (channels, n).
    offset, duration : float
        Seconds to skip and to keep (``None``: to the end).
    validate : bool
        Run :func:`validate_audio` on the result.
    max_seconds : float or None
        Refuse audio longer than this (default :data:`~ser_lib.config.MAX_CALL_SECONDS`; pass
        :data:`~ser_lib.config.MAX_CLIP_SECONDS` for a clip): checked while decoding, which stops
        as soon as the audio passes it. ``None``: no limit (memory then grows with the file).

    Returns
    -------
    y : np.ndarray [shape=(n,) or (channels, n)], float32 in [-1, 1]

    Raises
    ------
    UnreadableAudioError
        Missing, unsupported, corrupt or truncated files, and headers outside the limits.
    EmptyAudioError, AudioTooLongError
        And, with ``validate``, the errors of :func:`validate_audio`.
    """
    if not (offset >= 0 and np.isfinite(offset)) or (duration is not None and not (duration >= 0 and np.isfinite(duration))):
        raise ParameterError(f"offset={offset} and duration={duration} must be non-negative seconds (duration None: to the end)")
    with _Decoder(source, max_seconds=max_seconds) as d:
        native = d.sample_rate
        start = int(round(offset * native))
        end = None if duration is None else start + int(round(duration * native))
        if end is None or (d.max_frames is not None and end > d.max_frames):
            d.refuse_if_longer()
        if start:
            d.skip_to(start)
        pieces = []
        while not d.ended and (end is None or d.position < end):
            data = d.read(d.read_frames if end is None else min(d.read_frames, end - d.position))
            if len(data):
                pieces.append(data.mean(axis=1) if mono else data)
    if not pieces:
        data = np.zeros((0,) if mono else (0, d.channels), np.float32)
    else:
        data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    y = resample(data, orig_sr=native, target_sr=sr)
    y = np.ascontiguousarray(y if mono else y.T, dtype=np.float32)
    if validate:
        validate_audio(y, sr=sr, name=d.name)
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
    source: AudioSource,
    *,
    sr: int = SAMPLE_RATE,
    block_seconds: float = 30.0,
    max_seconds: float | None = MAX_CALL_SECONDS,
) -> Iterator[np.ndarray]:
    """Stream ``source`` in blocks, per channel, resampled to ``sr``.

    Memory stays flat however long the file is: at most ``block_seconds`` of audio (and one read
    of about 4 MB) is held at a time, and the resampler keeps its state between blocks so the
    joins are seamless. The file is decoded and checked as :func:`load_audio` does it; past
    ``max_seconds`` (default :data:`~ser_lib.config.MAX_CALL_SECONDS`) the stream stops with
    :class:`~ser_lib.errors.AudioTooLongError`.

    Yields
    ------
    block : np.ndarray [shape=(channels, n)], float32
    """
    if not (block_seconds > 0 and np.isfinite(block_seconds)):
        raise ParameterError(f"block_seconds={block_seconds} must be a positive number of seconds")
    with _Decoder(source, max_seconds=max_seconds) as d:
        d.refuse_if_longer()
        native, channels = d.sample_rate, d.channels
        resampler = None if native == sr else soxr.ResampleStream(native, sr, channels, dtype="float32", quality="HQ")
        block = max(1, int(block_seconds * native))
        while not d.ended:
            pieces, got = [], 0
            while got < block and not d.ended:
                data = d.read(min(d.read_frames, block - got))
                got += len(data)
                if resampler is not None:
                    data = resampler.resample_chunk(data, last=d.ended)
                if len(data):
                    pieces.append(data)
            if pieces:
                yield np.ascontiguousarray((pieces[0] if len(pieces) == 1 else np.concatenate(pieces)).T)


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
