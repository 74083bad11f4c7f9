"""Where calls are analysed: threads of the service, or analysis worker processes.

The service's event loop and the Python half of every call's analysis (voice-activity detection
frame by frame, windows, smoothing, alerts, segments) share one interpreter lock when they run in
one process: measured, the service then never used more than about one core of the two, and fell
behind at 8-13 calls. With ``processes`` > 0 each call's :class:`~ser_lib.service.analysis.CallAnalyzer`
lives in one of that many worker processes instead (each loads the model once; calls are placed on
the process with the fewest), and the service only moves audio and events:

- :class:`ThreadBackend`: analysers in this process (``processes=0``; tests, or a bundle that is
  not on disk).
- :class:`ProcessBackend`: ``spawn``-ed worker processes running :func:`worker_main`; each call's
  engine is a :class:`RemoteCall`, whose ``feed``/``finish``/``snapshot``/``close`` are synchronous
  requests over the worker's pipe (made from the service's thread pool, never from the event loop).
  A worker that dies fails its own calls (``analysis_failed``), not the service or other workers' calls.

Both give engines with the same interface: ``parties``, ``labels``, ``feed(x)``, ``finish()``,
``snapshot(timeline)``, ``close()``.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future
from pathlib import Path

from .analysis import CallAnalyzer
from .metrics import cpu_seconds, rss_bytes
from .protocol import ServiceError

logger = logging.getLogger(__name__)


class ThreadBackend:
    """Analysers in this process, sharing ``bundle``."""

    processes = 0

    def __init__(self, bundle):
        self.bundle = bundle

    def open(self, call_id: str, **kwargs) -> CallAnalyzer:
        return CallAnalyzer(call_id, self.bundle, **kwargs)

    def stats(self) -> list[dict]:
        return []

    def close(self) -> None:
        pass


def _warm_up(bundle, timeline) -> None:
    """Load the encoder, the head and the voice-activity detector once, before the first call."""
    import numpy as np

    from ..calls import StreamingAnalyzer

    analyzer = StreamingAnalyzer(bundle, sr=8000, channels=1, settings=timeline)
    analyzer.feed(np.zeros(8000, np.float32))
    analyzer.finish()
    if getattr(bundle, "frame_rate", None):
        bundle.encoder().encode(np.zeros(16000, np.float32))


def worker_main(conn, model: str, timeline, log_level: int) -> None:
    """An analysis worker process: load the model, then serve requests until told to stop.

    Requests are ``(op, call_id, args)`` with ``op`` one of ``open``, ``feed``, ``finish``,
    ``snapshot``, ``close``, ``stop``; every answer is ``("ok", value)`` or ``("error", message)``.
    """
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s[analysis %(process)d]: %(message)s")
    from ..bundle import ModelBundle

    try:
        bundle = ModelBundle.load(model)
        _warm_up(bundle, timeline)
    except Exception as exc:  # noqa: BLE001 - reported to the service, which refuses to start
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", bundle.describe()))
    calls: dict[str, CallAnalyzer] = {}
    while True:
        try:
            op, call_id, args = conn.recv()
        except (EOFError, OSError):  # the service went away
            break
        if op == "stop":
            conn.send(("ok", None))
            break
        try:
            if op == "open":
                calls[call_id] = CallAnalyzer(call_id, bundle, **args[0])
                value = (calls[call_id].parties, calls[call_id].labels)
            elif op == "feed":
                value = calls[call_id].feed(args[0])
            elif op == "finish":
                value = calls.pop(call_id).finish(*args)
            elif op == "snapshot":
                value = calls[call_id].snapshot(args[0])
            elif op == "close":
                engine = calls.pop(call_id, None)
                value = engine.close() if engine is not None else None
            else:
                raise ServiceError(f"unknown request {op!r}")
            conn.send(("ok", value))
        except Exception as exc:  # noqa: BLE001 - this call fails; the worker and its other calls go on
            logger.exception("call %s: %s failed", call_id, op)
            dropped = calls.pop(call_id, None)
            if dropped is not None:
                dropped.close()
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Worker:
    """One analysis process and the pipe to it.

    Requests are pipelined: callers (threads of the service's pool) queue them and wait for their
    answer; the process serves them in order, so while it works on one the next is already waiting
    in the pipe, and one reader thread hands the answers back in the same order.
    """

    def __init__(self, ctx, index: int, model: str, timeline, *, timeout: float):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=worker_main,
            args=(child, model, timeline, logging.getLogger("ser_lib").getEffectiveLevel()),
            name=f"ser-analysis-{index}",
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.calls = 0
        if not self.conn.poll(timeout):
            self.proc.kill()
            raise ServiceError(f"analysis worker {index} did not load the model within {timeout:.0f} s")
        status, value = self.conn.recv()
        if status != "ok":
            raise ServiceError(f"analysis worker {index} could not start: {value}")
        self.model = value
        self._send_lock = threading.Lock()
        self._waiting: collections.deque[Future] = collections.deque()
        self._gone: str | None = None
        self._reader = threading.Thread(target=self._read, name=f"ser-analysis-{index}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                answer = self.conn.recv()
            except (EOFError, OSError) as exc:
                self._fail(f"analysis worker {self.proc.name} is gone (exit code {self.proc.exitcode}): {exc!r}")
                return
            with self._send_lock:
                future = self._waiting.popleft() if self._waiting else None
            if future is not None:
                future.set_result(answer)

    def _fail(self, message: str) -> None:
        with self._send_lock:
            self._gone = message
            waiting, self._waiting = list(self._waiting), collections.deque()
        for future in waiting:
            future.set_result(("error", message))

    def request(self, op: str, call_id: str | None, *args):
        future: Future = Future()
        with self._send_lock:
            if self._gone is not None:
                raise ServiceError(self._gone)
            self._waiting.append(future)
            try:
                self.conn.send((op, call_id, args))
            except (OSError, BrokenPipeError) as exc:
                self._waiting.remove(future)
                raise ServiceError(
                    f"analysis worker {self.proc.name} is gone (exit code {self.proc.exitcode}): {exc!r}"
                ) from None
        status, value = future.result()
        if status != "ok":
            raise ServiceError(value)
        return value

    def stop(self) -> None:
        try:
            self.request("stop", None)
        except ServiceError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


class RemoteCall:
    """A call's engine in a worker process (see :class:`~ser_lib.service.analysis.CallAnalyzer`)."""

    def __init__(self, worker: _Worker, call_id: str, kwargs: dict):
        self.worker, self.call_id = worker, call_id
        self.parties, self.labels = worker.request("open", call_id, kwargs)
        worker.calls += 1
        self._open = True

    def feed(self, x):
        return self.worker.request("feed", self.call_id, x)

    def finish(self, status: str = "completed"):
        try:
            return self.worker.request("finish", self.call_id, status)
        finally:
            self._released()

    def snapshot(self, timeline: bool = False):
        return self.worker.request("snapshot", self.call_id, timeline)

    def close(self) -> None:
        try:
            self.worker.request("close", self.call_id)
        finally:
            self._released()

    def _released(self) -> None:
        if self._open:
            self._open = False
            self.worker.calls -= 1


class ProcessBackend:
    """``processes`` analysis worker processes, each with the model at ``model`` loaded once."""

    def __init__(self, model: str | os.PathLike, processes: int, *, timeline, timeout: float = 300.0):
        ctx = multiprocessing.get_context("spawn")  # never fork a process holding threads and ONNX sessions
        self.model = str(Path(model))
        self.processes = int(processes)
        self.workers: list[_Worker] = []
        try:
            for i in range(self.processes):
                self.workers.append(_Worker(ctx, i, self.model, timeline, timeout=timeout))
        except BaseException:
            self.close()
            raise
        self._lock = threading.Lock()

    def open(self, call_id: str, **kwargs) -> RemoteCall:
        with self._lock:
            live = [w for w in self.workers if w.proc.is_alive()]
            if not live:
                raise ServiceError("no analysis worker is running")
            worker = min(live, key=lambda w: w.calls)
        return RemoteCall(worker, call_id, kwargs)

    def stats(self) -> list[dict]:
        """Per worker: pid, calls, resident memory and CPU seconds (from /proc; 0 where unavailable)."""
        out = []
        for w in self.workers:
            out.append(
                {
                    "worker": w.proc.name,
                    "pid": w.proc.pid,
                    "calls": w.calls,
                    "rss_bytes": rss_bytes(w.proc.pid),
                    "cpu_s": cpu_seconds(w.proc.pid),
                }
            )
        return out

    def close(self) -> None:
        for w in self.workers:
            w.stop()
