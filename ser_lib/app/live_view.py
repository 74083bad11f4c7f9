"""The Live calls wallboard's logic: read the live call service over HTTP, turn its JSON into tables.

No Streamlit here (the page, ``pages/7_Live_calls.py``, only draws): :func:`calls_overview` and
:func:`call_detail` fetch ``/calls`` and ``/calls/{id}?timeline=1`` with the standard library,
turning every way the service can be unreachable into a :class:`ServiceUnavailable` that says how
to start it; :func:`calls_table` makes the wallboard's table (each party's current emotion and
sentiment, a sentiment sparkline, alerts), :func:`highlight_alerts` colours the calls with alerts,
and :func:`timeline_data` rebuilds the tables :func:`ser_lib.app.plots_timeline.timeline_figure`
draws (the Call timeline page's figure).

The service's address is ``$SER_SERVICE_URL`` (default ``http://127.0.0.1:8765``), its token
``$SER_SERVICE_TOKEN``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import pandas as pd

from ..calls import format_clock
from ..errors import SERError

URL_ENV, TOKEN_ENV = "SER_SERVICE_URL", "SER_SERVICE_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8765"
#: Parties shown first, in this order; any others follow.
ROLE_ORDER = ("customer", "agent")
ALERT_COLOUR = "background-color: rgba(228, 87, 86, 0.22)"
KIND_NAMES = {"sustained_negative": "negative sentiment", "emotion_spike": "emotion spike"}


class ServiceUnavailable(SERError):
    """The live call service cannot be reached, refuses the token, or answers with an error."""


def service_url(url: str | None = None) -> str:
    """``url``, else ``$SER_SERVICE_URL``, else ``http://127.0.0.1:8765`` (without a trailing slash)."""
    return (url or os.environ.get(URL_ENV) or DEFAULT_URL).strip().rstrip("/")


def service_token(token: str | None = None) -> str | None:
    return token or os.environ.get(TOKEN_ENV) or None


def how_to_start(url: str) -> str:
    """What to run to get a service (and calls) at ``url``, as Markdown."""
    port = urllib.parse.urlsplit(url).port or 8765
    return (
        "Start the service in a terminal, then simulate a call or point a Twilio `<Stream>` at it:\n\n"
        f"```bash\npython -m ser_lib serve --port {port}\n"
        f"python -m ser_lib simulate-calls --url ws://127.0.0.1:{port}/twilio --calls 3 call.wav\n```\n\n"
        f"This page reads `{url}` (`$SER_SERVICE_URL`); set `$SER_SERVICE_TOKEN` if the service has a token."
    )


