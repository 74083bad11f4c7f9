"""One call in progress on the event loop's side: its audio queue, its events, its live state.

A :class:`CallSession` holds a bounded queue of audio between the event loop, which receives it,
and the call's analysis engine (a :class:`~ser_lib.service.analysis.CallAnalyzer` in a thread, or
its proxy in an analysis worker process, see :mod:`ser_lib.service.workers`), driven from a thread
pool:

- :meth:`CallSession.push` (event loop) queues decoded audio. When the call already has
  ``max_queued_s`` of audio waiting, it waits for the analysis to catch up: the socket is not read
  meanwhile, so TCP flow control slows the sender; nothing is dropped.
- :meth:`CallSession._work` (a pool thread) takes everything queued, hands it to the engine in one
  piece (a call that fell behind catches up in bigger, cheaper steps), turns the payloads that came
  back into events (adding the schema's common fields and each window's ``latency_s``), updates the
  live state ``/calls`` shows, and hands the events to the event loop. It then requeues itself
  behind the other calls, so the pool serves calls in turn.
- :meth:`CallSession.finish` flushes the engine and writes the call's results file through
  :class:`ResultStore`.

The time each audio chunk arrived is kept (for a few seconds), so every window event carries its
latency, and the call's ``lag`` (how long its oldest unanalysed audio has waited) is known at any moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import SERError
from ..io import dumps_json, write_json
from .analysis import table, timeline_tables  # noqa: F401 - re-exported for the wallboard's tests
from .protocol import CLOSE_INTERNAL, SCHEMA, event, now_iso

logger = logging.getLogger(__name__)

#: Window sentiments kept per party for the wallboard's sparkline.
SPARKLINE_POINTS = 90
#: Seconds of arrival times kept per call (a window is final at most a few seconds after its audio).
ARRIVALS_KEPT_S = 30.0


class ResultStore:
    """One JSON file per finished call in a folder, written atomically.

    The file name is made by the service (start time and a hash of the call id), never taken from
    a client, so no client can choose where anything is written.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path_for(self, call_id: str, started: datetime) -> Path:
        digest = hashlib.sha256(call_id.encode()).hexdigest()[:16]
        return self.folder / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{digest}.json"

    def write(self, record: dict, *, call_id: str, started: datetime) -> Path:
        return write_json(self.path_for(call_id, started), record, indent=None)


