"""A generated call store: realistic rows for thousands of calls, no audio (tests and benchmarks).

:func:`generate_store` fills a store with ``n_calls`` analysed calls spread over ``days`` days, a
few queues and agents: the ``calls`` rows with the customer's figures, per-party and per-quarter
summaries, worst moments and alerts, and, for the calls a dashboard opens (the most negative and
those with the most alerts), windows and segments so their timeline can be drawn. Everything is
inserted in bulk from pandas (one ``INSERT ... BY NAME`` per table), so 10,000 calls take seconds.

The figures follow a simple, known model so tests can check queries against them: each agent has
a level and a drift of customer sentiment, each queue a level; a call's customer sentiment per
quarter is ``tanh(level + drift * (q - 1) / 3 + noise)``. :func:`generate_frames`
returns the tables without writing them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..calls.settings import TREND_STEP, WORST_BELOW
from ..config import SENTIMENT_WEIGHTS
from ..errors import ParameterError

logger = logging.getLogger(__name__)

QUEUES: tuple[str, ...] = ("billing", "support", "sales", "retention")
MODEL_NAME, MODEL_SHA256 = "default", "5e1f" + "0" * 56
#: A second model, for stores where some calls were analysed twice.
OTHER_MODEL_NAME, OTHER_MODEL_SHA256 = "candidate", "c0ffee" + "1" * 58
_NEGATIVE = ("angry", "sad", "fear", "disgust")


@dataclass(frozen=True)
class SyntheticSpec:
    """What :func:`generate_frames` builds.

    ``second_model`` is the share of calls analysed again by :data:`OTHER_MODEL_SHA256`
    (analysed a day later); ``detail_calls`` how many calls get windows and segments.
    """

    n_calls: int = 10_000
    n_agents: int = 24
    queues: tuple[str, ...] = QUEUES
    days: int = 60
    end: date = date(2025, 6, 30)
    mono_share: float = 0.1
    no_speech_share: float = 0.01
    failed_share: float = 0.005
    second_model: float = 0.0
    detail_calls: int = 40
    archive: str = "/archive/calls"
    seed: int = 0


def _emotion_of(s: np.ndarray) -> np.ndarray:
    """A plausible dominant emotion for a sentiment value."""
    return np.select([s < -0.55, s < -0.25, s < 0.15, s < 0.45], ["angry", "sad", "neutral", "calm"], "happy")


def _trend(change: np.ndarray) -> np.ndarray:
    out = np.where(change > TREND_STEP, "improving", np.where(change < -TREND_STEP, "worsening", "steady"))
    return np.where(np.isnan(change), "n/a", out)


def generate_frames(spec: SyntheticSpec | None = None) -> dict[str, pd.DataFrame]:
    """The store's tables for ``spec`` as data frames (``calls``, ``party_summaries``,
    ``quarter_summaries``, ``worst_moments``, ``alerts``, ``windows``, ``segments``)."""
    spec = spec or SyntheticSpec()
    if spec.n_calls < 1 or spec.n_agents < 1 or not spec.queues or spec.days < 1:
        raise ParameterError(f"A synthetic store needs calls, agents, queues and days >= 1; got {spec}")
    rng = np.random.default_rng(spec.seed)
    n = spec.n_calls
    agents = np.array([f"agent_{i:02d}" for i in range(spec.n_agents)])
    agent_level = rng.normal(0.0, 0.2, spec.n_agents)
    agent_drift = rng.normal(0.0, 0.2, spec.n_agents)
    queue_level = dict(zip(spec.queues, np.linspace(-0.15, 0.15, len(spec.queues)), strict=True))

    a = rng.integers(0, spec.n_agents, n)
    queue = np.array(spec.queues)[rng.integers(0, len(spec.queues), n)]
    first_day = pd.Timestamp(spec.end) - pd.Timedelta(days=spec.days - 1)
    started = (
        first_day
        + pd.to_timedelta(rng.integers(0, spec.days, n), unit="D")
        + pd.to_timedelta(rng.integers(8 * 3600, 18 * 3600, n), unit="s")
    )
    duration = np.round(rng.gamma(4.0, 80.0, n) + 30.0, 2)
    mono = rng.random(n) < spec.mono_share
    status = np.where(rng.random(n) < spec.failed_share, "failed", "completed")
    no_speech = (rng.random(n) < spec.no_speech_share) & (status != "failed")

    level = agent_level[a] + np.array([queue_level[q] for q in queue]) + rng.normal(0.0, 0.25, n)
    drift = agent_drift[a] + rng.normal(0.0, 0.3, n)
    quarters = np.round(np.tanh(level[:, None] + drift[:, None] * np.arange(4)[None, :] / 3 + rng.normal(0, 0.1, (n, 4))), 4)
    judged = (~no_speech) & (status != "failed")
    quarters[~judged] = np.nan
    mean = np.round(quarters.mean(axis=1), 4)
    first, last = quarters[:, 0], quarters[:, 3]
    change = np.round(last - first, 4)
    n_alerts = np.where(judged, rng.poisson(np.clip(-3.0 * np.nanmin(np.nan_to_num(quarters, nan=0.0), axis=1), 0, None)), 0)

    call_id = np.array([f"{d:%Y-%m}/{q}/call_{i:06d}.wav" for i, (d, q) in enumerate(zip(started, queue, strict=True))])
    archive = spec.archive.rstrip("/")
    customer_role = np.where(mono, "speaker", "customer")
    dominant = np.where(judged, _emotion_of(np.nan_to_num(mean)), None)
    calls = pd.DataFrame(
        {
            "analysis_id": [f"{c}@{MODEL_SHA256[:12]}" for c in call_id],
            "call_id": call_id,
            "source": [f"{archive}/{c}" for c in call_id],
            "origin": "file",
            "started_at": started,
            "duration_s": duration,
            "channels": np.where(mono, 1, 2),
            "roles": np.where(mono, '["speaker"]', '["agent", "customer"]'),
            "agent": agents[a],
            "queue": queue,
            "customer_ref": [f"C{x:07d}" for x in rng.integers(0, 10**7, n)],
            "extra": "{}",
            "model_name": MODEL_NAME,
            "model_sha256": MODEL_SHA256,
            "status": status,
            "error": np.where(status == "failed", "UnreadableAudioError: the file could not be decoded", None),
            "no_speech": np.where(status == "failed", None, no_speech),
            "analysed_at": started + pd.Timedelta(hours=1),
            "customer_mean_sentiment": mean,
            "customer_first_quarter": first,
            "customer_last_quarter": last,
            "customer_change": change,
            "customer_trend": np.where(judged, _trend(change), None),
            "customer_dominant": dominant,
            "customer_end_negative": np.where(judged, last < 0, None),
            "n_alerts": n_alerts.astype(int),
        }
    )
    calls["customer_role"] = customer_role
    tables = _children(calls, quarters, rng, spec)
    tables["calls"] = calls
    if spec.second_model > 0:
        tables = _with_second_model(tables, rng, spec.second_model)
    return tables


def _children(calls: pd.DataFrame, quarters: np.ndarray, rng: np.random.Generator, spec: SyntheticSpec) -> dict:
    """Party and quarter summaries, worst moments, alerts, summary JSON; windows for a few calls."""
    n = len(calls)
    judged = ~np.isnan(quarters[:, 0])
    idx = np.flatnonzero(judged)
    dur = calls["duration_s"].to_numpy(float)
    role = calls["customer_role"].to_numpy()
    # quarter summaries: the customer (or the single party) and, on stereo calls, the agent
    qi = np.repeat(idx, 4)
    qn = np.tile(np.arange(1, 5), len(idx))
    q_mean = quarters[idx].reshape(-1)
    quarter_rows = pd.DataFrame(
        {
            "analysis_id": calls["analysis_id"].to_numpy()[qi],
            "role": role[qi],
            "quarter": qn,
            "start_s": np.round(dur[qi] * (qn - 1) / 4, 2),
            "end_s": np.round(dur[qi] * qn / 4, 2),
            "speech_s": np.round(dur[qi] / 4 * rng.uniform(0.3, 0.5, len(qi)), 2),
            "mean_sentiment": q_mean,
            "dominant": _emotion_of(q_mean),
        }
    )
    stereo = quarter_rows["role"] == "customer"
    agent_q = quarter_rows[stereo].assign(
        role="agent", mean_sentiment=lambda f: np.round(np.clip(rng.normal(0.15, 0.15, len(f)), -1, 1), 4)
    )
    agent_q["dominant"] = _emotion_of(agent_q["mean_sentiment"].to_numpy())
    quarter_rows = pd.concat([quarter_rows, agent_q], ignore_index=True)
    party = (
        quarter_rows.groupby(["analysis_id", "role"], sort=False)
        .agg(speech_s=("speech_s", "sum"), mean_sentiment=("mean_sentiment", "mean"))
        .reset_index()
    )
    party_dur = calls.set_index("analysis_id")["duration_s"].reindex(party["analysis_id"]).to_numpy(float)
    party["talk_share"] = np.round(party["speech_s"] / party_dur, 4)
    party["mean_sentiment"] = party["mean_sentiment"].round(4)
    party["dominant"] = _emotion_of(party["mean_sentiment"].to_numpy())
    firsts = quarter_rows.groupby(["analysis_id", "role"], sort=False)["mean_sentiment"].agg(["first", "last"])
    ch = (firsts["last"] - firsts["first"]).round(4).reindex(pd.MultiIndex.from_frame(party[["analysis_id", "role"]]))
    party["change"] = ch.to_numpy()
    party["trend"] = _trend(party["change"].to_numpy(float))
    party["shares"] = [json.dumps({e: round(1.0 if e == d else 0.0, 4) for e in SENTIMENT_WEIGHTS}) for d in party["dominant"]]

    # worst moments: calls whose customer has a quarter at or below WORST_BELOW, 1-5 moments each
    low = np.nanmin(np.where(judged[:, None], quarters, 0.0), axis=1)
    worst_calls = np.flatnonzero(judged & (low <= WORST_BELOW))
    k = rng.integers(1, 6, len(worst_calls))
    wi = np.repeat(worst_calls, k)
    rank = np.concatenate([np.arange(1, m + 1) for m in k]) if len(k) else np.array([], int)
    start = np.round(rng.uniform(0, 0.9, len(wi)) * dur[wi], 2)
    sentiment = np.round(np.clip(low[wi] - rng.uniform(0.05, 0.3, len(wi)), -1, WORST_BELOW), 4)
    worst = pd.DataFrame(
        {
            "analysis_id": calls["analysis_id"].to_numpy()[wi],
            "rank": rank,
            "role": role[wi],
            "start_s": start,
            "end_s": np.round(np.minimum(start + rng.uniform(2.0, 8.0, len(wi)), dur[wi]), 2),
            "emotion": np.array(_NEGATIVE)[rng.integers(0, len(_NEGATIVE), len(wi))],
            "sentiment": sentiment,
            "confidence": np.round(rng.uniform(0.5, 0.95, len(wi)), 4),
        }
    )
    worst["channel"] = np.where(worst["role"] == "customer", 1, 0)
    worst["peak_s"] = ((worst["start_s"] + worst["end_s"]) / 2).round(2)
    worst = worst.sort_values(["analysis_id", "sentiment"]).reset_index(drop=True)
    worst["rank"] = worst.groupby("analysis_id").cumcount() + 1

    na = calls["n_alerts"].to_numpy(int)
    ai = np.repeat(np.arange(n), na)
    a_start = np.round(rng.uniform(0, 0.9, len(ai)) * dur[ai], 2)
    kinds = np.where(rng.random(len(ai)) < 0.7, "sustained_negative", "emotion_spike")
    alerts = pd.DataFrame(
        {
            "analysis_id": calls["analysis_id"].to_numpy()[ai],
            "kind": kinds,
            "role": role[ai],
            "start_s": a_start,
            "end_s": np.round(np.minimum(a_start + 10.0, dur[ai]), 2),
            "detail": [json.dumps({"value": round(float(v), 2)}) for v in rng.uniform(-1, -0.4, len(ai))],
        }
    )
    calls["summary"] = _summaries(calls, quarters, worst)
    detail = _detail_calls(calls, spec.detail_calls)
    windows, segments = _timelines(calls.iloc[detail], quarters[detail], worst, rng)
    return {
        "party_summaries": party,
        "quarter_summaries": quarter_rows,
        "worst_moments": worst,
        "alerts": alerts,
        "windows": windows,
        "segments": segments,
    }


def _summaries(calls: pd.DataFrame, quarters: np.ndarray, worst: pd.DataFrame) -> list[str]:
    """A compact summary JSON per call (duration, roles, the customer's quarters and trend, worst moments)."""
    moments: dict[str, list] = {}
    for r in worst.itertuples(index=False):
        moments.setdefault(r.analysis_id, []).append(
            {
                "role": r.role,
                "start_s": r.start_s,
                "end_s": r.end_s,
                "peak_s": round((r.start_s + r.end_s) / 2, 2),
                "emotion": r.emotion,
                "sentiment": r.sentiment,
            }
        )
    out = []
    for i, c in enumerate(calls.itertuples(index=False)):
        q = quarters[i]
        judged = not np.isnan(q[0])
        out.append(
            json.dumps(
                {
                    "duration_s": c.duration_s,
                    "roles": json.loads(c.roles),
                    "no_speech": not judged,
                    "parties": {
                        c.customer_role: {
                            "mean_sentiment": c.customer_mean_sentiment if judged else None,
                            "quarters": [{"quarter": k + 1, "mean_sentiment": float(q[k]) if judged else None} for k in range(4)],
                            "trend": {"change": c.customer_change if judged else None, "direction": c.customer_trend or "n/a"},
                        }
                    },
                    "worst_moments": moments.get(c.analysis_id, []),
                }
            )
        )
    return out


def _detail_calls(calls: pd.DataFrame, k: int) -> np.ndarray:
    """The calls a dashboard opens: the most negative customers and the most alerts (``k`` in all)."""
    if k <= 0:
        return np.array([], int)
    ok = calls["customer_mean_sentiment"].notna().to_numpy()
    by_mean = np.argsort(np.where(ok, calls["customer_mean_sentiment"].to_numpy(float), np.inf), kind="stable")
    by_alerts = np.argsort(-calls["n_alerts"].to_numpy(int), kind="stable")
    chosen: list[int] = []
    for i in np.ravel(np.column_stack([by_mean[:k], by_alerts[:k]])):
        if ok[i] and i not in chosen:
            chosen.append(int(i))
        if len(chosen) >= k:
            break
    return np.array(sorted(chosen), int)


def _timelines(calls: pd.DataFrame, quarters: np.ndarray, worst: pd.DataFrame, rng: np.random.Generator) -> tuple:
    """Windows (3 s, hop 1 s) and segments for ``calls``: turns alternating between the parties,
    each party's sentiment following its quarters, dipping at the call's worst moments."""
    win_rows, seg_rows = [], []
    for c, q in zip(calls.itertuples(index=False), quarters, strict=True):
        parties = json.loads(c.roles)
        dips = worst[worst["analysis_id"] == c.analysis_id]
        t, turn = 0.5, 0
        while t < c.duration_s - 3.0:
            role = parties[turn % len(parties)]
            length = float(min(rng.uniform(3.0, 12.0), c.duration_s - t))
            quarter = min(3, int(4 * t / c.duration_s))
            base = q[quarter] if role != "agent" else 0.15
            starts = np.arange(t, t + length - 3.0 + 1e-9, 1.0) if length >= 3.0 else np.array([t])
            s = np.clip(base + rng.normal(0, 0.08, len(starts)), -1, 1)
            for d in dips.itertuples(index=False):
                if d.role == role:
                    s = np.where((starts + 3 > d.start_s) & (starts < d.end_s), d.sentiment, s)
            emotion = _emotion_of(s)
            for st, v, e in zip(starts, s, emotion, strict=True):
                win_rows.append(
                    (
                        c.analysis_id,
                        parties.index(role),
                        role,
                        round(st, 2),
                        round(min(st + 3.0, t + length), 2),
                        e,
                        0.7,
                        round(v, 4),
                    )
                )
            # a segment per run of the same emotion
            cut = np.flatnonzero(emotion[1:] != emotion[:-1]) + 1
            for run in np.split(np.arange(len(starts)), cut):
                a, b = float(starts[run[0]]), float(min(starts[run[-1]] + 3.0, t + length))
                seg_rows.append(
                    (
                        c.analysis_id,
                        parties.index(role),
                        role,
                        round(a, 2),
                        round(b, 2),
                        emotion[run[0]],
                        0.7,
                        round(float(s[run].mean()), 4),
                        len(run),
                    )
                )
            t += length + rng.uniform(0.3, 1.5)
            turn += 1
    cols = ["analysis_id", "channel", "role", "start_s", "end_s", "emotion", "confidence", "sentiment"]
    windows = pd.DataFrame(win_rows, columns=cols)
    segments = pd.DataFrame(seg_rows, columns=[*cols, "n_windows"])
    windows["probabilities"] = "{}"
    segments["probabilities"] = "{}"
    return windows, segments


def _with_second_model(tables: dict, rng: np.random.Generator, share: float) -> dict:
    """A share of the calls analysed again by another model a day later (its sentiments shifted a little)."""
    calls = tables["calls"]
    pick = calls[(rng.random(len(calls)) < share) & (calls["status"] != "failed")]
    new_id = dict(zip(pick["analysis_id"], [f"{c}@{OTHER_MODEL_SHA256[:12]}" for c in pick["call_id"]], strict=True))
    again = pick.assign(
        analysis_id=pick["analysis_id"].map(new_id),
        model_name=OTHER_MODEL_NAME,
        model_sha256=OTHER_MODEL_SHA256,
        analysed_at=pick["analysed_at"] + pd.Timedelta(days=1),
    )
    for col in ("customer_mean_sentiment", "customer_first_quarter", "customer_last_quarter"):
        again[col] = (again[col] - 0.1).clip(-1, 1).round(4)
    again["customer_change"] = (again["customer_last_quarter"] - again["customer_first_quarter"]).round(4)
    again["customer_end_negative"] = again["customer_last_quarter"].lt(0).where(again["customer_last_quarter"].notna())
    out = {"calls": pd.concat([calls, again], ignore_index=True)}
    for name, t in tables.items():
        if name == "calls":
            continue
        copy = t[t["analysis_id"].isin(new_id)].assign(analysis_id=lambda f: f["analysis_id"].map(new_id))
        out[name] = pd.concat([t, copy], ignore_index=True)
    return out


TABLES = ("calls", "party_summaries", "quarter_summaries", "worst_moments", "alerts", "windows", "segments")


def generate_store(path: str | os.PathLike, spec: SyntheticSpec | None = None, **kwargs) -> dict[str, pd.DataFrame]:
    """Create (or add to) the store at ``path`` with the calls of ``spec`` (or ``SyntheticSpec(**kwargs)``).

    Returns the frames written, so a test can compute what the queries should answer.
    """
    spec = spec or SyntheticSpec(**kwargs)
    tables = generate_frames(spec)
    write_frames(path, tables)
    logger.info("generated %d calls in %s", spec.n_calls, path)
    return tables


def write_frames(path: str | os.PathLike, tables: dict[str, pd.DataFrame]) -> None:
    """Insert ``tables`` (name -> frame, columns named as in the store; any subset of tables and
    columns) into the store at ``path`` in one transaction, creating the store if need be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _writer(path) as con:
        con.execute("BEGIN TRANSACTION")
        for name in TABLES:
            if name in tables:
                con.register("frame", tables[name])
                con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM frame")
                con.unregister("frame")
        con.execute("COMMIT")
    logger.debug("wrote %s in %.2f s", {k: len(v) for k, v in tables.items()}, time.perf_counter() - t0)


def _writer(path: Path):
    """The store's own writer (its lock, its schema and migrations) for ``path``."""
    from .store import CallStore

    return CallStore(path).writer()
