"""The streaming engine: emotion of a call as its audio arrives, window by window.

:class:`StreamingAnalyzer` takes audio chunks of any size (20 ms packets from a phone switch, or
30 s blocks read from disk), resamples them to 16 kHz, hands each channel to its
:class:`~ser_lib.calls.track._Track` (voice-activity detection, encoder chunks, windows), scores
every window that became ready in one model call, and returns the windows whose smoothed result
became final. :func:`ser_lib.calls.analyze_call` is this same engine fed from disk, so offline and
live results come from one code path. See :mod:`ser_lib.calls` for the method.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from ..affect import coordinates
from ..config import SAMPLE_RATE
from ..errors import ParameterError
from .result import SPEECH_COLUMNS, CallAnalysis, WindowResult, windows_frame
from .settings import FRAME_HOP, FRAME_RATE, TimelineSettings, channel_roles, frames_of
from .smoothing import segments_from_windows, sentiment_weights
from .summary import summarize
from .track import _Job, _Track


class StreamingAnalyzer:
    """Emotion of a call as its audio arrives, window by window.

    Parameters
    ----------
    bundle : ModelBundle
    sr : int
        Sample rate of the chunks (8 kHz telephone audio is resampled to 16 kHz as it arrives).
    channels : int
        Channels per chunk: 2 for a stereo call (one party each), 1 for mono.
    roles : sequence of str or None
        Party of each channel (default ``("agent", "customer")``: left agent, right customer);
        a mono stream is one party, :data:`~ser_lib.calls.settings.MONO_ROLE`.
    settings : TimelineSettings or None
        Windows, smoothing, segments and VAD (shared with :func:`analyze_call`).
    chunk_s : float or None
        Seconds of speech per encoder chunk after a region's first chunk (which is one window long);
        default :attr:`TimelineSettings.chunk_s` (2 s).
    context_s : float
        Seconds of audio before each chunk also fed to the encoder (default 0: chunks as offline).
    grow : bool
        Live (default): a window ending inside the chunk in progress is scored from that chunk
        encoded so far, so its result does not wait for the chunk. ``False`` waits for complete
        chunks and reproduces :func:`analyze_call` exactly, with up to one chunk more latency.
    name : str
        Names the call in messages.
    **kwargs
        Overrides of single :class:`TimelineSettings` fields (``window_s=2.5``, ``hop_s=0.5``).

    Raises
    ------
    ParameterError
        For a bad sample rate, chunk length or setting, or a bundle whose encoder does not give
        50 frames per second; :meth:`feed` for a chunk of the wrong shape or type.

    Examples
    --------
    >>> analyzer = StreamingAnalyzer(bundle, sr=8000, channels=2)      # doctest: +SKIP
    >>> for chunk in packets:                                           # (2, n) float32 or int16
    ...     for w in analyzer.feed(chunk):
    ...         print(w.role, w.start_s, w.emotion, round(w.sentiment, 2))
    >>> analyzer.finish(); result = analyzer.result()
    """

    def __init__(
        self,
        bundle,
        *,
        sr: int = SAMPLE_RATE,
        channels: int = 1,
        roles: Sequence[str] | None = None,
        settings: TimelineSettings | None = None,
        chunk_s: float | None = None,
        context_s: float = 0.0,
        grow: bool = True,
        name: str = "the call",
        **kwargs,
    ):
        if settings is None:
            settings = TimelineSettings(**kwargs)
        elif kwargs:
            settings = replace(settings, **kwargs)
        if int(sr) <= 0:
            raise ParameterError(f"sr={sr} must be a positive sample rate")
        self.bundle = bundle
        self.settings = settings
        self.sr = int(sr)
        self.channels = int(channels)
        self.roles = channel_roles(self.channels, roles)
        self.labels = list(bundle.labels)
        self.name = name
        self.encoder = bool(getattr(bundle, "frame_rate", None))
        if self.encoder and bundle.frame_rate != FRAME_RATE:
            raise ParameterError(f"{bundle.name} has {bundle.frame_rate} frames per second; the timeline expects {FRAME_RATE}")
        chunk_s = settings.chunk_s if chunk_s is None else chunk_s
        self.grow = bool(grow)
        self._chunk = frames_of(chunk_s, "chunk_s") * FRAME_HOP
        self._context = frames_of(context_s, "context_s") * FRAME_HOP
        if self._chunk <= 0 or self._context < 0:
            raise ParameterError(f"chunk_s={chunk_s} must be positive and context_s={context_s} not negative")
        self.chunk_s, self.context_s = chunk_s, context_s
        self._window = frames_of(settings.window_s, "window_s") * FRAME_HOP
        self._hop = frames_of(settings.hop_s, "hop_s") * FRAME_HOP
        self._min_window = int(round(settings.min_window_s * SAMPLE_RATE))
        self._pad = int(round(settings.vad.pad_s * SAMPLE_RATE))
        self._weights = sentiment_weights(self.labels)
        self._va = coordinates(self.labels)
        #: Windows and segments whose (smoothed) top probability is below this are "uncertain" (the bundle's threshold).
        self.uncertain_below = float(getattr(bundle, "uncertain_below", 0.0) or 0.0)
        self._head = getattr(bundle, "probabilities", None) or bundle.probabilities_from_features  # calibrated
        self._tracks = [_Track(self, c, role) for c, role in enumerate(self.roles)]
        self._resampler = None
        if self.sr != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.sr, SAMPLE_RATE, self.channels, dtype="float32", quality="HQ")
        self._samples = 0  # 16 kHz samples received per channel
        self._results: list[WindowResult] = []
        self._finished = False
        self.vad_seconds = 0.0  # time spent in voice-activity detection
        self.encode_seconds = 0.0  # time spent in the encoder
        self.encoded_audio_s = 0.0  # audio fed to the encoder (context included)
        self.head_seconds = 0.0

    # --- input -----------------------------------------------------------------------------------------
    @property
    def position_s(self) -> float:
        """Seconds of audio received (per channel)."""
        return self._samples / SAMPLE_RATE

    def _as_channels(self, chunk) -> np.ndarray:
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            chunk = np.frombuffer(bytes(chunk), dtype="<i2").reshape(-1, self.channels).T
        x = np.asarray(chunk)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        elif x.dtype == np.int32:
            x = x.astype(np.float32) / 2147483648.0
        elif not np.issubdtype(x.dtype, np.floating):
            raise ParameterError(f"Audio chunks must be float samples in [-1, 1] or int16 PCM, got dtype={x.dtype}")
        x = x.astype(np.float32, copy=False)
        if x.ndim == 1:
            if self.channels != 1:
                raise ParameterError(
                    f"A chunk of shape {x.shape} has one channel, but this analyser expects {self.channels}: "
                    "pass shape (channels, n)"
                )
            x = x[None, :]
        elif x.ndim == 2 and x.shape[0] != self.channels and x.shape[1] == self.channels:
            x = x.T
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ParameterError(f"A chunk of shape {x.shape} does not have {self.channels} channel(s): pass shape (channels, n)")
        if not np.all(np.isfinite(x)):
            raise ParameterError("An audio chunk contains NaN or infinite samples: the stream is damaged")
        return x

    def feed(self, chunk) -> list[WindowResult]:
        """Add audio; return the windows whose (smoothed) result became final.

        Parameters
        ----------
        chunk : np.ndarray [shape=(channels, n) or (n,) for mono], float in [-1, 1] or int16; or
            bytes of interleaved 16-bit little-endian PCM.

        Returns
        -------
        results : list of WindowResult
            In time order per channel. A window is final one hop after its audio (the median
            smoothing looks one window ahead); at a pause it is final when the VAD closes the region.
        """
        if self._finished:
            raise ParameterError("feed() after finish(): start a new StreamingAnalyzer for another call")
        x = self._as_channels(chunk)
        if self._resampler is not None:
            x = np.ascontiguousarray(self._resampler.resample_chunk(np.ascontiguousarray(x.T), last=False).T)
        return self._process(x)

    def finish(self) -> list[WindowResult]:
        """End of the call: flush the resampler, close open regions, return the last results."""
        if self._finished:
            return []
        out: list[WindowResult] = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)
            if len(tail):
                out += self._process(np.ascontiguousarray(tail.T))
        jobs: list[_Job] = []
        for t in self._tracks:
            t.finish(jobs)
        self._run(jobs)
        for t in self._tracks:
            out += t.emit(self.position_s)
        self._finished = True
        self._results += out
        return out

    def _process(self, x: np.ndarray) -> list[WindowResult]:
        if x.shape[1] == 0:
            return []
        self._samples += x.shape[1]
        jobs: list[_Job] = []
        for t, y in zip(self._tracks, x, strict=True):
            t.feed(y, jobs)
        self._run(jobs)
        out: list[WindowResult] = []
        for t in self._tracks:
            out += t.emit(self.position_s)
        self._results += out
        return out

    def _run(self, jobs: list[_Job]) -> None:
        """One model call for every window that became ready in this feed, on every channel."""
        if not jobs:
            return
        t0 = time.perf_counter()
        probs = self._head([j.x for j in jobs])
        self.head_seconds += time.perf_counter() - t0
        for j, p in zip(jobs, probs, strict=True):
            j.entry[2], j.entry[3] = p, self.position_s

    # --- output -----------------------------------------------------------------------------------------
    @property
    def results(self) -> list[WindowResult]:
        """Every final window result so far."""
        return list(self._results)

    def provisional(self) -> pd.DataFrame:
        """Windows scored but not final yet (awaiting their right neighbour): raw probabilities."""
        rows = []
        for t in self._tracks:
            for region, a, b, raw in t.provisional():
                k = int(np.argmax(raw))
                rows.append(
                    {
                        "channel": t.channel,
                        "role": t.role,
                        "region": region,
                        "start_s": a / SAMPLE_RATE,
                        "end_s": b / SAMPLE_RATE,
                        "emotion": self.labels[k],
                        "confidence": float(raw[k]),
                        "sentiment": float(raw @ self._weights),
                        "uncertain": bool(raw[k] < self.uncertain_below),
                    }
                )
        cols = ["channel", "role", "region", "start_s", "end_s", "emotion", "confidence", "sentiment", "uncertain"]
        return pd.DataFrame(rows, columns=cols)

    def speech(self) -> pd.DataFrame:
        """Speech regions so far (the one in progress has ``closed=False``)."""
        rows = []
        for t in self._tracks:
            rows += t.speech_rows(self._samples)
        df = pd.DataFrame(rows, columns=[c for c in SPEECH_COLUMNS if c != "judged"])
        judged = {(r.channel, r.region) for r in self._results}
        df["judged"] = [(c, r) in judged for c, r in zip(df["channel"], df["region"], strict=True)]
        return df.sort_values(["start_s", "channel"], kind="stable").reset_index(drop=True)

    def windows(self) -> pd.DataFrame:
        """Every final window so far as a table (see :func:`~ser_lib.calls.result.windows_frame`)."""
        return windows_frame(self._results, self.labels)

    def result(self, *, source: str | None = None) -> CallAnalysis:
        """The analysis so far (final after :meth:`finish`): segments, windows, speech, summary."""
        windows = self.windows()
        speech = self.speech()
        segments = segments_from_windows(
            windows, speech, labels=self.labels, min_segment_s=self.settings.min_segment_s, uncertain_below=self.uncertain_below
        )
        duration = self.position_s
        summary = summarize(
            segments,
            windows,
            speech,
            duration_s=duration,
            roles=self.roles,
            labels=self.labels,
            settings=self.settings,
            name=source or self.name,
        )
        settings = {**self.settings.to_dict(), "chunk_s": self.chunk_s, "context_s": self.context_s, "grow": self.grow}
        settings["uncertain_below"] = self.uncertain_below
        settings["vad"] = asdict(self.settings.vad)
        model = self.bundle.describe() if hasattr(self.bundle, "describe") else ""
        stats = {
            "vad_s": round(self.vad_seconds, 3),
            "encode_s": round(self.encode_seconds, 3),
            "head_s": round(self.head_seconds, 3),
            "encoded_audio_s": round(self.encoded_audio_s, 2),
        }
        return CallAnalysis(
            segments,
            windows,
            speech,
            summary,
            duration,
            list(self.roles),
            list(self.labels),
            settings,
            source or self.name,
            model,
            self._finished,
            stats,
        )
