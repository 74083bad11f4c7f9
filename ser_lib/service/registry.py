"""The calls the service knows: active and recently finished, their event subscribers, their limits.

:class:`CallRegistry` opens a :class:`~ser_lib.service.sessions.CallSession` per call (refusing one
over ``max_calls``, or one whose id is already active), finishes it, keeps the last
``keep_finished`` finished calls' records for ``/calls``, and fans every event out to the
subscribers of ``/events`` (all calls) and ``/calls/{id}/events`` (one call). A subscriber is an
:class:`asyncio.Queue` of JSON texts; one that falls ``subscriber_queue`` events behind is
disconnected (close code 1013) rather than slowing the analysis or growing without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from .metrics import Metrics
from .protocol import CLOSE_BUSY, CLOSE_POLICY, ProtocolError
from .sessions import CallSession, ResultStore, dumps_event
from .settings import ServiceSettings

logger = logging.getLogger(__name__)


class Subscriber:
    """One event WebSocket: a bounded queue of JSON texts, for all calls or one (``call_id``)."""

    def __init__(self, call_id: str | None, size: int):
        self.call_id = call_id
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def end(self) -> None:
        """Make the sender close the socket (service shutdown)."""
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.overflowed = True

    def offer(self, text: str) -> None:
        """Queue ``text``; a full queue marks the subscriber as too slow (its sender then closes it)."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True


class CallRegistry:
    """Active and finished calls, the shared thread pool, the result store and the subscribers.

    Created inside the running event loop (the service's lifespan), with the analysis ``backend``
    (:mod:`ser_lib.service.workers`). With worker processes, the pool's threads mostly wait for them,
    so the pool has four threads per process (requests to a process are pipelined).
    """

    def __init__(self, backend, settings: ServiceSettings, metrics: Metrics | None = None):
        self.backend, self.settings = backend, settings
        self.metrics = metrics or Metrics()
        self.loop = asyncio.get_running_loop()
        self.pool = ThreadPoolExecutor(max(settings.workers, 4 * backend.processes), thread_name_prefix="ser-call")
        self.store = ResultStore(settings.results)
        self.active: dict[str, CallSession] = {}
        self.finished: OrderedDict[str, CallSession] = OrderedDict()
        self.subscribers: set[Subscriber] = set()
        self._opening = 0

    async def open(self, call_id: str, **kwargs) -> CallSession:
        """A new :class:`CallSession` (its analyser is built in the pool, off the event loop).

        Raises
        ------
        ProtocolError
            ``too_many_calls`` (close 1013) at ``max_calls``; ``call_id_in_use`` (close 1008) for
            the id of a call still active.
        """
        if call_id in self.active:
            self.metrics.inc("ser_calls_rejected_total", reason="call_id_in_use")
            raise ProtocolError(
                f"call {call_id!r} is already active: each call needs its own id", code="call_id_in_use", close=CLOSE_POLICY
            )
        if len(self.active) + self._opening >= self.settings.max_calls:
            self.metrics.inc("ser_calls_rejected_total", reason="too_many_calls")
            raise ProtocolError(
                f"{self.settings.max_calls} calls are already being analysed (the service's --max-calls); try again later",
                code="too_many_calls",
                close=CLOSE_BUSY,
            )
        self._opening += 1
        try:
            session = (await self.loop.run_in_executor(self.pool, lambda: CallSession(call_id, self, **kwargs))).attach()
        finally:
            self._opening -= 1
        self.active[call_id] = session
        self.finished.pop(call_id, None)
        self.metrics.inc("ser_calls_started_total", source=session.source)
        self.broadcast(call_id, [session.started_event()])
        logger.info("call %s started (%s, %s)", call_id, session.source, ", ".join(session.parties))
        return session

    async def finish(self, session: CallSession, status: str) -> dict:
        """Finish ``session`` (idempotent) and move it to the finished calls."""
        record = await session.finish(status)
        if self.active.get(session.call_id) is session:
            del self.active[session.call_id]
            self.finished[session.call_id] = session
            while len(self.finished) > self.settings.keep_finished:
                self.finished.popitem(last=False)
        return record

    def get(self, call_id: str) -> CallSession | None:
        return self.active.get(call_id) or self.finished.get(call_id)

    async def close(self) -> None:
        """Server shutdown: every active call is finished as ``ended_abruptly`` with what arrived."""
        for session in list(self.active.values()):
            try:
                await self.finish(session, "ended_abruptly")
            except Exception:  # noqa: BLE001 - finish the others whatever happens to one
                logger.exception("call %s could not be finished at shutdown", session.call_id)
        for sub in list(self.subscribers):
            sub.end()
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.backend.close()

    # --- events --------------------------------------------------------------------------------------
    def subscribe(self, call_id: str | None) -> Subscriber:
        if len(self.subscribers) >= self.settings.max_subscribers:
            self.metrics.inc("ser_calls_rejected_total", reason="too_many_subscribers")
            raise ProtocolError(
                f"{self.settings.max_subscribers} event subscribers are already connected (--max-subscribers)",
                code="too_many_subscribers",
                close=CLOSE_BUSY,
            )
        sub = Subscriber(call_id, self.settings.subscriber_queue)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def broadcast(self, call_id: str | None, events: list[dict]) -> None:
        """Send ``events`` to every subscriber of all calls and of ``call_id`` (event loop only)."""
        if not self.subscribers:
            return
        texts = [dumps_event(e) for e in events]
        for sub in list(self.subscribers):
            if sub.call_id is None or sub.call_id == call_id:
                for text in texts:
                    sub.offer(text)
                if sub.overflowed:
                    self.metrics.inc("ser_subscribers_dropped_total")
                    self.unsubscribe(sub)

    # --- views ---------------------------------------------------------------------------------------
    def overview(self, status: str | None = None) -> dict:
        """What ``/calls`` returns: active calls first, then the finished ones, newest first."""
        calls = [s.overview() for s in self.active.values()] + [s.overview() for s in reversed(self.finished.values())]
        if status:
            calls = [c for c in calls if c["status"] == status]
        return {"active": len(self.active), "calls": calls}

    def metrics_text(self) -> str:
        rows = [{"call_id": s.call_id, "lag_s": s.lag_s(), "queued_s": s.queued_s} for s in self.active.values()]
        return self.metrics.render(
            active_calls=len(self.active), calls=rows, subscribers=len(self.subscribers), workers=self.backend.stats()
        )

    def read_timeline(self, session: CallSession) -> dict | None:
        """The windows and speech of a finished call, from its results file."""
        if session.results_path is None or not session.results_path.is_file():
            return None
        try:
            return json.loads(session.results_path.read_text()).get("timeline")
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("call %s: its results file cannot be read: %s", session.call_id, exc)
            return None
