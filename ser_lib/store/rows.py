"""A :class:`~ser_lib.calls.CallAnalysis` as the store's rows: one ``calls`` row and one table per detail.

:func:`analysis_rows` is pure (no database): the writer inserts what it returns in one transaction.
:func:`customer_role` names the party the ``customer_*`` columns describe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ..io import json_default
from .metadata import CallMetadata

#: Columns of the ``calls`` table, in the order :func:`call_row` fills them.
CALL_COLUMNS = (
    "analysis_id", "call_id", "source", "origin", "started_at", "duration_s", "channels", "roles", "agent", "queue",
    "customer_ref", "extra", "model_name", "model_sha256", "status", "error", "no_speech", "analysed_at",
    "customer_role", "customer_mean_sentiment", "customer_first_quarter", "customer_last_quarter", "customer_change",
    "customer_trend", "customer_dominant", "customer_end_negative", "n_alerts", "n_windows", "n_segments", "settings",
    "summary",
)  # fmt: skip
#: Columns of each detail table, in insertion order.
DETAIL_COLUMNS = {
    "windows": ("analysis_id", "channel", "role", "start_s", "end_s", "emotion", "confidence", "sentiment", "probabilities"),
    "segments": (
        "analysis_id", "channel", "role", "start_s", "end_s", "emotion", "confidence", "sentiment", "n_windows",
        "probabilities",
    ),  # fmt: skip
    "party_summaries": (
        "analysis_id", "role", "speech_s", "talk_share", "judged_s", "dominant", "mean_sentiment", "trend", "change",
        "slope_per_min", "shares",
    ),  # fmt: skip
    "quarter_summaries": ("analysis_id", "role", "quarter", "start_s", "end_s", "speech_s", "mean_sentiment", "dominant"),
    "worst_moments": (
        "analysis_id", "rank", "role", "start_s", "end_s", "emotion", "sentiment", "channel", "peak_s", "confidence",
    ),  # fmt: skip
    "alerts": ("analysis_id", "kind", "role", "start_s", "end_s", "detail"),
}
STATUSES = ("completed", "ended_abruptly", "failed")
ORIGINS = ("file", "live")


def analysis_id(call_id: str, model_sha256: str) -> str:
    """The key of one call's analysis by one model: ``f"{call_id}@{model_sha256[:12]}"``."""
    return f"{call_id}@{model_sha256[:12]}"


def _json(value) -> str:
    return json.dumps(value, default=json_default, separators=(",", ":"))


def _num(value) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if np.isfinite(v) else None


def customer_role(roles: Sequence[str]) -> str | None:
    """The party the ``customer_*`` columns describe: ``customer`` if a party is so named, else a mono call's one."""
    roles = list(roles)
    if "customer" in roles:
        return "customer"
    return roles[0] if len(roles) == 1 else None


def _customer_fields(summary: dict, role: str | None) -> dict:
    party = (summary.get("parties") or {}).get(role) if role else None
    if not party:
        return {k: None for k in ("mean", "first", "last", "change", "trend", "dominant", "end_negative")}
    with_speech = [q for q in party.get("quarters", []) if q.get("mean_sentiment") is not None]
    first = with_speech[0]["mean_sentiment"] if with_speech else None
    last = with_speech[-1]["mean_sentiment"] if with_speech else None
    return {
        "mean": _num(party.get("mean_sentiment")),
        "first": _num(first),
        "last": _num(last),
        "change": _num(last - first) if len(with_speech) >= 2 else None,
        "trend": (party.get("trend") or {}).get("direction"),
        "dominant": party.get("dominant"),
        "end_negative": None if last is None else bool(last < 0),
    }


def call_row(
    *,
    aid: str,
    call_id: str,
    source: str,
    origin: str,
    metadata: CallMetadata | None,
    model_name: str,
    model_sha256: str,
    status: str,
    error: str | None = None,
    result=None,
    n_alerts: int = 0,
) -> tuple:
    """The ``calls`` row (a tuple in :data:`CALL_COLUMNS` order) of an analysis, or of a failure (``result=None``)."""
    md = metadata or CallMetadata()
    base = {
        "analysis_id": aid,
        "call_id": call_id,
        "source": source,
        "origin": origin,
        "started_at": md.started_at,
        "agent": md.agent,
        "queue": md.queue,
        "customer_ref": md.customer_ref,
        "extra": _json(md.extra or {}),
        "model_name": model_name,
        "model_sha256": model_sha256,
        "status": status,
        "error": error,
        "analysed_at": datetime.now(UTC).replace(tzinfo=None),
        "n_alerts": int(n_alerts),
    }
    if result is not None:
        summary = result.summary
        role = customer_role(result.roles)
        cust = _customer_fields(summary, role)
        base.update(
            duration_s=_num(result.duration_s),
            channels=len(result.roles),
            roles=_json(list(result.roles)),
            no_speech=bool(result.no_speech),
            customer_role=role,
            customer_mean_sentiment=cust["mean"],
            customer_first_quarter=cust["first"],
            customer_last_quarter=cust["last"],
            customer_change=cust["change"],
            customer_trend=cust["trend"],
            customer_dominant=cust["dominant"],
            customer_end_negative=cust["end_negative"],
            n_windows=len(result.windows),
            n_segments=len(result.segments),
            settings=_json(result.settings),
            summary=_json(summary),
        )
    return tuple(base.get(c) for c in CALL_COLUMNS)


