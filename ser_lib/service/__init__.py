"""The live call service: emotion on calls as they happen, for telephony platforms and wallboards.

``python -m ser_lib serve`` runs it (Starlette on uvicorn). Audio comes in over WebSockets, as
Twilio Media Streams (``/twilio``) or raw PCM / G.711 / float frames (``/stream``); each call gets
its own :class:`ser_lib.calls.StreamingAnalyzer` (the same engine as ``analyze-call``), analysed off
the event loop (in worker processes that each load the model once, or in threads sharing it) with a
bounded audio queue per call.
Results go out as versioned JSON events (``/events``, ``/calls/{id}/events``; schema
:data:`~ser_lib.service.protocol.SCHEMA`, documented in ``docs/LIVE_SCHEMA.md``), over REST
(``/calls``, ``/calls/{id}``, ``/healthz``, ``/metrics``), and into one JSON file per finished call.

Modules
-------
- :mod:`~ser_lib.service.settings`: :class:`ServiceSettings` (listening, token, limits, analysis).
- :mod:`~ser_lib.service.protocol`: Twilio and raw message parsing, the event schema, close codes.
- :mod:`~ser_lib.service.codecs`: G.711 mu-law / A-law with NumPy tables, PCM and float decoding.
- :mod:`~ser_lib.service.assembler`: Twilio tracks put in step by timestamp.
- :mod:`~ser_lib.service.alerts`: sustained negative sentiment and emotion spikes, once per episode.
- :mod:`~ser_lib.service.analysis`: the analysis half of a call (windows, alerts, segments, record).
- :mod:`~ser_lib.service.workers`: where calls are analysed (threads, or worker processes).
- :mod:`~ser_lib.service.sessions`: one call on the event loop's side (queue, events, results file).
- :mod:`~ser_lib.service.registry`: all calls, limits, event subscribers.
- :mod:`~ser_lib.service.ingest`: the ``/twilio`` and ``/stream`` connections.
- :mod:`~ser_lib.service.metrics`: counters and the Prometheus text.
- :mod:`~ser_lib.service.app`: the ASGI app and its routes; :mod:`~ser_lib.service.server`: uvicorn.
- :mod:`~ser_lib.service.simulator`: recordings streamed as Twilio calls (``simulate-calls``).

Like :mod:`ser_lib.calls`, this package imports neither Streamlit, plotly nor the training code.
"""

from .alerts import AlertSettings, AlertTracker
from .protocol import SCHEMA, SCHEMA_VERSION, ProtocolError, ServiceError
from .settings import ServiceSettings

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "AlertSettings",
    "AlertTracker",
    "ProtocolError",
    "ServiceError",
    "ServiceSettings",
]