class CallSession:
    """One call: its audio queue, its analysis engine, its live state and its events.

    Parameters
    ----------
    call_id : str
    registry : CallRegistry
        Supplies the event loop, the thread pool, the analysis backend, the settings and the
        metrics, and delivers events to subscribers.
    source : {"twilio", "raw"}
    parties : sequence of str
        Party of each channel, in channel order.
    sr, channels : int
        Sample rate and channels of the audio pushed.
    tracks : sequence of str or None
        The Twilio track of each channel.
    metadata : dict

    The constructor opens the call's engine (it may block: call it off the event loop), then
    :meth:`attach` must be called on the loop.
    """

    def __init__(self, call_id, registry, *, source, parties, sr, channels, tracks=None, metadata=None, stream_sid=None):
        s = registry.settings
        self.call_id, self.source, self.sr, self.channels = call_id, source, int(sr), int(channels)
        self.registry = registry
        self.engine = registry.backend.open(
            call_id,
            sr=self.sr,
            channels=self.channels,
            parties=list(parties),
            timeline=s.timeline,
            grow=not s.complete_chunks,
            alerts=s.alerts,
            store=None if s.store is None else self._store_spec(s.store, call_id, source, metadata),
        )
        self.parties = list(self.engine.parties)
        self.labels = list(self.engine.labels)
        self.tracks = list(tracks) if tracks else None
        self.metadata = dict(metadata or {})
        self.stream_sid = stream_sid
        self.started = datetime.now(UTC)
        self.started_at = now_iso()
        self.ended_at: str | None = None
        self.status = "active"
        self.error: str | None = None
        self.failed = False
        self.failure_event: dict | None = None
        self._seq = itertools.count(1)
        self._loop, self._pool, self._metrics = registry.loop, registry.pool, registry.metrics
        self._max_queued = int(round(s.max_queued_s * self.sr))
        self._feed = int(round(s.feed_s * self.sr))
        # audio queue: event loop -> pool thread
        self._qlock = threading.Lock()
        self._queue: list[np.ndarray] = []
        self._arrivals: deque[tuple[int, float]] = deque()  # (samples received up to, monotonic time)
        self.received = 0
        self.processed = 0
        self._scheduled = False
        self._finish_status: str | None = None
        self._space: asyncio.Event | None = None  # made on the event loop by attach()
        self._done: asyncio.Future | None = None
        self._alock = threading.Lock()  # one engine call at a time per call
        self._analysed_s = 0.0
        # live state, read by the REST handlers
        self._slock = threading.Lock()
        self.current: dict[str, dict] = {}
        self.sparkline = {role: deque(maxlen=SPARKLINE_POINTS) for role in self.parties}
        self.alerts: list[dict] = []
        self.n_windows = 0
        self.n_segments = 0
        self.dtmf: list[dict] = []
        self.stats = {
            "frames": 0,
            "rejected": 0,
            "late_samples": 0,
            "gap_samples": 0,
            "missing_messages": 0,
            "backpressure_pauses": 0,
            "max_lag_s": 0.0,
        }
        self.final_record: dict | None = None
        self.summary_event: dict | None = None
        self.results_path: Path | None = None

    # --- event loop side -----------------------------------------------------------------------------
    def attach(self) -> CallSession:
        """Make the session's event-loop objects (call on the loop)."""
        self._space = asyncio.Event()
        self._done = self._loop.create_future()
        return self

    def next_seq(self) -> int:
        return next(self._seq)

    @property
    def open(self) -> bool:
        """True until the call was asked to finish (or its analysis failed and finished it)."""
        return self._finish_status is None and self.final_record is None

    @property
    def position_s(self) -> float:
        return self.received / self.sr

    def _parties(self) -> list[dict]:
        return [
            {"channel": c, "role": r, **({"track": self.tracks[c]} if self.tracks else {})} for c, r in enumerate(self.parties)
        ]

    def started_event(self) -> dict:
        return event(
            "call_started",
            self.call_id,
            self.next_seq(),
            0.0,
            source=self.source,
            parties=self._parties(),
            sample_rate=self.sr,
            labels=self.labels,
            metadata=self.metadata,
            **({"stream_sid": self.stream_sid} if self.stream_sid else {}),
        )

    async def push(self, chunk: np.ndarray) -> None:
        """Queue ``chunk`` [shape=(channels, n)] for analysis; waits while ``max_queued_s`` is queued.

        The analysis is started once ``feed_s`` of audio is waiting (and again by itself while more is)."""
        if self.failed or self.final_record is not None:  # the call is over: nothing more is analysed
            return
        while self.received - self.processed >= self._max_queued and not self.failed:
            self.stats["backpressure_pauses"] += 1
            self._metrics.inc("ser_backpressure_pauses_total")
            self._space.clear()
            await self._space.wait()
        n = chunk.shape[1]
        now = time.monotonic()
        with self._qlock:
            self._queue.append(chunk)
            self.received += n
            self._arrivals.append((self.received, now))
            start = not self._scheduled and self.received - self.processed >= self._feed
            self._scheduled = self._scheduled or start
        self._metrics.inc("ser_audio_seconds_total", n / self.sr)
        if start:
            self._pool.submit(self._work)

    async def finish(self, status: str) -> dict:
        """End the call (``completed`` or ``ended_abruptly``): analyse what is queued, flush, write results."""
        if self._finish_status is None and self.final_record is None:
            with self._qlock:
                self._finish_status = status
                start = not self._scheduled
                self._scheduled = True
            if start:
                self._pool.submit(self._work)
        return await asyncio.shield(self._done)

    def lag_s(self, now: float | None = None) -> float:
        """Seconds the oldest audio not yet analysed has waited (0 when the analysis has caught up)."""
        now = time.monotonic() if now is None else now
        with self._qlock:
            if self.processed >= self.received:
                return 0.0
            for cum, t in self._arrivals:
                if cum > self.processed:
                    return max(0.0, now - t)
        return 0.0

    @property
    def queued_s(self) -> float:
        return (self.received - self.processed) / self.sr

    def _deliver(self, events: list[dict], final: bool) -> None:
        self._space.set()
        if events:
            self.registry.broadcast(self.call_id, events)
        if final and not self._done.done():
            self._done.set_result(self.final_record)

    # --- pool thread side ----------------------------------------------------------------------------
    def _arrival(self, end_s: float) -> float | None:
        target = int(round(end_s * self.sr))
        with self._qlock:
            for cum, t in self._arrivals:
                if cum >= target:
                    return t
        return None

    def _work(self) -> None:
        events: list[dict] = []
        final = False
        try:
            with self._qlock:
                chunks, self._queue = self._queue, []
            if chunks:
                x = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)
                with self._alock:
                    payloads, self._analysed_s = self.engine.feed(x)
                events += self._events(payloads)
                now = time.monotonic()
                with self._qlock:
                    self.processed += x.shape[1]
                    keep = self.processed - int(ARRIVALS_KEPT_S * self.sr)
                    while self._arrivals and self._arrivals[0][0] < keep:
                        self._arrivals.popleft()
                self.stats["max_lag_s"] = max(self.stats["max_lag_s"], self.lag_s(now))
            with self._qlock:
                closing = self._finish_status is not None and not self._queue and self.final_record is None
            if closing:
                events += self._finalise(self._finish_status)
                final = True
        except Exception as exc:  # noqa: BLE001 - one call's failure must not touch the others
            logger.exception("call %s: the analysis failed", self.call_id)
            self.failed, self.error = True, f"{type(exc).__name__}: {exc}"
            self.failure_event = event(
                "error",
                self.call_id,
                self.next_seq(),
                self.position_s,
                code="analysis_failed",
                message=f"the analysis of this call failed ({self.error}); the call is closed with what was analysed",
                fatal=True,
                close_code=CLOSE_INTERNAL,
            )
            events.append(self.failure_event)
            if self.final_record is None:
                events += self._finalise("ended_abruptly", broken=True)
            final = True
        self._loop.call_soon_threadsafe(self._deliver, events, final)
        with self._qlock:
            waiting = bool(self._queue) and self.received - self.processed >= self._feed
            again = not final and (waiting or self._finish_status is not None)
            self._scheduled = again
        if again:
            self._pool.submit(self._work)

    def _events(self, payloads: list[tuple[str, dict]]) -> list[dict]:
        """Events from the engine's payloads: common fields, window latencies, live state, counters."""
        events, latencies, windows = [], [], 0
        now = time.monotonic()
        pos = self._analysed_s
        for kind, fields in payloads:
            if kind == "window":
                arrived = self._arrival(fields["end_s"])
                latency = None if arrived is None else round(now - arrived, 3)
                if latency is not None:
                    latencies.append(latency)
                windows += 1
                events.append(event("window", self.call_id, self.next_seq(), pos, **fields, latency_s=latency))
                with self._slock:
                    self.current[fields["role"]] = {
                        k: fields[k] for k in ("emotion", "confidence", "sentiment", "start_s", "end_s", "probabilities")
                    }
                    self.sparkline[fields["role"]].append(fields["sentiment"])
                    self.n_windows += 1
            elif kind == "alert":
                events.append(event("alert", self.call_id, self.next_seq(), pos, **fields))
                with self._slock:
                    self.alerts.append(fields)
                self._metrics.inc("ser_alerts_total", kind=fields["kind"])
            elif kind == "segment":
                events.append(event("segment", self.call_id, self.next_seq(), pos, **fields))
                self.n_segments += 1
                self._metrics.inc("ser_segments_total")
        if windows:
            self._metrics.windows(windows, latencies)
        return events

    def record(self, analysis: dict, status: str) -> dict:
        """The call as ``analyze-call --json`` writes it (``analysis``), plus the service's fields."""
        with self._slock:
            alerts = list(self.alerts)
        return {
            **analysis,
            "schema": SCHEMA,
            "call_id": self.call_id,
            "status": status,
            "source": self.source,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "parties": self._parties(),
            "metadata": self.metadata,
            "alerts": alerts,
            "dtmf": list(self.dtmf),
            "stats": {
                **self.stats,
                "received_s": round(self.position_s, 3),
                "windows": self.n_windows,
                "segments": self.n_segments,
            },
            **({"error": self.error} if self.error else {}),
        }

    def snapshot(self, *, timeline: bool = False) -> dict:
        """The call so far (pool thread: waits for the analysis step in progress)."""
        with self._alock:
            if self.final_record is not None:
                return self.final_record
            analysis, tables = self.engine.snapshot(timeline)
        rec = self.record(analysis, self.status)
        rec["lag_s"] = round(self.lag_s(), 3)
        if timeline:
            rec["timeline"] = tables
        return rec

    def _finalise(self, status: str, *, broken: bool = False) -> list[dict]:
        """Flush the engine, write the results file, make the summary (under the engine lock, so a
        snapshot never meets a half-finished call)."""
        with self._alock:
            return self._finalise_locked(status, broken=broken)

    def _finalise_locked(self, status: str, *, broken: bool) -> list[dict]:
        events, analysis, tables, stored = [], None, None, None
        try:
            if broken:
                self.engine.close()
            else:
                payloads, self._analysed_s, analysis, tables, stored = self.engine.finish(status)
                events += self._events(payloads)
        except Exception:  # noqa: BLE001 - a broken engine: keep what the events said
            if not broken:
                raise
            logger.exception("call %s: no result could be made", self.call_id)
        self.status, self.ended_at = status, now_iso()
        if analysis is not None:
            record = self.record(analysis, status)
        else:
            record = {**self.record({"segments": [], "summary": {}}, status), "error": self.error}
            stored = self._store_failure()
        if stored is not None:
            record["store"] = stored
        try:
            self.results_path = self.registry.store.write(
                {**record, "timeline": tables}, call_id=self.call_id, started=self.started
            )
        except OSError as exc:
            logger.error("call %s: its results could not be written: %s", self.call_id, exc)
        self.final_record = record
        self.engine = None
        self._metrics.inc("ser_calls_finished_total", status=status)
        self.summary_event = event(
            "call_summary",
            self.call_id,
            self.next_seq(),
            self.position_s,
            status=status,
            duration_s=record.get("duration_s", 0.0),
            summary=record.get("summary", {}),
            alerts=len(record.get("alerts", [])),
            windows=self.n_windows,
            segments=self.n_segments,
            results_file=self.results_path.name if self.results_path else None,
        )
        events.append(self.summary_event)
        logger.info("call %s %s after %.1f s (%d windows)", self.call_id, status, self.position_s, self.n_windows)
        return events

    @staticmethod
    def _store_spec(path, call_id: str, source: str, metadata: dict | None) -> dict:
        """Where and how the analysis writes the finished call (plain data: it may cross to a worker process)."""
        return {"path": str(path), "source": f"{source}:{call_id}", "metadata": dict(metadata or {}), "started_at": now_iso()}

    def _bundle_or_card(self):
        """The model whose name and hash a failed call's row carries: the backend's bundle, or, when
        the analysis runs in worker processes (this process holds no model), the card they load."""
        bundle = getattr(self.registry.backend, "bundle", None)
        if bundle is not None:
            return bundle
        from types import SimpleNamespace

        from ..cards import bundle_folder, read_card

        folder = bundle_folder(self.registry.settings.model)
        try:
            card = read_card(folder)
        except SERError as exc:  # the row is still written, under the folder's name
            logger.warning("call %s: the model's card could not be read for the store (%s)", self.call_id, exc)
            return SimpleNamespace(card={}, name=folder.name)
        return SimpleNamespace(card=card, name=card.get("name") or folder.name)

    def _store_failure(self) -> dict | None:
        """A call whose analysis broke: one ``failed`` row in the store, so the archive shows it."""
        path = self.registry.settings.store
        if path is None:
            return None
        from ..store import CallStore, model_identity
        from .analysis import live_metadata

        try:
            name, sha = model_identity(self._bundle_or_card())
            aid = CallStore(path).write_failure(
                call_id=self.call_id,
                source=f"{self.source}:{self.call_id}",
                error=self.error or "the analysis broke",
                model_name=name,
                model_sha256=sha,
                metadata=live_metadata(self.metadata, self.started_at),
                origin="live",
            )
            return {"analysis_id": aid, "store": str(path)}
        except Exception as exc:  # noqa: BLE001 - the results file stands without the store
            logger.error("call %s: its failure could not be written to the call store: %s", self.call_id, exc)
            return {"error": f"{type(exc).__name__}: {exc}", "store": str(path)}

    def overview(self) -> dict:
        """The call as ``/calls`` lists it: parties' current emotion and sparkline, alerts, lag."""
        with self._slock:
            parties = {
                role: {**(self.current.get(role) or {"emotion": None}), "sparkline": list(self.sparkline[role])}
                for role in self.parties
            }
            alerts = list(self.alerts)
        return {
            "call_id": self.call_id,
            "status": self.status,
            "source": self.source,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": round(self.position_s, 3),
            "lag_s": round(self.lag_s(), 3) if self.status == "active" else 0.0,
            "parties": parties,
            "alerts": alerts[-10:],
            "alert_count": len(alerts),
            "windows": self.n_windows,
            "metadata": self.metadata,
        }


def dumps_event(ev: dict) -> str:
    """One event as compact JSON text."""
    return dumps_json(ev, indent=None)
