"""Running the service with uvicorn: in the foreground (the command line), or in a thread (tests).

:func:`serve` is what ``python -m ser_lib serve`` runs. :class:`BackgroundServer` starts the same
app on a free port in a thread of the calling process and waits until ``/healthz`` answers;
tests, the benchmark and the wallboard's tests use it as a real server over TCP.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request

import uvicorn

from .app import create_app
from .protocol import ServiceError
from .settings import ServiceSettings

logger = logging.getLogger(__name__)


def uvicorn_config(app, settings: ServiceSettings, *, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's settings for the service: its host, port and WebSocket message limit."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",  # reads one message per receive: an unread socket stops TCP (back-pressure)
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,  # base64 audio hardly compresses; inflating every message would cost ~40 us
        # no WebSocket pings: a call whose socket is deliberately not read (back-pressure) cannot answer
        # them and would be closed; a silent peer is caught by ServiceSettings.idle_timeout_s instead
        ws_ping_interval=None,
        ws_ping_timeout=None,
        lifespan="on",
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


def serve(settings: ServiceSettings, *, bundle=None, log_level: str = "info") -> bool:
    """Run the service until interrupted (Ctrl-C finishes the active calls and writes their results).

    Returns True when it was stopped by a signal (Ctrl-C, SIGTERM) after it had started. uvicorn
    re-raises the signal once it has shut down, but inside ``asyncio.run`` that only becomes a
    ``KeyboardInterrupt`` when the main task is still awaiting, so the caller cannot rely on it.
    """
    server = uvicorn.Server(uvicorn_config(create_app(settings, bundle=bundle), settings, log_level=log_level))
    server.run()
    return bool(server.started and server.should_exit)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """The service on ``settings.host`` and ``port`` (default: a free one), in a thread; a context manager.

    Examples
    --------
    >>> with BackgroundServer(settings, bundle=bundle) as server:      # doctest: +SKIP
    ...     server.url, server.ws_url
    ('http://127.0.0.1:40123', 'ws://127.0.0.1:40123')
    """

    def __init__(
        self, settings: ServiceSettings | None = None, *, bundle=None, port: int | None = None, log_level: str = "warning"
    ):
        settings = settings or ServiceSettings()
        self.settings = settings.with_changes(port=port or free_port(settings.host))
        self.app = create_app(self.settings, bundle=bundle)
        self.server = uvicorn.Server(uvicorn_config(self.app, self.settings, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, name="ser-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.settings.port}"

    @property
    def service(self):
        return self.app.state.service

    def start(self, timeout: float = 120.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                try:
                    with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                        if json.loads(r.read()).get("status") == "ok":
                            return self
                except OSError:
                    pass
            if not self.thread.is_alive():
                raise ServiceError("the service stopped while starting: see the log above")
            time.sleep(0.05)
        raise ServiceError(f"the service did not answer {self.url}/healthz within {timeout:.0f} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
