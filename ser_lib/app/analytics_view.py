"""The Call analytics page's logic: which store it reads, the figures for a filter, one call's timeline.

No Streamlit here (the page, ``pages/8_Call_analytics.py``, draws and caches): the queries are
:mod:`ser_lib.store.analytics`, run on one read-only connection per batch.

- :func:`store_path`: the store the page reads (``$SER_CALL_STORE``, else ``data/calls.duckdb``), or
  another the visitor typed, if it lies under the folders the operator allows (``SER_DATA_ROOTS``).
- :func:`store_stamp`: the store's modification time and size (with its write-ahead log), the cache
  key that makes calls written by a running batch appear.
- :func:`load_options`, :func:`load_dashboard`, :func:`load_call`: the filters' choices, the
  figures, one call with its windows and segments.
- :func:`headline_cards`, :func:`agents_display`, :func:`worst_display`, :func:`moments_display`:
  the tables as shown (and exported as CSV).
- :func:`timeline_data`: a stored call as the tables the Call timeline page's figure draws.
- :func:`moment_audio`: a worst moment's audio, when its recording is reachable under the allowed folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..calls import format_clock
from ..errors import ParameterError, SERError
from ..store import analytics as an
from ..store import default_store_path
from .access import check_readable, is_readable_path

#: Seconds of audio played before and after a worst moment.
MOMENT_PAD_S = 2.0
WORST_LIMIT = 25


def store_path(text: str | os.PathLike | None = None) -> Path:
    """The store to read: ``text`` if given, else :func:`ser_lib.store.default_store_path`.

    Raises
    ------
    ParameterError
        ``text`` names a file outside the folders the operator allows (the default store is always
        allowed: the operator chose it).
    """
    default = default_store_path()
    if text is None or not str(text).strip():
        return default
    p = Path(str(text).strip()).expanduser()
    if _same(p, default):
        return default
    if p.suffix.lower() not in (".duckdb", ".db"):
        raise ParameterError(f"The call store {p} should be a DuckDB file (.duckdb), e.g. data/calls.duckdb.")
    check_readable(
        p,
        advice="Choose a store inside them; whoever runs the dashboard can set SER_CALL_STORE, or allow other folders "
        "with SER_DATA_ROOTS.",
    )
    return p


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def store_stamp(path: str | os.PathLike) -> tuple | None:
    """``(mtime_ns, size)`` of the store and of its write-ahead log (``.wal``); ``None`` when there is no store."""
    p = Path(path)
    try:
        s = p.stat()
    except OSError:
        return None
    wal = p.with_name(p.name + ".wal")
    w = wal.stat() if wal.is_file() else None
    return (s.st_mtime_ns, s.st_size, w.st_mtime_ns if w else 0, w.st_size if w else 0)


def no_store_message(path: str | os.PathLike) -> str:
    """What to do when there is no store yet (Markdown)."""
    return (
        f"No call store at **{path}** yet. Analyse a folder of call recordings into it:\n\n"
        "```bash\npython -m ser_lib analyze-calls FOLDER\n```\n\n"
        "writes every call's analysis to `data/calls.duckdb` (or `$SER_CALL_STORE`, or `--store PATH`); a "
        "`calls.csv` beside the recordings (file, agent, queue, started_at) adds who took each call and when. "
        "Calls appear here as the batch writes them."
    )


# --- loading --------------------------------------------------------------------------------------------


def load_options(path: str | os.PathLike) -> dict:
    """:func:`ser_lib.store.analytics.filter_options`, with ``models`` as ``{sha: label}`` (most recent first)."""
    with an.open_reader(path) as con:
        options = an.filter_options(con)
    models = options["models"]
    options["models"] = {
        r.model: f"{r.model_name} ({r.model[:12]}, {r.calls:,} calls, last {pd.Timestamp(r.last_analysed):%Y-%m-%d})"
        for r in models.itertuples()
    }
    return options


def filters_from(period, queues, agents, model: str | None = None) -> an.Filters:
    """A :class:`~ser_lib.store.analytics.Filters` from the widgets: ``period`` is a date, a pair of
    dates, or a one-date tuple (a range being picked: from that day on)."""
    if isinstance(period, date):
        period = (period, period)
    period = tuple(period or ())
    start = period[0] if len(period) > 0 else None
    end = period[1] if len(period) > 1 else None
    return an.Filters(start=start, end=end, queues=tuple(queues or ()), agents=tuple(agents or ()), model=model)


def load_dashboard(path: str | os.PathLike, filters: an.Filters, *, worst_by: str = "sentiment", limit: int = WORST_LIMIT):
    """:func:`ser_lib.store.analytics.dashboard` on one read-only connection."""
    with an.open_reader(path) as con:
        return an.dashboard(con, filters, worst_by=worst_by, limit=limit)


@dataclass
class StoredCall:
    """One stored analysis, ready to draw: its ``call`` row, the timeline tables and its worst moments."""

    call: dict
    segments: pd.DataFrame
    windows: pd.DataFrame
    worst: pd.DataFrame
    alerts: pd.DataFrame
    roles: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def has_timeline(self) -> bool:
        return not self.segments.empty


def load_call(path: str | os.PathLike, analysis_id: str) -> StoredCall:
    """The stored analysis ``analysis_id``.

    Raises
    ------
    SERError
        There is no such analysis in the store (it was replaced since the list was drawn).
    """
    with an.open_reader(path) as con:
        t = an.call_timeline(con, analysis_id)
    if t["call"] is None:
        raise SERError(f"The call store {path} has no analysis {analysis_id!r} (any more): choose another call.")
    call = t["call"]
    roles = _roles(call.get("roles"))
    if not roles:
        roles = sorted(set(t["segments"].get("role", [])))
    return StoredCall(
        call=call,
        segments=t["segments"],
        windows=with_regions(t["windows"]),
        worst=t["worst"],
        alerts=t["alerts"],
        roles=roles,
        duration_s=float(call.get("duration_s") or 0.0),
    )


def _roles(value) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    return [str(v) for v in value]


def with_regions(windows: pd.DataFrame) -> pd.DataFrame:
    """``windows`` with a ``region`` column: per party, a new stretch of speech wherever a window
    starts after the previous one ended (windows of one stretch overlap). The store keeps no
    region; the timeline's sentiment line breaks between regions."""
    if windows.empty:
        return windows.assign(region=pd.Series(dtype=int))
    w = windows.sort_values(["role", "start_s"]).copy()
    prev_end = w.groupby("role")["end_s"].shift()
    w["region"] = (prev_end.isna() | (w["start_s"] > prev_end + 0.05)).astype(int).groupby(w["role"]).cumsum()
    return w.sort_values(["channel", "start_s"]).reset_index(drop=True)


