"""The service's settings: where it listens, who may connect, its limits, its analysis and alerts.

:class:`ServiceSettings` is validated when made, so a bad setting fails at start-up with a message
that says what to change, never on the first call. The command line (``python -m ser_lib serve``)
builds one from its options; tests and the benchmark build one directly.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..calls import TimelineSettings
from ..errors import ParameterError
from .alerts import AlertSettings

#: Environment variables: the shared secret, and the folder of per-call result files.
TOKEN_ENV = "SER_SERVICE_TOKEN"
RESULTS_ENV = "SER_RESULTS_DIR"
DEFAULT_PORT = 8765
#: Twilio tracks in channel order, with their default parties: ``outbound`` is what the caller hears
#: (the agent), ``inbound`` the caller (the customer). Channel 0 (left) is the agent, as in
#: ``analyze-call``'s default, so a stereo recording and its Twilio stream give the same channels.
DEFAULT_TWILIO_ROLES: tuple[tuple[str, str], ...] = (("outbound", "agent"), ("inbound", "customer"))
_ROLE = re.compile(r"^[A-Za-z0-9 _-]{1,32}$")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder of per-call result files: ``path``, else ``$SER_RESULTS_DIR``, else ``results/live``."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get(RESULTS_ENV)
    return Path(env).expanduser() if env else Path("results") / "live"


def check_role(role: str, what: str = "role") -> str:
    if not isinstance(role, str) or not _ROLE.match(role):
        raise ParameterError(f"{what}={role!r} must be 1-32 letters, digits, spaces, _ or -, e.g. 'customer'")
    return role


@dataclass(frozen=True)
class ServiceSettings:
    """Everything ``python -m ser_lib serve`` can set.

    Parameters
    ----------
    host, port : str, int
        Where to listen (default 127.0.0.1:8765). Any other interface needs ``token``.
    token : str or None
        Shared secret (at least 16 characters). When set, every WebSocket and REST request except
        ``/healthz`` must present it: ``Authorization: Bearer TOKEN``, ``?token=TOKEN``, or for
        ``/twilio`` a ``<Parameter name="token">`` (Twilio's stream URL cannot carry a query string).
    model : str or None
        Bundle folder (default ``$SER_MODEL``, then ``models/default``).
    results : Path
        Folder for one JSON file per finished call (names chosen by the service, never by a client).
    store : Path or None
        The call store (DuckDB file, :mod:`ser_lib.store`) every finished call is written to, with its
        windows, segments, summaries and alerts, marked ``origin="live"``; None: results files only.
    max_calls : int
        Concurrent calls; one more is refused with close code 1013.
    max_message_bytes : int
        Largest WebSocket message accepted (larger: close code 1009).
    max_queued_s : float
        Seconds of audio a call may have waiting for analysis; at the bound the service stops
        reading that call's socket until the analysis catches up (TCP then slows the sender).
    feed_s : float
        A call's audio is handed to its analyser in steps of at least this many seconds (one 20 ms
        Twilio frame at a time would cost more in hand-overs than in analysis); adds at most this
        much latency.
    processes : int
        Analysis worker processes, each with the model loaded once (0: analyse in this process's
        threads). The event loop and every call's analysis share one interpreter lock in one
        process, which then uses about one core however many there are; ``serve`` starts one
        process per core.
    workers : int
        Analysis threads shared by all calls (with ``processes``: at least two per process).
    max_subscribers : int
        Open event WebSockets (``/events``, ``/calls/{id}/events``).
    subscriber_queue : int
        Events waiting for one subscriber; a subscriber this far behind is disconnected (1013).
    twilio_roles : tuple of (track, role)
        Party of each Twilio track, in channel order.
    timeline : TimelineSettings
        Windows, smoothing and voice-activity detection (as ``analyze-call``).
    complete_chunks : bool
        Wait for complete encoder chunks: results identical to ``analyze-call`` on the same audio,
        about one more second of latency, less compute. Default False: a window is scored from
        the chunk in progress (see :class:`ser_lib.calls.StreamingAnalyzer`'s ``grow``).
    alerts : AlertSettings
    keep_finished : int
        Finished calls listed by ``/calls`` (older ones stay in their result files).
    max_skew_s : float
        How far one Twilio track may run ahead of the other before the late one is padded.
    max_bad_messages : int
        Unusable messages tolerated per call before it is closed (1007).
    idle_timeout_s : float
        A call whose client sends nothing for this long is finished as ``ended_abruptly`` (a
        telephony stream sends audio continuously; silence is sent as silence).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    model: str | None = None
    results: Path = field(default_factory=results_dir)
    store: Path | None = None
    max_calls: int = 64
    max_message_bytes: int = 64 * 1024
    max_queued_s: float = 4.0
    feed_s: float = 0.1
    processes: int = 0
    workers: int = field(default_factory=lambda: max(2, os.cpu_count() or 1))
    max_subscribers: int = 32
    subscriber_queue: int = 5000
    twilio_roles: tuple[tuple[str, str], ...] = DEFAULT_TWILIO_ROLES
    timeline: TimelineSettings = field(default_factory=TimelineSettings)
    complete_chunks: bool = False
    alerts: AlertSettings = field(default_factory=AlertSettings)
    keep_finished: int = 200
    max_skew_s: float = 0.5
    max_bad_messages: int = 50
    idle_timeout_s: float = 60.0

    def __post_init__(self):
        if not is_loopback(self.host) and not self.token:
            raise ParameterError(
                f"host={self.host!r} is reachable from other machines: set a shared secret (--token, or "
                f"${TOKEN_ENV}) so that only your telephony platform and dashboards can connect, or keep 127.0.0.1"
            )
        if self.token is not None and (len(self.token) < 16 or not self.token.isprintable() or " " in self.token):
            raise ParameterError(
                'the token must be at least 16 printable characters without spaces (e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`)'
            )
        if not 0 < int(self.port) < 65536:
            raise ParameterError(f"port={self.port} must be between 1 and 65535")
        for name, low in (
            ("processes", 0),
            ("max_calls", 1),
            ("workers", 1),
            ("max_subscribers", 0),
            ("keep_finished", 0),
            ("max_bad_messages", 0),
        ):
            if int(getattr(self, name)) < low:
                raise ParameterError(f"{name}={getattr(self, name)} must be at least {low}")
        if not 1024 <= self.max_message_bytes <= 16 * 1024 * 1024:
            raise ParameterError(f"max_message_bytes={self.max_message_bytes} must be between 1 KiB and 16 MiB")
        if not 0.2 <= self.max_queued_s <= 60:
            raise ParameterError(f"max_queued_s={self.max_queued_s} must be between 0.2 and 60 seconds")
        if not 0.0 <= self.feed_s <= 1.0 or self.feed_s >= self.max_queued_s:
            raise ParameterError(
                f"feed_s={self.feed_s} must be between 0 and 1 second, and below max_queued_s={self.max_queued_s}"
            )
        if not self.idle_timeout_s > 0:
            raise ParameterError(f"idle_timeout_s={self.idle_timeout_s} must be a positive number of seconds")
        if not 0.02 <= self.max_skew_s <= 10:
            raise ParameterError(f"max_skew_s={self.max_skew_s} must be between 0.02 and 10 seconds")
        tracks = [t for t, _ in self.twilio_roles]
        if sorted(tracks) != ["inbound", "outbound"]:
            raise ParameterError(f"twilio_roles={self.twilio_roles} must give a role to 'inbound' and 'outbound' once each")
        roles = [check_role(r, f"the {t} track's role") for t, r in self.twilio_roles]
        if len(set(roles)) != len(roles):
            raise ParameterError(f"twilio_roles={self.twilio_roles} give both tracks the same party")

    def with_changes(self, **changes) -> ServiceSettings:
        return replace(self, **changes)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