def _probabilities(frame: pd.DataFrame, labels: Sequence[str]) -> list[str]:
    cols = [f"p_{lab}" for lab in labels if f"p_{lab}" in frame.columns]
    names = [c[2:] for c in cols]
    values = np.round(frame[cols].to_numpy(float), 6).tolist() if cols else [[] for _ in range(len(frame))]
    return [_json(dict(zip(names, row, strict=True))) for row in values]


def _track_columns(frame: pd.DataFrame, labels: Sequence[str], *, segments: bool) -> list[list]:
    """Windows or segments as column lists (:data:`DETAIL_COLUMNS` without ``analysis_id``)."""
    cols = [
        frame["channel"].to_numpy(np.int64).tolist(),
        frame["role"].tolist(),
        frame["start_s"].to_numpy(float).tolist(),
        frame["end_s"].to_numpy(float).tolist(),
        frame["emotion"].tolist(),
        frame["confidence"].to_numpy(float).tolist(),
        frame["sentiment"].to_numpy(float).tolist(),
    ]
    if segments:
        cols.append(frame["windows"].to_numpy(np.int64).tolist())
    cols.append(_probabilities(frame, labels))
    return cols


def _columns(rows: list[tuple]) -> list[list]:
    return [list(c) for c in zip(*rows, strict=True)]


def detail_rows(result, aid: str, *, alerts: Sequence[dict] = ()) -> dict[str, list[list]]:
    """The detail tables of ``result`` (a :class:`~ser_lib.calls.CallAnalysis`): table name -> column lists.

    The columns are those of :data:`DETAIL_COLUMNS` after ``analysis_id`` (which is ``aid`` on
    every row), each a list with one value per row. Tables with no rows are left out.
    """
    out: dict[str, list[list]] = {}
    if len(result.windows):
        out["windows"] = _track_columns(result.windows, result.labels, segments=False)
    if len(result.segments):
        out["segments"] = _track_columns(result.segments, result.labels, segments=True)
    parties, quarters = [], []
    for role, p in (result.summary.get("parties") or {}).items():
        trend = p.get("trend") or {}
        parties.append(
            (role, _num(p.get("speech_s")), _num(p.get("talk_share")), _num(p.get("judged_s")), p.get("dominant"),
             _num(p.get("mean_sentiment")), trend.get("direction"), _num(trend.get("change")),
             _num(trend.get("slope_per_min")), _json(p.get("shares") or {}))
        )  # fmt: skip
        for q in p.get("quarters", []):
            quarters.append(
                (role, int(q["quarter"]), _num(q.get("start_s")), _num(q.get("end_s")), _num(q.get("judged_s")),
                 _num(q.get("mean_sentiment")), q.get("dominant"))
            )  # fmt: skip
    worst = [
        (rank, m.get("role"), _num(m.get("start_s")), _num(m.get("end_s")), m.get("emotion"), _num(m.get("sentiment")),
         m.get("channel"), _num(m.get("peak_s")), _num(m.get("confidence")))
        for rank, m in enumerate(result.summary.get("worst_moments") or [], start=1)
    ]  # fmt: skip
    alert_rows = [alert_row(aid, a)[1:] for a in alerts]
    for name, rows in (("party_summaries", parties), ("quarter_summaries", quarters), ("worst_moments", worst),
                       ("alerts", alert_rows)):  # fmt: skip
        if rows:
            out[name] = _columns(rows)
    return out


def alert_row(aid: str, alert: dict) -> tuple:
    """One ``alerts`` row: ``kind``, ``role``, ``start_s``, ``end_s`` and everything else of the alert in ``detail``."""
    a = dict(alert)
    kind, role = a.pop("kind", None), a.pop("role", None)
    start, end = _num(a.pop("start_s", None)), _num(a.pop("end_s", None))
    for k in ("schema", "type", "call_id"):  # the live event's envelope: the call's row says it already
        a.pop(k, None)
    return (aid, kind, role, start, end, _json(a))