def timeline_worst(call: StoredCall) -> list[dict]:
    """The worst moments as :func:`ser_lib.app.plots_timeline.timeline_figure` marks them."""
    return [
        {"peak_s": float(r.peak_s), "sentiment": float(r.sentiment), "role": r.role, "emotion": r.emotion}
        for r in call.worst.itertuples()
    ]


# --- what the page shows ------------------------------------------------------------------------------


def _pct(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{100 * x:.1f}%"


def _signed(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:+.2f}"


def headline_cards(h: dict) -> list[dict]:
    """The four headline figures: ``label``, ``value`` (as shown) and ``help``."""
    return [
        {
            "label": "Calls analysed",
            "value": f"{h['calls']:,}",
            "help": f"{h['failed']:,} failed analyses not counted; {h['no_speech']:,} calls without speech counted.",
        },
        {
            "label": "Customer ends negative",
            "value": _pct(h["negative_end_share"]),
            "help": f"Of the {h['judged']:,} calls whose customer's last quarter with speech could be judged: "
            "its mean sentiment is below 0.",
        },
        {
            "label": "Mean customer sentiment",
            "value": _signed(h["mean_sentiment"]),
            "help": "The customer's mean sentiment over the call (-1 to +1), averaged over calls.",
        },
        {
            "label": "Calls worsening",
            "value": _pct(h["worsening_share"]),
            "help": "Share of calls whose customer's last quarter with speech is more than 0.15 below the first.",
        },
    ]


def agents_display(agents: pd.DataFrame) -> pd.DataFrame:
    """The per-agent table as shown (and exported)."""
    return agents.rename(
        columns={
            "mean_sentiment": "mean customer sentiment",
            "mean_change": "mean change (first→last quarter)",
            "negative_end_share": "ends negative",
            "worsening_share": "worsening",
            "calls_with_alerts": "calls with alerts",
        }
    )


def worst_display(worst: pd.DataFrame) -> pd.DataFrame:
    """The worst calls as shown (and exported): when, who, the customer's figures, the worst moment."""
    if worst.empty:
        return pd.DataFrame(columns=["call", "started", "agent", "queue", "duration", "mean sentiment", "change", "alerts"])
    moment = [
        ""
        if pd.isna(r.worst_sentiment)
        else f"{format_clock(r.worst_peak_s)} {r.worst_role} {r.worst_emotion} ({r.worst_sentiment:+.2f})"
        for r in worst.itertuples()
    ]
    return pd.DataFrame(
        {
            "call": worst["call_id"],
            "started": pd.to_datetime(worst["started_at"]).dt.strftime("%Y-%m-%d %H:%M"),
            "agent": worst["agent"],
            "queue": worst["queue"],
            "duration": worst["duration_s"].map(lambda s: format_clock(s) if pd.notna(s) else "—"),
            "mean sentiment": worst["mean_sentiment"],
            "change": worst["change"],
            "alerts": worst["alerts"],
            "worst moments": worst["worst_moments"],
            "worst moment": moment,
            "analysis_id": worst["analysis_id"],
        }
    )


def moments_display(worst: pd.DataFrame) -> pd.DataFrame:
    """One call's worst moments as shown: ``#``, ``time``, ``party``, ``emotion``, ``sentiment``."""
    return pd.DataFrame(
        {
            "#": worst["rank"],
            "time": [f"{format_clock(a)}-{format_clock(b)}" for a, b in zip(worst["start_s"], worst["end_s"], strict=True)],
            "party": worst["role"],
            "emotion": worst["emotion"],
            "sentiment": worst["sentiment"],
        }
    )


def csv_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as UTF-8 CSV (for a download button)."""
    return table.to_csv(index=False).encode("utf-8")


# --- audio ---------------------------------------------------------------------------------------------


def audio_reachable(source) -> str | None:
    """``None`` when the recording ``source`` can be played here, else why not (one sentence)."""
    if source is None or (isinstance(source, float) and np.isnan(source)) or not str(source).strip():
        return "The store does not say where this call's recording is."
    p = Path(str(source))
    if not is_readable_path(p):
        return f"The recording {p} is outside the folders this dashboard may play (SER_DATA_ROOTS)."
    if not p.is_file():
        return f"The recording {p} is not reachable from this server (moved, or on another machine)."
    return None


def moment_audio(source: str, *, start_s: float, end_s: float, pad_s: float = MOMENT_PAD_S) -> bytes:
    """The stretch ``start_s - pad_s`` to ``end_s + pad_s`` of ``source`` as WAV bytes (both channels kept).

    Raises
    ------
    SERError
        The recording is not reachable (:func:`audio_reachable`) or cannot be decoded.
    """
    why = audio_reachable(source)
    if why:
        raise SERError(why)
    from ..audio import load_audio, to_wav_bytes
    from ..config import SAMPLE_RATE

    offset = max(0.0, float(start_s) - pad_s)
    y = load_audio(source, sr=SAMPLE_RATE, mono=False, offset=offset, duration=float(end_s) + pad_s - offset, validate=False)
    return to_wav_bytes(y, sr=SAMPLE_RATE)
