"""The ASGI application (Starlette): routes, the shared secret, and the lifespan that loads the model.

Routes (one handler per concern; the protocols themselves live in :mod:`ser_lib.service.ingest`):

============================  ==========  =============================================================
``/twilio``                   WebSocket   Twilio Media Streams in (``<Stream url="wss://HOST/twilio">``)
``/stream``                   WebSocket   raw audio in (JSON start frame, then binary frames)
``/events``                   WebSocket   every call's events out
``/calls/{call_id}/events``   WebSocket   one call's events out
``/calls``                    GET         active and recently finished calls, with live state
``/calls/{call_id}``          GET         one call: ``analyze-call --json`` so far, plus ``status``
``/healthz``                  GET         liveness (no token needed)
``/metrics``                  GET         Prometheus text format
============================  ==========  =============================================================

The model bundle is loaded once, in the lifespan (or once per analysis worker process, see
:mod:`ser_lib.service.workers`), and warmed up (encoder, head, voice-activity detector) so the first
call does not wait; the calls of a process share it. When a token is set, every route
but ``/healthz`` requires it (see :class:`~ser_lib.service.settings.ServiceSettings`); a WebSocket
handshake without it is refused with HTTP 403, a REST request with 401.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .ingest import RawIngest, TwilioIngest
from .metrics import Metrics
from .protocol import CLOSE_BUSY, CLOSE_NORMAL, CLOSE_POLICY, SCHEMA, SCHEMA_VERSION, ProtocolError, check_call_id
from .registry import CallRegistry
from .sessions import dumps_event
from .settings import ServiceSettings

logger = logging.getLogger(__name__)


class Service:
    """What the routes share: settings, the loaded bundle, the registry of calls, the metrics."""

    def __init__(self, settings: ServiceSettings, bundle=None):
        self.settings = settings
        self.bundle = bundle
        self.metrics = Metrics()
        self.registry: CallRegistry | None = None
        self.model_name: str | None = None
        self.started = time.time()

    async def start(self) -> None:
        """Load the model (here, or once per analysis worker process) and warm it up."""
        from .workers import ProcessBackend, ThreadBackend, _warm_up

        loop = asyncio.get_running_loop()
        if self.settings.processes > 0:
            model = self.bundle.path if self.bundle is not None and self.bundle.path is not None else self.settings.model
            if model is None:
                from ..config import default_model_path

                model = default_model_path()
            backend = await loop.run_in_executor(
                None, lambda: ProcessBackend(model, self.settings.processes, timeline=self.settings.timeline)
            )
            self.model_name = backend.workers[0].model
        else:
            if self.bundle is None:
                from ..bundle import ModelBundle

                self.bundle = await loop.run_in_executor(None, ModelBundle.load, self.settings.model)
            await loop.run_in_executor(None, _warm_up, self.bundle, self.settings.timeline)
            backend = ThreadBackend(self.bundle)
            self.model_name = self.bundle.describe()
        self.registry = CallRegistry(backend, self.settings, self.metrics)
        logger.info(
            "serving %s on %s (schema %s; %s)",
            self.model_name,
            self.settings.url,
            SCHEMA,
            f"{self.settings.processes} analysis processes" if self.settings.processes else "analysis in threads",
        )

    async def stop(self) -> None:
        if self.registry is not None:
            await self.registry.close()

    def authorised(self, conn: HTTPConnection) -> bool:
        """Whether ``conn`` presents the token (``Authorization: Bearer`` or ``?token=``); True with none set."""
        secret = self.settings.token
        if not secret:
            return True
        header = conn.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else conn.query_params.get("token")
        return isinstance(given, str) and hmac.compare_digest(given.encode(), secret.encode())


def _service(conn: HTTPConnection) -> Service:
    return conn.app.state.service


def _unauthorised() -> JSONResponse:
    return JSONResponse(
        {"error": "not authorised: send the service's token as 'Authorization: Bearer TOKEN' or ?token=TOKEN"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


# --- REST --------------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    s = _service(request)
    return JSONResponse(
        {
            "status": "ok",
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "model": s.model_name,
            "analysis_processes": s.settings.processes,
            "active_calls": len(s.registry.active) if s.registry else 0,
            "uptime_s": round(time.time() - s.started, 1),
        }
    )


async def list_calls(request: Request) -> Response:
    s = _service(request)
    if not s.authorised(request):
        return _unauthorised()
    status = request.query_params.get("status")
    if status not in (None, "active", "completed", "ended_abruptly"):
        return JSONResponse({"error": f"status={status!r}: use active, completed or ended_abruptly"}, status_code=400)
    return JSONResponse({"schema": SCHEMA, **s.registry.overview(status)})


async def get_call(request: Request) -> Response:
    s = _service(request)
    if not s.authorised(request):
        return _unauthorised()
    call_id = request.path_params["call_id"]
    session = s.registry.get(call_id)
    if session is None:
        return JSONResponse({"error": f"no call {call_id[:80]!r} is active or recently finished"}, status_code=404)
    timeline = request.query_params.get("timeline", "").lower() in ("1", "true", "yes")
    if session.final_record is not None:
        record = dict(session.final_record)
        if timeline:
            record["timeline"] = await asyncio.get_running_loop().run_in_executor(
                s.registry.pool, s.registry.read_timeline, session
            )
    else:
        record = await asyncio.get_running_loop().run_in_executor(s.registry.pool, lambda: session.snapshot(timeline=timeline))
    return JSONResponse(record)


async def metrics(request: Request) -> Response:
    s = _service(request)
    if not s.authorised(request):
        return _unauthorised()
    return PlainTextResponse(s.registry.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")


# --- WebSockets ---------------------------------------------------------------------------------------


async def twilio_socket(websocket: WebSocket) -> None:
    s = _service(websocket)
    await websocket.accept()  # the token may come in the start message's customParameters
    await TwilioIngest(s, websocket, authorised=s.authorised(websocket)).run()


async def raw_socket(websocket: WebSocket) -> None:
    s = _service(websocket)
    if not s.authorised(websocket):
        s.metrics.inc("ser_calls_rejected_total", reason="unauthorized")
        await websocket.close(code=CLOSE_POLICY)  # before accept: the handshake is refused with HTTP 403
        return
    await websocket.accept()
    await RawIngest(s, websocket, authorised=True).run()


async def _follow(websocket: WebSocket, call_id: str | None) -> None:
    """Send a subscriber every event (of one call, or all) until it disconnects or falls behind."""
    s = _service(websocket)
    if not s.authorised(websocket):
        await websocket.close(code=CLOSE_POLICY)
        return
    await websocket.accept()
    try:
        sub = s.registry.subscribe(call_id)
    except ProtocolError as exc:
        await websocket.close(code=exc.close, reason=str(exc)[:120])
        return
    session = s.registry.get(call_id) if call_id else None
    if session is not None and session.final_record is not None:  # already over: its summary, then close
        s.registry.unsubscribe(sub)
        if session.summary_event is not None:
            await websocket.send_text(dumps_event(session.summary_event))
        await websocket.close(code=CLOSE_NORMAL, reason="call finished")
        return

    async def reader() -> None:
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        except (WebSocketDisconnect, RuntimeError):
            pass

    async def sender() -> None:
        while True:
            if sub.overflowed:
                await websocket.close(code=CLOSE_BUSY, reason="events were not read fast enough")
                return
            text = await sub.queue.get()
            if text is None:
                await websocket.close(code=1001, reason="service shutting down")
                return
            await websocket.send_text(text)

    tasks = [asyncio.create_task(reader()), asyncio.create_task(sender())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        s.registry.unsubscribe(sub)


async def all_events(websocket: WebSocket) -> None:
    await _follow(websocket, None)


async def call_events(websocket: WebSocket) -> None:
    try:
        call_id = check_call_id(websocket.path_params["call_id"])
    except ProtocolError as exc:
        await websocket.accept()
        await websocket.close(code=exc.close, reason=str(exc)[:120])
        return
    await _follow(websocket, call_id)


def create_app(settings: ServiceSettings | None = None, *, bundle=None) -> Starlette:
    """The service as an ASGI app (run it with uvicorn; see :func:`ser_lib.service.server.serve`).

    Parameters
    ----------
    settings : ServiceSettings or None
    bundle : ModelBundle or None
        An already loaded bundle (tests, the benchmark); default: ``settings.model`` loaded at start-up.
    """
    service = Service(settings or ServiceSettings(), bundle)

    @asynccontextmanager
    async def lifespan(app):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=[
            WebSocketRoute("/twilio", twilio_socket),
            WebSocketRoute("/stream", raw_socket),
            WebSocketRoute("/events", all_events),
            WebSocketRoute("/calls/{call_id}/events", call_events),
            Route("/calls", list_calls),
            Route("/calls/{call_id}", get_call),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
