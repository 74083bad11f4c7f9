"""The call-analytics queries (:mod:`ser_lib.store.analytics`) on real DuckDB files.

Two stores: a hand-made one whose figures are known by heart (three agents, six calls), and a
generated one (:mod:`ser_lib.store.synthetic`, two models) whose figures are computed here with
pandas from the very frames that were written, and compared with what the SQL answers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ser_lib.errors import ParameterError, StoreBusyError, StoreNotFoundError
from ser_lib.store import analytics as an
from ser_lib.store.synthetic import MODEL_SHA256, OTHER_MODEL_SHA256, SyntheticSpec, generate_store, write_frames

# --- a store known by heart ---------------------------------------------------------------------------

SHA = "a" * 64


def _call(i, agent, queue, day, quarters, *, status="completed", alerts=0, mono=False):
    q = [None] * 4 if quarters is None else quarters
    judged = quarters is not None and status != "failed"
    first, last = (q[0], q[3]) if judged else (None, None)
    change = None if not judged else round(last - first, 4)
    trend = None if not judged else ("worsening" if change < -0.15 else "improving" if change > 0.15 else "steady")
    return {
        "analysis_id": f"c{i}@{SHA[:12]}",
        "call_id": f"c{i}",
        "source": f"/calls/c{i}.wav",
        "origin": "file",
        "started_at": pd.Timestamp(day) + pd.Timedelta(hours=9 + i),
        "duration_s": 120.0,
        "channels": 1 if mono else 2,
        "roles": '["speaker"]' if mono else '["agent", "customer"]',
        "customer_role": "speaker" if mono else "customer",
        "agent": agent,
        "queue": queue,
        "model_name": "m",
        "model_sha256": SHA,
        "status": status,
        "no_speech": None if status == "failed" else quarters is None,
        "analysed_at": pd.Timestamp("2025-07-01 12:00") + pd.Timedelta(minutes=i),
        "customer_mean_sentiment": None if not judged else float(np.mean(q)),
        "customer_first_quarter": first,
        "customer_last_quarter": last,
        "customer_change": change,
        "customer_trend": trend,
        "customer_end_negative": None if not judged else last < 0,
        "n_alerts": alerts,
    }


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    path = tmp_path_factory.mktemp("known") / "calls.duckdb"
    calls = pd.DataFrame(
        [
            _call(0, "ann", "billing", "2025-06-01", [-0.2, -0.4, -0.5, -0.6], alerts=2),  # worsens (-0.4), ends negative
            _call(1, "ann", "support", "2025-06-01", [0.1, 0.0, -0.1, -0.2], alerts=1),  # worsens (-0.3), ends negative
            _call(2, "bob", "billing", "2025-06-02", [0.0, 0.2, 0.3, 0.5]),  # improves, ends positive
            _call(3, "bob", "billing", "2025-06-02", [0.4, 0.4, 0.4, 0.4], mono=True),  # steady, the single party
            _call(4, "cy", "support", "2025-06-03", None),  # no speech: analysed, no sentiment
            _call(5, "cy", "support", "2025-06-03", None, status="failed"),
            _call(6, None, "support", "2025-06-03", [-0.1, -0.1, 0.0, 0.2]),  # no agent in the metadata; improves
        ]
    )
    rows = []
    for c in calls.itertuples():
        if c.customer_mean_sentiment is None or pd.isna(c.customer_mean_sentiment):
            continue
        q = {
            0: [-0.2, -0.4, -0.5, -0.6],
            1: [0.1, 0.0, -0.1, -0.2],
            2: [0.0, 0.2, 0.3, 0.5],
            3: [0.4] * 4,
            6: [-0.1, -0.1, 0.0, 0.2],
        }
        for k, v in enumerate(q[c.Index], start=1):
            rows.append({"analysis_id": c.analysis_id, "role": c.customer_role, "quarter": k, "mean_sentiment": v})
            if c.customer_role == "customer":  # the agent's quarters must not count
                rows.append({"analysis_id": c.analysis_id, "role": "agent", "quarter": k, "mean_sentiment": 0.9})
    worst = pd.DataFrame(
        [
            {
                "analysis_id": calls.analysis_id[0],
                "rank": 1,
                "role": "customer",
                "start_s": 90.0,
                "end_s": 96.0,
                "emotion": "angry",
                "sentiment": -0.9,
            },
            {
                "analysis_id": calls.analysis_id[0],
                "rank": 2,
                "role": "customer",
                "start_s": 60.0,
                "end_s": 63.0,
                "emotion": "sad",
                "sentiment": -0.5,
            },
        ]
    )
    write_frames(path, {"calls": calls, "quarter_summaries": pd.DataFrame(rows), "worst_moments": worst})
    return path


def test_the_headline_of_a_store_known_by_heart(known):
    with an.open_reader(known) as con:
        h = an.headline(con, an.resolve_model(con, an.Filters()))
    assert h["calls"] == 6 and h["failed"] == 1 and h["no_speech"] == 1 and h["judged"] == 5
    assert h["negative_end_share"] == pytest.approx(2 / 5)  # calls 0 and 1 of the five judged
    means = [-0.425, -0.05, 0.25, 0.4, 0.0]
    assert h["mean_sentiment"] == pytest.approx(np.mean(means))
    assert h["worsening_share"] == pytest.approx(2 / 5)
    assert h["alerts"] == 3


def test_filters_narrow_the_figures(known):
    with an.open_reader(known) as con:
        f = an.resolve_model(con, an.Filters())
        ann = an.headline(con, an.Filters(agents=("ann",), model=f.model))
        billing = an.headline(con, an.Filters(queues=("billing",), model=f.model))
        day2 = an.headline(con, an.Filters(start=date(2025, 6, 2), end=date(2025, 6, 2), model=f.model))
        unset = an.headline(con, an.Filters(agents=(an.NOT_SET,), model=f.model))
        options = an.filter_options(con)
    assert ann["calls"] == 2 and ann["negative_end_share"] == 1.0 and ann["worsening_share"] == 1.0
    assert billing["calls"] == 3 and billing["mean_sentiment"] == pytest.approx((-0.425 + 0.25 + 0.4) / 3)
    assert day2["calls"] == 2 and day2["negative_end_share"] == 0.0
    assert unset["calls"] == 1 and unset["mean_sentiment"] == pytest.approx(0.0)
    assert options["agents"] == ["ann", "bob", "cy", an.NOT_SET] and options["queues"] == ["billing", "support"]
    assert (options["first_day"], options["last_day"]) == (date(2025, 6, 1), date(2025, 6, 3))


def test_quarters_agents_and_worst_calls_of_the_known_store(known):
    with an.open_reader(known) as con:
        f = an.resolve_model(con, an.Filters())
        quarters = an.sentiment_per_quarter(con, f)
        agents = an.agents_table(con, f).set_index("agent")
        worst = an.worst_calls(con, f, limit=2)
        by_alerts = an.worst_calls(con, f, by="alerts", limit=3)
        moments = an.worst_moments(con, worst["analysis_id"][0])
    # the customer's (or mono party's) quarters only: never the agent's 0.9
    expected = np.mean(
        [[-0.2, -0.4, -0.5, -0.6], [0.1, 0.0, -0.1, -0.2], [0.0, 0.2, 0.3, 0.5], [0.4] * 4, [-0.1, -0.1, 0.0, 0.2]], axis=0
    )
    assert quarters["quarter"].tolist() == [1, 2, 3, 4] and quarters["calls"].tolist() == [5] * 4
    np.testing.assert_allclose(quarters["mean_sentiment"], expected)
    assert agents.loc["ann", "calls"] == 2 and agents.loc["ann", "alerts"] == 3
    assert agents.loc["ann", "mean_sentiment"] == pytest.approx((-0.425 - 0.05) / 2)
    assert agents.loc["ann", "mean_change"] == pytest.approx((-0.4 - 0.3) / 2)
    assert agents.loc["bob", "mean_change"] == pytest.approx((0.5 + 0.0) / 2)
    assert agents.loc["cy", "calls"] == 1 and pd.isna(agents.loc["cy", "mean_sentiment"])  # no speech; the failed one left out
    assert agents.loc[an.NOT_SET, "calls"] == 1
    assert worst["call_id"].tolist() == ["c0", "c1"]
    assert worst["worst_moments"].tolist() == [2, 0] and worst["worst_emotion"][0] == "angry"
    assert worst["worst_peak_s"][0] == pytest.approx(93.0) and pd.isna(worst["worst_sentiment"][1])
    assert by_alerts["call_id"].tolist() == ["c0", "c1", "c6"]  # 2, 1 alerts, then the lowest sentiment without
    assert moments["rank"].tolist() == [1, 2] and moments["sentiment"].tolist() == [-0.9, -0.5]


def test_bad_filters_and_arguments_say_what_was_expected(known):
    with pytest.raises(ParameterError, match="starts on 2025-06-03 after it ends on 2025-06-01"):
        an.Filters(start=date(2025, 6, 3), end=date(2025, 6, 1))
    with an.open_reader(known) as con, pytest.raises(ParameterError, match="expected one of"):
        an.worst_calls(con, an.Filters(model=SHA), by="loudest")


# --- a generated store, checked against pandas --------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("generated") / "calls.duckdb"
    spec = SyntheticSpec(
        n_calls=600, n_agents=3, queues=("billing", "support", "sales"), days=12, second_model=0.25, detail_calls=6, seed=3
    )
    tables = generate_store(path, spec)
    return path, tables


def _expected(calls: pd.DataFrame, model: str, **where) -> pd.DataFrame:
    c = calls[(calls["model_sha256"] == model) & (calls["status"] != "failed")].copy()
    c["day"] = c["started_at"].fillna(c["analysed_at"]).dt.date
    for col, allowed in where.items():
        c = c[c[col].isin(allowed)]
    return c


def test_the_default_model_is_the_most_recent_and_each_model_counts_alone(generated):
    path, tables = generated
    calls = tables["calls"]
    with an.open_reader(path) as con:
        latest = an.resolve_model(con, an.Filters())
        unknown = an.resolve_model(con, an.Filters(model="f" * 64))
        first = an.headline(con, an.Filters(model=MODEL_SHA256))
        second = an.headline(con, latest)
    assert latest.model == OTHER_MODEL_SHA256 == unknown.model  # analysed a day after the first model
    for h, model in ((first, MODEL_SHA256), (second, OTHER_MODEL_SHA256)):
        c = _expected(calls, model)
        assert h["calls"] == len(c)
        assert h["mean_sentiment"] == pytest.approx(c["customer_mean_sentiment"].mean())
        assert h["negative_end_share"] == pytest.approx(c["customer_end_negative"].dropna().astype(float).mean())
        assert h["worsening_share"] == pytest.approx(
            (c.loc[c["customer_change"].notna(), "customer_trend"] == "worsening").mean()
        )
        assert h["alerts"] == c["n_alerts"].sum()
    assert first["failed"] == (calls["status"] == "failed").sum() > 0


def test_per_day_quarters_agents_and_worst_match_pandas(generated):
    path, tables = generated
    calls = tables["calls"]
    f = an.Filters(model=MODEL_SHA256, queues=("billing", "sales"), start=date(2025, 6, 22), end=date(2025, 6, 28))
    with an.open_reader(path) as con:
        d = an.dashboard(con, f, limit=10)
    c = _expected(calls, MODEL_SHA256, queue=["billing", "sales"])
    c = c[(c["day"] >= date(2025, 6, 22)) & (c["day"] <= date(2025, 6, 28))]
    assert d.headline["calls"] == len(c) > 50

    per_day = c.groupby("day").agg(
        calls=("call_id", "size"), neg=("customer_end_negative", lambda s: int(s.fillna(False).astype(bool).sum()))
    )
    assert [x.date() if hasattr(x, "date") else x for x in d.per_day["day"]] == list(per_day.index)
    assert d.per_day["calls"].tolist() == per_day["calls"].tolist()
    assert d.per_day["negative_endings"].tolist() == per_day["neg"].tolist()

    q = tables["quarter_summaries"].merge(
        c[["analysis_id", "customer_role"]], left_on=["analysis_id", "role"], right_on=["analysis_id", "customer_role"]
    )
    np.testing.assert_allclose(d.quarters["mean_sentiment"], q.groupby("quarter")["mean_sentiment"].mean().to_numpy())
    assert d.quarters["calls"].tolist() == q.groupby("quarter").size().tolist()

    agents = c.groupby("agent").agg(
        calls=("call_id", "size"),
        mean=("customer_mean_sentiment", "mean"),
        change=("customer_change", "mean"),
        alerts=("n_alerts", "sum"),
    )
    got = d.agents.set_index("agent").loc[agents.index]
    assert got["calls"].tolist() == agents["calls"].tolist() and got["alerts"].tolist() == agents["alerts"].tolist()
    np.testing.assert_allclose(got["mean_sentiment"], agents["mean"])
    np.testing.assert_allclose(got["mean_change"], agents["change"])

    lowest = (
        c.dropna(subset=["customer_mean_sentiment"])
        .sort_values(["customer_mean_sentiment", "n_alerts"], ascending=[True, False])
        .head(10)
    )
    np.testing.assert_allclose(d.worst["mean_sentiment"], lowest["customer_mean_sentiment"])
    w = tables["worst_moments"]
    first_moment = w[w["rank"] == 1].set_index("analysis_id")
    for r in d.worst.itertuples():
        assert r.worst_moments == (w["analysis_id"] == r.analysis_id).sum()
        if r.worst_moments:
            assert r.worst_sentiment == pytest.approx(first_moment.loc[r.analysis_id, "sentiment"])
    assert set(d.timings_ms) >= set(an.QUERIES)


def test_one_calls_timeline_comes_back_from_the_store(generated):
    path, tables = generated
    with_windows = tables["windows"]["analysis_id"].iloc[0]
    with an.open_reader(path) as con:
        t = an.call_timeline(con, with_windows)
        missing = an.call_timeline(con, "no-such-call")
    assert t["call"]["analysis_id"] == with_windows
    assert len(t["windows"]) == (tables["windows"]["analysis_id"] == with_windows).sum() > 0
    assert len(t["segments"]) == (tables["segments"]["analysis_id"] == with_windows).sum() > 0
    assert set(t["windows"]["role"]) <= {"agent", "customer", "speaker"}
    assert missing["call"] is None and missing["windows"].empty


# --- opening the store -------------------------------------------------------------------------------------


def test_a_missing_store_says_how_to_make_one(tmp_path):
    with (
        pytest.raises(StoreNotFoundError, match="analyze-calls"),
        an.open_reader(tmp_path / "none.duckdb"),
    ):
        pass


def test_a_store_held_by_a_writer_is_waited_for_then_reported_busy(known, tmp_path):
    import shutil

    path = tmp_path / "held.duckdb"
    shutil.copy(known, path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError, match="stayed locked"), an.open_reader(path, wait_s=0.5):
            pass
        assert time.monotonic() - t0 >= 0.5
    finally:
        holder.kill()
        holder.wait()
    with an.open_reader(path) as con:  # free again: read at once
        assert an.headline(con, an.Filters(model=SHA))["calls"] == 6
