"""The analysis half of a live call: a :class:`~ser_lib.calls.StreamingAnalyzer` and what its results become.

:class:`CallAnalyzer` lives wherever a call is analysed (a thread of the service, or an analysis
worker process: :mod:`ser_lib.service.workers`) and knows nothing of sockets or event loops. It is
fed audio and returns the payloads of the events that audio made final, as ``(type, fields)``
pairs: ``window`` (each window whose smoothed result became final), ``alert`` (see
:mod:`~ser_lib.service.alerts`) and ``segment`` (the segments of each speech region that closed:
its windows are then all final, and so are its segments, the same ``analyze-call`` gives for that
region). :meth:`CallAnalyzer.finish` flushes the analyser and returns the call's analysis as
``analyze-call --json`` writes it, with its windows and speech regions (:func:`timeline_tables`),
and, when the service has a call store, writes the finished call there (windows, segments,
summaries, alerts: :meth:`ser_lib.store.CallStore.write_analysis`, in whichever process holds the
analysis; the store's file lock orders writers). Everything it returns is plain data (it crosses a
process boundary).
"""

from __future__ import annotations

import gc
import logging
from datetime import datetime

import pandas as pd

from ..calls import CallAnalysis, StreamingAnalyzer, release_memory, segments_from_windows, windows_frame
from .alerts import AlertSettings, AlertTracker
from .protocol import segment_payload, window_payload

logger = logging.getLogger(__name__)

#: After how many feeds without a new window the closed regions are looked for anyway.
CHECK_EVERY = 50
#: Seconds of a call's audio between two returns of freed native memory (:func:`ser_lib.calls.release_memory`).
TRIM_EVERY_S = 30.0


def table(frame: pd.DataFrame, columns) -> dict:
    """A frame as ``{"columns": [...], "rows": [[...], ...]}`` (compact JSON; floats rounded to 4 places)."""
    cols = [c for c in columns if c in frame.columns]
    f = frame[cols].copy()
    for c in cols:
        if pd.api.types.is_float_dtype(f[c]):
            f[c] = f[c].round(4)
    return {"columns": cols, "rows": f.astype(object).where(f.notna(), None).values.tolist()}


def live_metadata(metadata: dict | None, started_at: str | None = None):
    """A live call's metadata (Twilio ``customParameters``, or the raw stream's ``metadata``) for the store.

    ``agent``, ``queue`` and ``customer`` (or ``customer_ref``) are recognised; the start time is the
    service's; everything else is kept in ``extra``.
    """
    from ..store import CallMetadata

    meta = {str(k): v for k, v in (metadata or {}).items() if v is not None}
    pick = lambda *keys: next((str(meta.pop(k)) for k in keys if k in meta), None)  # noqa: E731
    agent, queue, customer = pick("agent"), pick("queue"), pick("customer", "customer_ref")
    started = None
    if started_at:
        try:
            started = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
        except ValueError:
            started = None
    extra = {k: str(v) for k, v in meta.items()}
    return CallMetadata(agent=agent, queue=queue, customer_ref=customer, started_at=started, extra=extra)


def timeline_tables(result: CallAnalysis) -> dict:
    """The windows and speech regions of ``result``, as the wallboard's timeline needs them."""
    wcols = ["channel", "role", "region", "start_s", "end_s", "emotion", "confidence", "sentiment"]
    wcols += [f"p_{lab}" for lab in result.labels]
    return {
        "windows": table(result.windows, wcols),
        "speech": table(result.speech, ["channel", "role", "region", "start_s", "end_s", "closed", "judged"]),
    }


