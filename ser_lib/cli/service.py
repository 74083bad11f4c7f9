"""The live-service commands of the command line: ``serve`` and ``simulate-calls``.

:func:`add_service_commands` registers them on the main parser's sub-parsers (see :mod:`ser_lib.cli`)::

    python -m ser_lib serve [--host 127.0.0.1] [--port 8765] [--model models/default]
    python -m ser_lib simulate-calls --url ws://127.0.0.1:8765/twilio --calls 5 --speed 1 call.wav

The work is done by :mod:`ser_lib.service`; this module parses the options and prints.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import ParameterError
from .common import EXIT_INTERRUPTED

logger = logging.getLogger(__name__)


def add_service_commands(subparsers) -> None:
    """Register ``serve`` and ``simulate-calls`` on ``subparsers`` (from ``add_subparsers``)."""
    s = subparsers.add_parser(
        "serve",
        help="run the live call service (Twilio Media Streams and raw audio over WebSockets)",
        description="Analyse calls as their audio arrives: Twilio Media Streams at ws://HOST:PORT/twilio, raw audio at "
        "/stream; events at /events and /calls/ID/events; REST at /calls, /calls/ID, /healthz, /metrics. One JSON file "
        "per finished call goes to --results. Binds to 127.0.0.1 unless told otherwise; any other address needs --token.",
        epilog='Twilio: answer the call with TwiML <Response><Start><Stream url="wss://HOST/twilio" track="both_tracks">'
        '<Parameter name="token" value="TOKEN"/></Stream></Start>...</Response> (both parties), or <Connect><Stream> '
        "(the caller only). See README, 'Live calls: the streaming service'.",
    )
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, this machine only)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    s.add_argument("--model", metavar="PATH", help="model bundle folder (default: $SER_MODEL, then models/default)")
    s.add_argument(
        "--token",
        default=os.environ.get("SER_SERVICE_TOKEN"),
        help='shared secret clients must present (Bearer header, ?token=, or Twilio <Parameter name="token">); '
        "required for any host but 127.0.0.1 (default $SER_SERVICE_TOKEN)",
    )
    s.add_argument(
        "--results",
        metavar="DIR",
        help="folder for one JSON file per finished call (default $SER_RESULTS_DIR, then results/live)",
    )
    s.add_argument(
        "--store",
        metavar="PATH",
        help="call store every finished call is written to (default $SER_CALL_STORE, then data/calls.duckdb)",
    )
    s.add_argument("--no-store", action="store_true", help="write the per-call JSON files only, no call store")
    s.add_argument(
        "--max-calls", type=int, default=64, help="concurrent calls; more are refused with close code 1013 (default 64)"
    )
    s.add_argument("--max-message-kb", type=int, default=64, help="largest WebSocket message in KiB (default 64)")
    s.add_argument(
        "--max-queued",
        type=float,
        default=4.0,
        metavar="S",
        help="seconds of audio a call may queue before its socket stops being read (default 4)",
    )
    s.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="analysis worker processes, each loading the model once (default: one per core; 0: threads of this process)",
    )
    s.add_argument(
        "--max-subscribers", type=int, default=32, help="open event WebSockets (/events, /calls/ID/events; default 32)"
    )
    s.add_argument(
        "--keep-finished", type=int, default=200, help="finished calls listed by /calls (default 200; all are in --results)"
    )
    s.add_argument(
        "--workers", type=int, default=None, help="analysis threads shared by all calls (default: CPU count, at least 2)"
    )
    s.add_argument(
        "--twilio-roles",
        default="outbound=agent,inbound=customer",
        metavar="MAP",
        help="party of each Twilio track (default outbound=agent,inbound=customer)",
    )
    s.add_argument(
        "--complete-chunks",
        action="store_true",
        help="results identical to analyze-call on the same audio, about 1 s later "
        "(default: score windows from the encoder chunk in progress)",
    )
    s.add_argument("--window", type=float, default=3.0, metavar="S", help="window length in seconds (default 3.0)")
    s.add_argument("--hop", type=float, default=1.0, metavar="S", help="seconds between windows (default 1.0)")
    s.add_argument(
        "--alert-roles",
        default="customer",
        metavar="ROLES",
        help="parties watched for alerts, comma-separated, or * (default customer)",
    )
    s.add_argument(
        "--alert-below", type=float, default=-0.3, metavar="X", help="sentiment below which a window is negative (default -0.3)"
    )
    s.add_argument(
        "--alert-after",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds of negative windows that raise an alert (default 10)",
    )
    s.add_argument(
        "--spike-above",
        type=float,
        default=0.7,
        metavar="P",
        help="angry or disgust probability that raises a spike alert (default 0.7)",
    )
    s.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    s.set_defaults(func=cmd_serve)

    m = subparsers.add_parser(
        "simulate-calls",
        help="stream recordings to the service as Twilio calls (for trying it without a phone system)",
        description="Stream each FILE as a Twilio Media Stream: connected, start, 20 ms mu-law media frames per track, "
        "stop. A stereo file's left channel is the agent (outbound track) and its right the customer (inbound); a mono "
        "file is the inbound track. --calls N runs N calls at once, cycling through the files.",
    )
    m.add_argument("files", nargs="+", metavar="FILE", help="call recordings (any format; resampled to 8 kHz)")
    m.add_argument("--url", default="ws://127.0.0.1:8765/twilio", help="the service's /twilio endpoint")
    m.add_argument("--calls", type=int, default=1, help="concurrent calls (default 1)")
    m.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 = real time (default), 4 = four times faster, 0 = as fast as the service takes it",
    )
    m.add_argument("--stagger", type=float, default=0.0, metavar="S", help="seconds between call starts (default 0)")
    m.add_argument(
        "--channels",
        default="agent,customer",
        metavar="ROLES",
        help="parties of a stereo file in channel order (default agent,customer)",
    )
    m.add_argument(
        "--token", default=os.environ.get("SER_SERVICE_TOKEN"), help="the service's token (default $SER_SERVICE_TOKEN)"
    )
    m.set_defaults(func=cmd_simulate)


def _twilio_roles(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in text.split(","):
        track, _, role = part.partition("=")
        if not role:
            raise ParameterError(f"--twilio-roles {text!r} must map each track to a party, e.g. outbound=agent,inbound=customer")
        pairs.append((track.strip(), role.strip()))
    order = {"outbound": 0, "inbound": 1}
    return tuple(sorted(pairs, key=lambda p: order.get(p[0], 2)))


def cmd_serve(args) -> int:
    """``serve``: build the settings (validated: a public host needs a token) and run uvicorn."""
    from ..calls import TimelineSettings
    from ..service import AlertSettings, ServiceSettings
    from ..service.server import serve
    from ..service.settings import results_dir
    from ..store import CallStore, default_store_path

    settings = ServiceSettings(
        host=args.host,
        port=args.port,
        token=args.token or None,
        model=args.model,
        results=results_dir(args.results),
        store=None if args.no_store else Path(args.store or default_store_path()),
        max_calls=args.max_calls,
        max_message_bytes=args.max_message_kb * 1024,
        max_queued_s=args.max_queued,
        processes=args.processes,
        max_subscribers=args.max_subscribers,
        keep_finished=args.keep_finished,
        **({"workers": args.workers} if args.workers else {}),
        twilio_roles=_twilio_roles(args.twilio_roles),
        timeline=TimelineSettings(window_s=args.window, hop_s=args.hop),
        complete_chunks=args.complete_chunks,
        alerts=AlertSettings(
            roles=tuple(r.strip() for r in args.alert_roles.split(",") if r.strip()),
            negative_below=args.alert_below,
            sustained_s=args.alert_after,
            spike_above=args.spike_above,
        ),
    )
    if settings.store is not None:
        CallStore(settings.store).check_writable()  # a store that cannot be written fails now, not at the first call's end
    logging.getLogger("ser_lib").setLevel(args.log_level.upper())
    where = f"{settings.results} and the call store {settings.store}" if settings.store else str(settings.results)
    print(
        f"Live call service on http://{settings.host}:{settings.port} (Twilio: ws://{settings.host}:{settings.port}/twilio); "
        f"results in {where}. Ctrl-C stops it.",
        flush=True,
    )
    if serve(settings, log_level=args.log_level):
        print("interrupted: the active calls were finished and written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _http_url(ws_url: str, path: str) -> str:
    u = urllib.parse.urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(u.scheme, u.scheme)
    return urllib.parse.urlunsplit((scheme, u.netloc, path, "", ""))


def _summary_line(call, url: str, token: str | None) -> str:
    req = urllib.request.Request(_http_url(url, f"/calls/{call.call_id}"))
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = json.loads(r.read())
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        return f"(no summary: {exc})"
    parts = []
    for role, p in (data.get("summary") or {}).get("parties", {}).items():
        mood = f"mostly {p['dominant']}, sentiment {p['mean_sentiment']:+.2f}" if p.get("dominant") else "nothing judged"
        parts.append(f"{role}: {mood}")
    return f"{data.get('status')}; " + "; ".join(parts) + f"; {len(data.get('alerts', []))} alert(s)"


def cmd_simulate(args) -> int:
    """``simulate-calls``: stream the files, then print each call's outcome and summary."""
    import asyncio

    from ..calls import parse_roles
    from ..service.simulator import simulate_calls

    if args.speed < 0:
        raise ParameterError(f"--speed {args.speed} must be positive (1 = real time) or 0 for as fast as possible")
    roles = parse_roles(args.channels)
    try:
        calls = asyncio.run(
            simulate_calls(
                args.url, args.files, calls=args.calls, speed=args.speed, token=args.token, roles=roles, stagger_s=args.stagger
            )
        )
    except OSError as exc:
        print(f"error: cannot reach the service at {args.url} ({exc}). Start it with `python -m ser_lib serve`.", file=sys.stderr)
        return 2
    failed = 0
    for c in calls:
        state = "sent" if c.complete else f"closed by the service ({c.close_code} {c.close_reason})"
        print(f"{c.call_id} {c.file}: {c.sent_frames * 0.02:.1f} of {c.seconds:.1f} s {state} in {c.wall_s:.1f} s")
        for e in c.errors:
            print(f"  error {e.get('code')}: {e.get('message')}")
        failed += not c.complete
        print(f"  {_summary_line(c, args.url, args.token)}")
    return 1 if failed else 0
