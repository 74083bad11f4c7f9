"""One channel of a call in the streaming engine: its VAD, audio buffer, speech regions and windows.

:class:`_Track` is driven by :class:`ser_lib.calls.engine.StreamingAnalyzer` (its ``owner``, which
holds the bundle, the settings in samples and the timers). Per channel it

1. feeds the audio to a :class:`~ser_lib.calls.vad.StreamingVAD` and keeps only the audio still
   needed (a few seconds, however long the call);
2. encodes each speech region in consecutive chunks from its start (one window, then
   ``chunk_s`` each; live, the chunk in progress as far as it goes);
3. queues every window that became ready as a :class:`_Job` for the owner's one model call;
4. emits a window's smoothed result once its right neighbours are scored or its region closed.

Times inside a :class:`_Region` are in 16 kHz samples from the region start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..config import SAMPLE_RATE
from ..features import window_frames
from .result import WindowResult
from .settings import FRAME_HOP, FRAME_RATE
from .smoothing import _median_at
from .vad import SpeechRegion, StreamingVAD

if TYPE_CHECKING:
    from .engine import StreamingAnalyzer

#: Audio kept before the VAD position (a region may start up to ``pad`` before it).
FRAME_SLACK = 4 * 512


class _Region:
    """A speech region being analysed on one channel (times in samples from the region start)."""

    __slots__ = (
        "index",
        "start",
        "end",
        "frames",
        "frames0",
        "encoded",
        "partial",
        "next_k",
        "pending",
        "history",
        "closed",
        "tail_done",
    )

    def __init__(self, index: int, start: int):
        self.index, self.start = index, start
        self.end: int | None = None
        self.frames: np.ndarray | None = None  # encoder frames from frame ``frames0`` of the region
        self.frames0 = 0
        self.encoded = 0  # samples of the region encoded so far
        self.partial: np.ndarray | None = None  # frames of the chunk in progress, encoded so far (live only)
        self.next_k = 0  # next grid window
        self.pending: list[list] = []  # [start, end, raw, ready_s, partial] of scored windows not yet final
        self.history: list[np.ndarray] = []  # raw of the last final windows (the median's left side)
        self.closed = False
        self.tail_done = False


@dataclass
class _Job:
    """A window waiting for the model: its input and its (still empty) entry in ``region.pending``."""

    entry: list
    x: np.ndarray


class _Track:
    """One channel: its VAD, a bounded audio buffer, and the region in progress."""

    def __init__(self, owner: StreamingAnalyzer, channel: int, role: str):
        self.owner, self.channel, self.role = owner, channel, role
        self.vad = StreamingVAD(settings=owner.settings.vad)
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf0 = 0  # absolute sample of buf[0]
        self.region: _Region | None = None
        self.touched: list[_Region] = []
        self.speech: list[dict] = []

    # audio buffer --------------------------------------------------------------------------------
    def _audio(self, a: int, b: int) -> np.ndarray:
        if a < self.buf0:
            raise RuntimeError(f"audio from sample {a} was already dropped (buffer starts at {self.buf0})")
        return self.buf[a - self.buf0 : b - self.buf0]

    def _trim(self) -> None:
        o = self.owner
        keep = self.vad.position - o._pad - FRAME_SLACK
        pending = self.vad.pending_start
        if pending is not None and self.vad.open_region is None:  # speech that may yet become a region
            keep = min(keep, pending)
        r = self.region
        if r is not None:
            if o.encoder:
                need = r.encoded - o._context
            else:
                need = (r.next_k - 1) * o._hop
            keep = min(keep, r.start + max(0, need))
        keep = max(self.buf0, keep)
        if keep - self.buf0 > SAMPLE_RATE:  # drop in steps of at least a second
            self.buf = self.buf[keep - self.buf0 :].copy()
            self.buf0 = keep

    # feeding ---------------------------------------------------------------------------------------
    def feed(self, y: np.ndarray, jobs: list[_Job]) -> None:
        self.buf = np.concatenate([self.buf, y]) if len(self.buf) else y.copy()
        self.touched = []
        t0 = time.perf_counter()
        closed = self.vad.feed(y)
        self.owner.vad_seconds += time.perf_counter() - t0
        for reg in closed:
            self._close(reg, jobs)
        self._advance_open(jobs)
        self._trim()

    def finish(self, jobs: list[_Job]) -> None:
        self.touched = []
        for reg in self.vad.finish():
            self._close(reg, jobs)

    def _close(self, reg: SpeechRegion, jobs: list[_Job]) -> None:
        r = self.region if self.region is not None and self.region.index == reg.index else _Region(reg.index, reg.start)
        r.end = reg.end - reg.start
        self._advance(r, r.end, final=True, jobs=jobs)
        r.closed = True
        self.region = None
        self.speech.append({"region": reg.index, "start": reg.start, "end": reg.end})
        if r not in self.touched:
            self.touched.append(r)

    def _advance_open(self, jobs: list[_Job]) -> None:
        op = self.vad.open_region
        if op is None:
            return
        if self.region is None or self.region.index != op.index:
            self.region = _Region(op.index, op.start)
        self._advance(self.region, op.confirmed - op.start, final=False, jobs=jobs)
        if self.region not in self.touched:
            self.touched.append(self.region)

    def _advance(self, r: _Region, available: int, *, final: bool, jobs: list[_Job]) -> None:
        """Encode what is complete of region ``r`` up to ``available`` samples; queue ready windows."""
        o = self.owner
        if o.encoder:
            while True:
                # the first chunk covers at least the first window, so a region shorter than a
                # window is encoded in one piece, as offline and as in training
                step = max(o._chunk, o._window) if r.encoded == 0 else o._chunk
                if r.encoded + step > available:
                    break
                self._encode(r, r.encoded, r.encoded + step)
            if final and r.encoded < available:
                self._encode(r, r.encoded, available)
            for e in r.pending:  # windows scored from a chunk in progress that is now complete: score
                if e[4] and e[1] <= r.encoded:  # them again from its final frames, as offline does
                    e[4] = False
                    jobs.append(_Job(e, self._window_input(r, e[0], e[1])))
            ready = r.encoded
            if o.grow and not final and r.encoded < r.next_k * o._hop + o._window <= available:
                # live: a window ends inside the chunk in progress; encode that chunk as far as it
                # goes (same start, so the same positions as the complete chunk will have)
                self._encode(r, r.encoded, available, partial=True)
                ready = available
        else:
            ready = available
        W, H = o._window, o._hop
        while r.next_k * H + W <= ready:
            a = r.next_k * H
            self._queue(r, a, a + W, jobs)
            r.next_k += 1
        if final and not r.tail_done:
            r.tail_done = True
            if r.next_k == 0:
                if available >= o._min_window:
                    self._queue(r, 0, available, jobs)
            elif available - ((r.next_k - 1) * H + W) >= H / 2:
                self._queue(r, available - W, available, jobs)

    def _encode(self, r: _Region, a: int, b: int, *, partial: bool = False) -> None:
        """Encode samples [a, b) of region ``r`` (plus ``context_s`` before them) and keep their frames;
        ``partial``: the chunk in progress so far, kept apart until the whole chunk is encoded."""
        o = self.owner
        lead = min(a, o._context)  # whole frames (context_s is), never before the region start
        y = self._audio(r.start + a - lead, r.start + b)
        t0 = time.perf_counter()
        frames = o.bundle.encoder().encode(y)[lead // FRAME_HOP :]
        o.encode_seconds += time.perf_counter() - t0
        o.encoded_audio_s += len(y) / SAMPLE_RATE
        if partial:
            r.partial = frames
            return
        r.partial = None
        if r.frames is None or len(r.frames) == 0:
            r.frames, r.frames0 = frames, a // FRAME_HOP
        else:
            r.frames = np.concatenate([r.frames, frames])
        r.encoded = b

    def _queue(self, r: _Region, a: int, b: int, jobs: list[_Job]) -> None:
        o = self.owner
        entry = [a, b, None, 0.0, bool(o.encoder and b > r.encoded)]  # start, end, raw, ready_s, from a partial chunk
        r.pending.append(entry)
        jobs.append(_Job(entry, self._window_input(r, a, b)))
        # frames before the earliest window still to be final (or a tail window one hop back) are no longer needed
        if o.encoder and r.frames is not None and not r.closed:
            first = min([e[0] for e in r.pending] + [(r.next_k - 1) * o._hop])
            keep = max(0, first // FRAME_HOP - r.frames0)
            if keep > 0:
                r.frames = r.frames[keep:]
                r.frames0 += keep

    def _window_input(self, r: _Region, a: int, b: int) -> np.ndarray:
        """What the model sees for samples [a, b) of region ``r``: its encoder frames (those of the
        chunk in progress where the window reaches into it), or its features."""
        o = self.owner
        if not o.encoder:
            return o.bundle.features(self._audio(r.start + a, r.start + b), sr=SAMPLE_RATE)
        frames = r.frames
        if r.partial is not None and b > r.encoded:
            frames = r.partial if frames is None or len(frames) == 0 else np.concatenate([frames, r.partial])
            if r.frames is None or len(r.frames) == 0:
                r.frames0 = r.encoded // FRAME_HOP
        return window_frames(frames, a / SAMPLE_RATE, b / SAMPLE_RATE, rate=FRAME_RATE, first=r.frames0)

    # results -----------------------------------------------------------------------------------------
    def emit(self, position_s: float) -> list[WindowResult]:
        out: list[WindowResult] = []
        for r in self.touched:
            out += self._emit_region(r, position_s)
        self.touched = []
        return out

    def _emit_region(self, r: _Region, position_s: float) -> list[WindowResult]:
        """Final results of region ``r``: a window is final once ``smooth`` windows after it are
        scored, or when the region has closed (the same median as :func:`smooth_probabilities`)."""
        o = self.owner
        radius = int(o.settings.smooth)
        out = []
        while r.pending and (r.closed or len(r.pending) > radius):
            a, b, raw, ready = r.pending[0][:4]
            left = r.history[-radius:] if radius else []
            seq = [*left, raw, *[p[2] for p in r.pending[1 : 1 + radius]]]
            smoothed = _median_at(seq, len(left), radius)
            r.pending.pop(0)
            r.history = [*left, raw][-radius:] if radius else []
            k = int(np.argmax(smoothed))
            out.append(
                WindowResult(
                    channel=self.channel,
                    role=self.role,
                    region=r.index,
                    start_s=(r.start + a) / SAMPLE_RATE,
                    end_s=(r.start + b) / SAMPLE_RATE,
                    emotion=o.labels[k],
                    confidence=float(smoothed[k]),
                    sentiment=float(smoothed @ o._weights),
                    probabilities=smoothed,
                    raw=np.asarray(raw, float),
                    ready_s=ready,
                    emitted_s=position_s,
                    uncertain=bool(smoothed[k] < o.uncertain_below),
                    valence=float(smoothed @ o._va[:, 0]),
                    arousal=float(smoothed @ o._va[:, 1]),
                )
            )
        return out

    def provisional(self) -> list[tuple[int, int, int, np.ndarray]]:
        r = self.region
        if r is None:
            return []
        return [(r.index, r.start + e[0], r.start + e[1], e[2]) for e in r.pending if e[2] is not None]

    def speech_rows(self, position: int) -> list[dict]:
        rows = [
            {
                "channel": self.channel,
                "role": self.role,
                "region": s["region"],
                "start_s": s["start"] / SAMPLE_RATE,
                "end_s": s["end"] / SAMPLE_RATE,
                "closed": True,
            }
            for s in self.speech
        ]
        op = self.vad.open_region
        if op is not None:
            rows.append(
                {
                    "channel": self.channel,
                    "role": self.role,
                    "region": op.index,
                    "start_s": op.start / SAMPLE_RATE,
                    "end_s": op.confirmed / SAMPLE_RATE,
                    "closed": False,
                }
            )
        return rows
