"""The call-analytics queries: what a contact-centre manager asks of the call store, answered in SQL.

Every function takes an open DuckDB connection (read-only is enough: :func:`open_reader`) and a
:class:`Filters`, and returns a small data frame or dict; the aggregation runs inside DuckDB, so a
store of any size is never loaded into pandas.

- :func:`filter_options`: the models, queues, agents and date range a filter can choose from.
- :func:`headline`: calls analysed (and failed), share of calls whose customer ends negative, mean
  customer sentiment, share of calls worsening from the first to the last quarter with speech.
- :func:`calls_per_day`: calls per day and the share of them ending negative.
- :func:`sentiment_per_quarter`: the customer's mean sentiment in each quarter of the call.
- :func:`agents_table`: per agent, calls, mean customer sentiment, mean change first -> last
  quarter, share ending negative, alerts.
- :func:`worst_calls`: the calls with the most negative customers (or the most alerts), each with
  its worst moment; :func:`worst_moments` and :func:`call_timeline` for one of them.
- :func:`dashboard`: all of the above for one filter, on one connection.

Definitions (those of the store's ``calls`` columns): a call's date is ``started_at``, or when it was
analysed if its metadata had no start time; "the customer" is the ``customer`` party, or the single
party of a mono call; a call *ends negative* when the customer's last quarter with speech has a
mean sentiment below 0; it *worsens* when its trend is ``worsening`` (the last quarter with speech
is more than :data:`~ser_lib.calls.settings.TREND_STEP` below the first). Failed analyses are
counted apart and left out of every figure; calls without speech count as analysed but have no
sentiment. One model at a time: a call analysed by two models is counted once, with the model the
filter names (default: the model of the most recent analysis).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pandas as pd

from ..errors import ParameterError

logger = logging.getLogger(__name__)

#: How a missing agent or queue is shown (and chosen in a filter).
NOT_SET = "(not set)"
#: The call's date: its start, or when it was analysed when the metadata had no start time.
CALL_TIME = "COALESCE(started_at, analysed_at)"
WORST_BY = ("sentiment", "alerts")


@dataclass(frozen=True)
class Filters:
    """Which calls the figures cover.

    ``start``/``end`` are inclusive dates (``None``: open); ``queues``/``agents`` empty means all
    (:data:`NOT_SET` picks the calls without one); ``model`` is a model's SHA-256 (``None``: the
    model of the most recent analysis, see :func:`resolve_model`).
    """

    start: date | None = None
    end: date | None = None
    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    model: str | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ParameterError(f"The period starts on {self.start} after it ends on {self.end}: choose a start before the end.")


@dataclass
class Dashboard:
    """Everything the Call analytics page shows for one :class:`Filters`."""

    filters: Filters
    headline: dict
    per_day: pd.DataFrame
    quarters: pd.DataFrame
    agents: pd.DataFrame
    worst: pd.DataFrame
    timings_ms: dict = field(default_factory=dict)


# --- connections ------------------------------------------------------------------------------------


@contextmanager
def open_reader(path: str | os.PathLike, *, wait_s: float = 3.0) -> Iterator:
    """A read-only DuckDB connection to the store at ``path`` for one batch of queries, closed on exit
    (:meth:`ser_lib.store.CallStore.reader`: under the store's shared lock, waiting up to ``wait_s``
    seconds while a writer finishes its call).

    Raises
    ------
    StoreNotFoundError
        No store at ``path`` (a reader never creates one), with how to make one.
    StoreBusyError
        The file stayed locked for ``wait_s`` seconds.
    StoreError
        The store was written by a newer ser_lib, or is not a DuckDB file.
    """
    from .store import CallStore

    with CallStore(Path(path).expanduser(), read_only=True, timeout=wait_s).reader() as con:
        yield con


def _df(con, sql: str, params: list | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


# --- filters ------------------------------------------------------------------------------------------


def resolve_model(con, filters: Filters) -> Filters:
    """``filters`` with its model set: as given if the store has it, else the most recent analysis's model."""
    if filters.model:
        row = con.execute("SELECT 1 FROM calls WHERE model_sha256 = ? LIMIT 1", [filters.model]).fetchone()
        if row:
            return filters
        logger.info("model %s has no analyses in the store; using the most recent model", filters.model[:12])
    row = con.execute("SELECT model_sha256 FROM calls ORDER BY analysed_at DESC, analysis_id LIMIT 1").fetchone()
    return replace(filters, model=row[0] if row else None)


