"""A call from disk: :func:`analyze_call` (offline) and :func:`replay` (as if live).

Both feed one :class:`~ser_lib.calls.engine.StreamingAnalyzer` from
:func:`ser_lib.audio.iter_blocks`, so memory stays flat however long the call is:
:func:`analyze_call` in 30 s blocks as fast as it goes, :func:`replay` in packets paced like a
live call. The decoder refuses a truncated or over-long recording (the same checks as for a
clip: :mod:`ser_lib.audio`), and :func:`release_memory` gives the encoder's freed buffers back
to the system between blocks.
"""

from __future__ import annotations

import ctypes
import io
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..audio import AudioSource, audio_info, iter_blocks
from ..audio import check_complete as _check_complete
from ..config import MAX_CALL_SECONDS, SAMPLE_RATE
from ..errors import EmptyAudioError, ParameterError
from ..progress import ProgressCallback, report
from .engine import StreamingAnalyzer
from .result import CallAnalysis, WindowResult
from .settings import DEFAULT_ROLES, TimelineSettings


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``), between blocks of a call.

    The encoder allocates differently sized buffers for every speech region; without this the
    freed pieces stay mapped and a 2-hour call's resident memory creeps up by ~100 MB an hour
    although nothing is kept. A no-op where glibc is not the allocator.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def check_complete(source: AudioSource, *, name: str | None = None) -> None:
    """Raise :class:`UnreadableAudioError` if a WAV file's header promises more audio than it holds.

    Kept for callers of the call API: :func:`ser_lib.audio.check_complete` does the work, and every
    decoding entry point (:func:`~ser_lib.audio.audio_info`, :func:`~ser_lib.audio.load_audio`,
    :func:`~ser_lib.audio.iter_blocks`) runs it, so clips and calls refuse the same files.
    """
    _check_complete(source, name=name)