def fetch(url: str, path: str, *, token: str | None = None, timeout: float = 3.0) -> dict:
    """GET ``url + path`` as JSON.

    Raises
    ------
    ServiceUnavailable
        Nothing listening, a timeout, a refused token (401), any other HTTP error, or not JSON.
    """
    base = service_url(url)
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        raise ServiceUnavailable(f"The service URL {base!r} must start with http:// or https://, e.g. {DEFAULT_URL}")
    req = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    token = service_token(token)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ServiceUnavailable(
                f"The live call service at {base} needs its token: set ${TOKEN_ENV} (or the token field in the sidebar) "
                "to the value it was started with."
            ) from None
        try:
            detail = json.loads(exc.read()).get("error", "")
        except (json.JSONDecodeError, AttributeError, OSError):
            detail = ""
        raise ServiceUnavailable(
            f"The live call service at {base} answered {exc.code} for {path}: {detail or exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailable(f"No live call service answers at {base} ({reason}).") from None
    except json.JSONDecodeError:
        raise ServiceUnavailable(f"{base}{path} did not answer with JSON: is {base} the live call service?") from None


def calls_overview(url: str | None = None, *, token: str | None = None) -> dict:
    """``/calls``: ``{"active": n, "calls": [...]}``, active calls first."""
    return fetch(service_url(url), "/calls", token=token)


def call_detail(call_id: str, url: str | None = None, *, token: str | None = None) -> dict:
    """``/calls/{id}?timeline=1``: the call so far, with its windows and speech regions."""
    return fetch(service_url(url), f"/calls/{urllib.parse.quote(call_id, safe='')}?timeline=1", token=token, timeout=10.0)


def health(url: str | None = None, *, token: str | None = None) -> dict:
    return fetch(service_url(url), "/healthz", token=token)


# --- tables -----------------------------------------------------------------------------------------


def parties_of(overview: dict) -> list[str]:
    """Every party in the listed calls: customer, agent, then the others in order of appearance."""
    seen: list[str] = []
    for c in overview.get("calls", []):
        for role in c.get("parties", {}):
            if role not in seen:
                seen.append(role)
    return [r for r in ROLE_ORDER if r in seen] + [r for r in seen if r not in ROLE_ORDER]


def calls_table(overview: dict) -> pd.DataFrame:
    """One row per call: ``call``, ``status``, ``duration``, then per party its current ``emotion``,
    ``sentiment`` and sentiment ``trend`` (the sparkline's values), then ``alerts`` (how many),
    ``last alert`` and ``lag (s)``. Active calls first (the service's order)."""
    roles = parties_of(overview)
    rows = []
    for c in overview.get("calls", []):
        row = {"call": c["call_id"], "status": c["status"], "duration": format_clock(c.get("duration_s") or 0.0)}
        for role in roles:
            p = c.get("parties", {}).get(role) or {}
            row[f"{role}"] = p.get("emotion") or "—"
            row[f"{role} sentiment"] = p.get("sentiment")
            row[f"{role} trend"] = list(p.get("sparkline") or [])
        alerts = c.get("alerts") or []
        row["alerts"] = int(c.get("alert_count", len(alerts)))
        row["last alert"] = alerts[-1]["message"] if alerts else ""
        row["lag (s)"] = c.get("lag_s", 0.0)
        rows.append(row)
    columns = ["call", "status", "duration"]
    for role in roles:
        columns += [role, f"{role} sentiment", f"{role} trend"]
    columns += ["alerts", "last alert", "lag (s)"]
    return pd.DataFrame(rows, columns=columns)


def highlight_alerts(table: pd.DataFrame):
    """``table`` as a pandas Styler whose rows with alerts are tinted red."""
    return table.style.apply(lambda row: [ALERT_COLOUR if row["alerts"] else ""] * len(row), axis=1)


def call_label(row: dict | pd.Series) -> str:
    """A call as the picker shows it: id, status, duration, alerts."""
    alerts = int(row["alerts"])
    return f"{row['call']} · {row['status']} · {row['duration']}" + (f" · ⚠ {alerts} alert(s)" if alerts else "")


def _frame(table: dict | None) -> pd.DataFrame:
    if not table:
        return pd.DataFrame()
    return pd.DataFrame(table["rows"], columns=table["columns"])


@dataclass
class TimelineData:
    """What :func:`ser_lib.app.plots_timeline.timeline_figure` needs, rebuilt from a call's JSON."""

    segments: pd.DataFrame
    windows: pd.DataFrame
    speech: pd.DataFrame
    roles: list[str]
    duration_s: float
    worst: list[dict] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def timeline_data(detail: dict) -> TimelineData:
    """The segments, windows and speech regions of a ``/calls/{id}?timeline=1`` answer as frames."""
    labels = list(detail.get("labels") or [])
    seg_rows = []
    for s in detail.get("segments", []):
        row = {k: s[k] for k in ("channel", "role", "start_s", "end_s", "emotion", "confidence", "sentiment", "windows")}
        row.update({f"p_{lab}": v for lab, v in (s.get("probabilities") or {}).items()})
        seg_rows.append(row)
    segments = pd.DataFrame(seg_rows)
    timeline = detail.get("timeline") or {}
    windows = _frame(timeline.get("windows"))
    speech = _frame(timeline.get("speech"))
    if "judged" in speech:
        speech["judged"] = speech["judged"].astype(bool)
    return TimelineData(
        segments,
        windows,
        speech,
        list(detail.get("roles") or []),
        float(detail.get("duration_s") or 0.0),
        list((detail.get("summary") or {}).get("worst_moments") or []),
        labels,
    )


def alerts_table(detail: dict) -> pd.DataFrame:
    """The call's alerts: ``time`` (start-end), ``party``, ``kind``, ``value``, ``message``."""
    rows = [
        {
            "time": f"{format_clock(a['start_s'])}-{format_clock(a['end_s'])}",
            "party": a["role"],
            "kind": KIND_NAMES.get(a["kind"], a["kind"]),
            "value": a["value"],
            "message": a["message"],
        }
        for a in detail.get("alerts", [])
    ]
    return pd.DataFrame(rows, columns=["time", "party", "kind", "value", "message"])


def party_summary(detail: dict) -> list[dict]:
    """Per party of the call: dominant emotion so far, mean sentiment, trend direction, speaking time."""
    out = []
    for role, p in ((detail.get("summary") or {}).get("parties") or {}).items():
        trend = p.get("trend") or {}
        out.append(
            {
                "role": role,
                "dominant": p.get("dominant") or "—",
                "mean_sentiment": "—" if p.get("mean_sentiment") is None else f"{p['mean_sentiment']:+.2f}",
                "trend": trend.get("direction", "n/a"),
                "speech": format_clock(p.get("speech_s") or 0.0),
            }
        )
    return out