def _where(filters: Filters, *, alias: str = "", with_failed: bool = False) -> tuple[str, list]:
    """The WHERE clause (and its bound parameters) selecting the calls ``filters`` covers."""
    a = f"{alias}." if alias else ""
    clauses, params = [f"{a}model_sha256 = ?"], [filters.model]
    if not with_failed:
        clauses.append(f"{a}status <> 'failed'")
    when = CALL_TIME.replace("started_at", f"{a}started_at").replace("analysed_at", f"{a}analysed_at")
    if filters.start:
        clauses.append(f"{when} >= ?")
        params.append(pd.Timestamp(filters.start).to_pydatetime())
    if filters.end:
        clauses.append(f"{when} < ?")
        params.append((pd.Timestamp(filters.end) + pd.Timedelta(days=1)).to_pydatetime())
    for column, chosen in (("queue", filters.queues), ("agent", filters.agents)):
        if chosen:
            clauses.append(f"list_contains(?::VARCHAR[], COALESCE({a}{column}, '{NOT_SET}'))")
            params.append(list(chosen))
    return " AND ".join(clauses), params


def filter_options(con) -> dict:
    """What the filters can choose: ``models`` (a frame: ``model``, ``model_name``, ``calls``,
    ``last_analysed``, most recent first), ``queues``, ``agents`` (sorted, :data:`NOT_SET` last if
    any call lacks one), ``first_day`` and ``last_day`` (``None`` for an empty store)."""
    models = _df(
        con,
        """SELECT model_sha256 AS model, any_value(model_name) AS model_name, count(*) AS calls,
                  max(analysed_at) AS last_analysed
           FROM calls GROUP BY model_sha256 ORDER BY last_analysed DESC, model""",
    )
    out: dict = {"models": models}
    for column in ("queue", "agent"):
        values = [r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM calls ORDER BY {column} NULLS LAST").fetchall()]
        out[column + "s"] = [v for v in values if v is not None] + ([NOT_SET] if None in values else [])
    first, last = con.execute(f"SELECT CAST(min({CALL_TIME}) AS DATE), CAST(max({CALL_TIME}) AS DATE) FROM calls").fetchone()
    out["first_day"], out["last_day"] = first, last
    return out


# --- the figures -------------------------------------------------------------------------------------------


def headline(con, filters: Filters) -> dict:
    """``calls`` (analysed, failed ones apart), ``failed``, ``no_speech``, ``negative_end_share``
    (of the calls whose customer's ending could be judged), ``mean_sentiment`` (the customer's,
    averaged over calls), ``worsening_share`` (of the calls with a trend), ``alerts`` (their sum),
    and ``judged`` (calls with a customer ending). Shares and means are ``None`` without calls."""
    where, params = _where(filters, with_failed=True)
    row = _df(
        con,
        f"""SELECT count(*) FILTER (WHERE status <> 'failed') AS calls,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status <> 'failed' AND no_speech) AS no_speech,
                   count(customer_end_negative) FILTER (WHERE status <> 'failed') AS judged,
                   avg(CAST(customer_end_negative AS DOUBLE)) FILTER (WHERE status <> 'failed') AS negative_end_share,
                   avg(customer_mean_sentiment) FILTER (WHERE status <> 'failed') AS mean_sentiment,
                   avg(CAST(customer_trend = 'worsening' AS DOUBLE))
                       FILTER (WHERE status <> 'failed' AND customer_change IS NOT NULL) AS worsening_share,
                   CAST(COALESCE(sum(n_alerts) FILTER (WHERE status <> 'failed'), 0) AS BIGINT) AS alerts
            FROM calls WHERE {where}""",
        params,
    ).iloc[0]
    return {
        k: (None if pd.isna(v) else (int(v) if k in ("calls", "failed", "no_speech", "judged", "alerts") else float(v)))
        for k, v in row.items()
    }


def calls_per_day(con, filters: Filters) -> pd.DataFrame:
    """Per day with calls: ``day``, ``calls``, ``negative_endings``, ``negative_share`` (of the
    calls whose ending was judged), ``mean_sentiment``; in date order."""
    where, params = _where(filters)
    return _df(
        con,
        f"""SELECT CAST({CALL_TIME} AS DATE) AS day, count(*) AS calls,
                   count(*) FILTER (WHERE customer_end_negative) AS negative_endings,
                   avg(CAST(customer_end_negative AS DOUBLE)) AS negative_share,
                   avg(customer_mean_sentiment) AS mean_sentiment
            FROM calls WHERE {where} GROUP BY day ORDER BY day""",
        params,
    )


def sentiment_per_quarter(con, filters: Filters) -> pd.DataFrame:
    """Per quarter of the call (1-4): ``calls`` with customer speech in it, the customer's
    ``mean_sentiment`` (mean over calls), ``p25``/``p75`` across calls, ``negative_share``."""
    where, params = _where(filters, alias="c")
    return _df(
        con,
        f"""SELECT q.quarter, count(q.mean_sentiment) AS calls, avg(q.mean_sentiment) AS mean_sentiment,
                   quantile_cont(q.mean_sentiment, 0.25) AS p25, quantile_cont(q.mean_sentiment, 0.75) AS p75,
                   avg(CAST(q.mean_sentiment < 0 AS DOUBLE)) AS negative_share
            FROM quarter_summaries q JOIN calls c ON q.analysis_id = c.analysis_id AND q.role = c.customer_role
            WHERE {where} GROUP BY q.quarter ORDER BY q.quarter""",
        params,
    )


def agents_table(con, filters: Filters) -> pd.DataFrame:
    """Per agent (:data:`NOT_SET` for calls without one): ``calls``, ``mean_sentiment`` (the
    customer's), ``mean_change`` (first -> last quarter), ``negative_end_share``, ``worsening_share``,
    ``alerts`` and ``calls_with_alerts``; most calls first."""
    where, params = _where(filters)
    return _df(
        con,
        f"""SELECT COALESCE(agent, '{NOT_SET}') AS agent, count(*) AS calls,
                   avg(customer_mean_sentiment) AS mean_sentiment, avg(customer_change) AS mean_change,
                   avg(CAST(customer_end_negative AS DOUBLE)) AS negative_end_share,
                   avg(CAST(customer_trend = 'worsening' AS DOUBLE)) FILTER (WHERE customer_change IS NOT NULL)
                       AS worsening_share,
                   CAST(COALESCE(sum(n_alerts), 0) AS BIGINT) AS alerts, count(*) FILTER (WHERE n_alerts > 0) AS calls_with_alerts
            FROM calls WHERE {where} GROUP BY 1 ORDER BY calls DESC, agent""",
        params,
    )


def worst_calls(con, filters: Filters, *, by: str = "sentiment", limit: int = 25) -> pd.DataFrame:
    """The ``limit`` worst calls: by the customer's mean sentiment (lowest first; ``by="sentiment"``)
    or by alerts (most first, then lowest sentiment; ``by="alerts"``).

    Columns: ``analysis_id``, ``call_id``, ``started_at``, ``agent``, ``queue``, ``duration_s``,
    ``mean_sentiment``, ``change``, ``trend``, ``ends_negative``, ``alerts``, ``worst_moments``
    (how many), and the worst moment's ``worst_peak_s``, ``worst_role``, ``worst_emotion``,
    ``worst_sentiment``; ``source``.
    """
    if by not in WORST_BY:
        raise ParameterError(f"worst_calls(by={by!r}): expected one of {WORST_BY}.")
    if limit < 1:
        raise ParameterError(f"worst_calls(limit={limit}): expected at least 1 call.")
    where, params = _where(filters)
    order = (
        "customer_mean_sentiment ASC, n_alerts DESC, analysis_id"
        if by == "sentiment"
        else "n_alerts DESC, customer_mean_sentiment ASC, analysis_id"
    )
    return _df(
        con,
        f"""WITH top AS (
                SELECT analysis_id, call_id, {CALL_TIME} AS started_at, COALESCE(agent, '{NOT_SET}') AS agent,
                       COALESCE(queue, '{NOT_SET}') AS queue, duration_s, customer_mean_sentiment AS mean_sentiment,
                       customer_change AS change, customer_trend AS trend, customer_end_negative AS ends_negative,
                       n_alerts AS alerts, source
                FROM calls WHERE {where} AND customer_mean_sentiment IS NOT NULL
                ORDER BY {order} LIMIT ?)
            SELECT top.*, COALESCE(m.n, 0) AS worst_moments,
                   COALESCE(w.peak_s, (w.start_s + w.end_s) / 2) AS worst_peak_s, w.role AS worst_role,
                   w.emotion AS worst_emotion, w.sentiment AS worst_sentiment
            FROM top
            LEFT JOIN (SELECT analysis_id, count(*) AS n FROM worst_moments
                       WHERE analysis_id IN (SELECT analysis_id FROM top) GROUP BY analysis_id) m USING (analysis_id)
            LEFT JOIN worst_moments w ON w.analysis_id = top.analysis_id AND w.rank = 1
            ORDER BY {order.replace("customer_mean_sentiment", "mean_sentiment").replace("n_alerts", "alerts")}""",
        [*params, int(limit)],
    )


def worst_moments(con, analysis_id: str) -> pd.DataFrame:
    """One analysis's worst moments, most negative first: ``rank``, ``role``, ``channel``,
    ``start_s``, ``end_s``, ``peak_s`` (where to listen), ``emotion``, ``confidence``, ``sentiment``."""
    return _df(
        con,
        """SELECT rank, role, channel, start_s, end_s, COALESCE(peak_s, (start_s + end_s) / 2) AS peak_s,
                  emotion, confidence, sentiment
           FROM worst_moments WHERE analysis_id = ? ORDER BY rank""",
        [analysis_id],
    )


def call_timeline(con, analysis_id: str) -> dict:
    """What the timeline of one stored analysis needs: ``call`` (its ``calls`` row as a dict, or
    ``None`` if there is no such analysis), ``windows``, ``segments``, ``worst`` (:func:`worst_moments`),
    ``alerts``. Windows and segments are empty when the store kept only the summaries."""
    call = _df(con, "SELECT * EXCLUDE (summary) FROM calls WHERE analysis_id = ?", [analysis_id])
    cols = "channel, role, start_s, end_s, emotion, confidence, sentiment"
    return {
        "call": None if call.empty else call.iloc[0].to_dict(),
        "windows": _df(con, f"SELECT {cols} FROM windows WHERE analysis_id = ? ORDER BY channel, start_s", [analysis_id]),
        "segments": _df(
            con, f"SELECT {cols}, n_windows FROM segments WHERE analysis_id = ? ORDER BY channel, start_s", [analysis_id]
        ),
        "worst": worst_moments(con, analysis_id),
        "alerts": _df(
            con, "SELECT kind, role, start_s, end_s, detail FROM alerts WHERE analysis_id = ? ORDER BY start_s", [analysis_id]
        ),
    }


QUERIES = {
    "headline": headline,
    "calls_per_day": calls_per_day,
    "sentiment_per_quarter": sentiment_per_quarter,
    "agents_table": agents_table,
    "worst_calls": worst_calls,
}


def dashboard(con, filters: Filters, *, worst_by: str = "sentiment", limit: int = 25) -> Dashboard:
    """Every figure of the Call analytics page for ``filters`` (its model resolved), with each
    query's time in ``timings_ms``."""
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[name] = round((time.perf_counter() - t0) * 1000, 2)
        return out

    filters = timed("resolve_model", resolve_model, con, filters)
    return Dashboard(
        filters=filters,
        headline=timed("headline", headline, con, filters),
        per_day=timed("calls_per_day", calls_per_day, con, filters),
        quarters=timed("sentiment_per_quarter", sentiment_per_quarter, con, filters),
        agents=timed("agents_table", agents_table, con, filters),
        worst=timed("worst_calls", worst_calls, con, filters, by=worst_by, limit=limit),
        timings_ms=timings,
    )