class _NamedBytes(io.BytesIO):
    """A recording in memory that error messages name as the user named the file (libsndfile's
    messages show a file object's repr: ``<_io.BytesIO object at 0x...>`` otherwise)."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __repr__(self) -> str:
        return repr(self.name)


def analyze_call(
    source: AudioSource | np.ndarray,
    *,
    bundle,
    sr: int | None = None,
    roles: Sequence[str] | None = DEFAULT_ROLES,
    settings: TimelineSettings | None = None,
    progress: ProgressCallback | None = None,
    block_seconds: float = 30.0,
    chunk_s: float | None = None,
    name: str | None = None,
    max_seconds: float = MAX_CALL_SECONDS,
    **kwargs,
) -> CallAnalysis:
    """Emotion over a whole call, streamed from disk block by block (memory stays flat).

    Parameters
    ----------
    source : path, bytes, file object, or np.ndarray [shape=(n,) or (channels, n)]
        A recording in any format :func:`ser_lib.audio.load_audio` reads (WAV PCM or mu-law at
        8-48 kHz, FLAC, Ogg Vorbis/Opus, MP3), or samples at ``sr``.
    bundle : ModelBundle
    sr : int or None
        Sample rate of an array ``source`` (default 16 kHz); ignored for files.
    roles : sequence of str
        Party per channel of a stereo call (default left agent, right customer). Mono: one party,
        :data:`~ser_lib.calls.settings.MONO_ROLE`.
    settings : TimelineSettings or None
    progress : callable or None
        Called with a :class:`ser_lib.progress.Progress` after every block: stage ``"analyse"``,
        ``done`` and ``total`` in seconds of audio.
    block_seconds : float
        Seconds of audio read and fed per block.
    chunk_s : float or None
        Encoder chunk length (default :attr:`TimelineSettings.chunk_s`).
    name : str or None
        Names the call in messages and the result (default: the file name).
    max_seconds : float
        Longest call accepted (default :data:`~ser_lib.config.MAX_CALL_SECONDS`, 4 hours; the
        dashboard passes :data:`~ser_lib.config.MAX_UPLOAD_SECONDS`), checked while decoding.
    **kwargs
        Overrides of single :class:`TimelineSettings` fields (``window_s``, ``hop_s``, ...).

    Returns
    -------
    CallAnalysis
        With ``no_speech`` True and a message (not an error) when the call holds no speech.

    Raises
    ------
    UnreadableAudioError, EmptyAudioError
        For a missing, unreadable, truncated, zero-length or unsupported file.
    ParameterError
        For an array of the wrong shape or bad settings.
    """
    if settings is None:
        settings = TimelineSettings(**kwargs)
    elif kwargs:
        settings = replace(settings, **kwargs)
    plan = {"chunk_s": chunk_s, "grow": False}
    if isinstance(source, np.ndarray):
        x = np.asarray(source, dtype=np.float32)
        x = x[None, :] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[0] > 8:
            raise ParameterError(f"A call array must have shape (n,) or (channels, n), got {np.shape(source)}")
        if x.shape[1] == 0:
            raise EmptyAudioError(f"{name or 'The call'} holds no samples: record or export it again.")
        rate = int(sr or SAMPLE_RATE)
        analyzer = StreamingAnalyzer(
            bundle, sr=rate, channels=x.shape[0], roles=roles, settings=settings, name=name or "the call", **plan
        )
        step = max(1, int(block_seconds * rate))
        total = x.shape[1] / rate
        for i in range(0, x.shape[1], step):
            analyzer.feed(x[:, i : i + step])
            report(progress, "analyse", min(total, (i + step) / rate), total)
        analyzer.finish()
        return analyzer.result(source=name or "the call")

    label = name or (
        Path(source).name if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None) or "the upload"
    )
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = bytes(source)
    info = audio_info(_NamedBytes(source, label) if isinstance(source, bytes) else source)
    if info.frames == 0:
        raise EmptyAudioError(f"{label} holds no audio (0 samples, {info.format} {info.subtype}): record or export it again.")
    analyzer = StreamingAnalyzer(
        bundle, sr=SAMPLE_RATE, channels=info.channels, roles=roles, settings=settings, name=label, **plan
    )
    total = info.duration
    if isinstance(source, bytes):
        source = _NamedBytes(source, label)
    for block in iter_blocks(source, sr=SAMPLE_RATE, block_seconds=block_seconds, max_seconds=max_seconds):
        analyzer.feed(block)
        release_memory()
        report(progress, "analyse", min(analyzer.position_s, total), total)
    analyzer.finish()  # iter_blocks has refused a recording whose data ends short of its header's length
    return analyzer.result(source=label)


# --- live replay ----------------------------------------------------------------------------------


@dataclass
class ReplayUpdate:
    """One step of a live replay: the position, the windows that just became final, the analyser."""

    position_s: float
    duration_s: float
    new: list[WindowResult]
    analyzer: StreamingAnalyzer
    compute_s: float
    done: bool = False


def replay(
    source: AudioSource,
    *,
    bundle,
    roles: Sequence[str] | None = DEFAULT_ROLES,
    speed: float | None = 1.0,
    packet_s: float = 0.1,
    settings: TimelineSettings | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    name: str | None = None,
    **kwargs,
) -> Iterator[ReplayUpdate]:
    """Play a recorded call into a :class:`StreamingAnalyzer` as if it were happening now.

    Parameters
    ----------
    source : path, bytes or file object
    speed : float or None
        1.0 is real time, 4.0 four times faster; ``None`` (or 0) as fast as the computer goes.
    packet_s : float
        Seconds of audio per packet (20-100 ms is what a phone switch sends).
    name : str or None
        Names the call in messages (default: the file name, or "the upload").

    Yields
    ------
    ReplayUpdate
        After every packet, and a last one with ``done=True`` after :meth:`StreamingAnalyzer.finish`.

    Raises
    ------
    ParameterError
        For a negative ``speed`` or a ``packet_s`` outside 5 ms-5 s.
    UnreadableAudioError, EmptyAudioError
        As :func:`analyze_call`.
    """
    if speed is not None and speed < 0:
        raise ParameterError(f"speed={speed} must be positive (1.0 is real time) or None for as fast as possible")
    if not 0.005 <= packet_s <= 5.0:
        raise ParameterError(f"packet_s={packet_s} must be between 0.005 and 5 s")
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = bytes(source)
    label = name or (Path(source).name if isinstance(source, (str, os.PathLike)) else "the upload")
    info = audio_info(_NamedBytes(source, label) if isinstance(source, bytes) else source)
    if info.frames == 0:
        raise EmptyAudioError(f"{label} holds no audio (0 samples): record or export it again.")
    analyzer = StreamingAnalyzer(
        bundle, sr=SAMPLE_RATE, channels=info.channels, roles=roles, settings=settings, name=label, **kwargs
    )
    stream = _NamedBytes(source, label) if isinstance(source, bytes) else source
    t0 = clock()
    for block in iter_blocks(stream, sr=SAMPLE_RATE, block_seconds=packet_s):
        c0 = time.perf_counter()
        new = analyzer.feed(block)
        compute = time.perf_counter() - c0
        if speed:
            wait = t0 + analyzer.position_s / speed - clock()
            if wait > 0:
                sleep(wait)
        yield ReplayUpdate(analyzer.position_s, info.duration, new, analyzer, compute)
    c0 = time.perf_counter()
    new = analyzer.finish()
    yield ReplayUpdate(analyzer.position_s, info.duration, new, analyzer, time.perf_counter() - c0, done=True)