class CallAnalyzer:
    """One call's analyser, its alerts, and its segments as their regions close.

    Parameters
    ----------
    call_id : str
    bundle : ModelBundle
    sr, channels : int
        Of the audio fed.
    parties : sequence of str
        Party of each channel.
    timeline : TimelineSettings
    grow : bool
        :class:`~ser_lib.calls.StreamingAnalyzer`'s ``grow`` (False: results identical to ``analyze-call``).
    alerts : AlertSettings
    store : dict or None
        Where the finished call goes: ``{"path": ..., "source": ..., "metadata": {...},
        "started_at": ISO time}`` (None: no store).
    """

    def __init__(
        self,
        call_id: str,
        bundle,
        *,
        sr: int,
        channels: int,
        parties,
        timeline,
        grow: bool,
        alerts: AlertSettings,
        store: dict | None = None,
    ):
        self.call_id = call_id
        self.bundle, self.store = bundle, store
        self.raised: list[dict] = []
        self.analyzer = StreamingAnalyzer(
            bundle, sr=sr, channels=channels, roles=list(parties), settings=timeline, grow=grow, name=call_id
        )
        self.parties = list(self.analyzer.roles)
        self.labels = list(self.analyzer.labels)
        self.alerts = AlertTracker(alerts, id_prefix=call_id)
        self._region_windows: dict[tuple[int, int], list] = {}
        self._unchecked = 0
        self._next_trim = TRIM_EVERY_S

    @property
    def position_s(self) -> float:
        return self.analyzer.position_s if self.analyzer is not None else 0.0

    def feed(self, x) -> tuple[list[tuple[str, dict]], float]:
        """Analyse ``x`` [shape=(channels, n)]; the payloads of the events it made final, and the position.

        Every ``TRIM_EVERY_S`` of audio the freed native memory is given back, as ``analyze-call``
        does between blocks (the encoder's buffers of every size would otherwise stay mapped)."""
        out = self._publish(self.analyzer.feed(x), closing=False), self.analyzer.position_s
        if self.analyzer.position_s >= self._next_trim:
            self._next_trim += TRIM_EVERY_S
            release_memory()
        return out

    def finish(self, status: str = "completed") -> tuple[list[tuple[str, dict]], float, dict, dict, dict | None]:
        """End of the call: the last payloads, the position, ``analyze-call``'s JSON, the timeline tables,
        and what the store said (``{"analysis_id", "store"}``, ``{"error"}``, or None without a store).

        The analyser is then released (and the native memory it held given back)."""
        payloads = self._publish(self.analyzer.finish(), closing=True)
        position = self.analyzer.position_s
        result = self.analyzer.result(source=self.call_id)
        out = payloads, position, result.to_dict(), timeline_tables(result), self._store(result, status)
        self.close()
        return out

    def _store(self, result: CallAnalysis, status: str) -> dict | None:
        """Write the finished call to the store; a store that fails is logged and reported, never fatal."""
        if not self.store:
            return None
        from ..store import CallStore, model_identity

        try:
            name, sha = model_identity(self.bundle)
            aid = CallStore(self.store["path"]).write_analysis(
                result,
                call_id=self.call_id,
                source=str(self.store.get("source") or self.call_id),
                metadata=live_metadata(self.store.get("metadata"), self.store.get("started_at")),
                model_name=name,
                model_sha256=sha,
                status=status,
                origin="live",
                alerts=self.raised,
            )
            return {"analysis_id": aid, "store": str(self.store["path"])}
        except Exception as exc:  # noqa: BLE001 - the call's results file and events stand without the store
            logger.error("call %s: could not be written to the call store %s: %s", self.call_id, self.store["path"], exc)
            return {"error": f"{type(exc).__name__}: {exc}", "store": str(self.store["path"])}

    def close(self) -> None:
        """Drop the analyser (after :meth:`finish`, or without a result when the analysis failed).

        The analyser and its channels refer to each other, so only the cycle collector frees them:
        collect now, then give the freed native memory back. Left to the collector's own schedule,
        finished calls (about 20 MB each) piled up for minutes in a busy service."""
        self.analyzer = None
        self._region_windows.clear()
        gc.collect()
        release_memory()

    def snapshot(self, timeline: bool = False) -> tuple[dict, dict | None]:
        """The analysis so far as ``analyze-call``'s JSON (and the timeline tables if asked)."""
        result = self.analyzer.result(source=self.call_id)
        return result.to_dict(), timeline_tables(result) if timeline else None

    def _publish(self, new, *, closing: bool) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        for w in new:
            payload = window_payload(w, self.labels)
            out.append(("window", payload))
            self._region_windows.setdefault((w.channel, w.region), []).append(w)
            for alert in self.alerts.update(
                role=w.role,
                channel=w.channel,
                start_s=w.start_s,
                end_s=w.end_s,
                sentiment=w.sentiment,
                probabilities=payload["probabilities"],
            ):
                out.append(("alert", alert))
                self.raised.append(alert)
        self._unchecked += 1
        if new or closing or self._unchecked >= CHECK_EVERY:
            out += self._closed_segments()
        return out

    def _closed_segments(self) -> list[tuple[str, dict]]:
        """``segment`` payloads for the speech regions that closed (their windows are all final)."""
        self._unchecked = 0
        if not self._region_windows:
            return []
        speech = self.analyzer.speech()
        closed = speech[speech["closed"]]
        keys = {(int(c), int(r)) for c, r in zip(closed["channel"], closed["region"], strict=True)}
        out = []
        for key in sorted(k for k in self._region_windows if k in keys):
            windows = windows_frame(self._region_windows.pop(key), self.labels)
            region = closed[(closed["channel"] == key[0]) & (closed["region"] == key[1])]
            segments = segments_from_windows(
                windows, region, labels=self.labels, min_segment_s=self.analyzer.settings.min_segment_s
            )
            records = CallAnalysis(segments, windows, region, {}, 0.0, self.parties, self.labels, {}).segment_records()
            out += [("segment", segment_payload(rec)) for rec in records]
        return out
