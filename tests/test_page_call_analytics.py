"""The Call analytics page with ``streamlit.testing.v1.AppTest``, over a generated call store (real DuckDB).

What a manager sees is checked against the store itself (computed here with pandas from the
frames written): the headline numbers, how the filters change them, the figures' data, the worst
calls and the timeline one of them opens (with its worst moments playable when the recording is
reachable), the message without a store, a store outside the allowed folders, and calls written
while the page is open appearing on the next interaction.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from ser_lib.store.synthetic import MODEL_SHA256, SyntheticSpec, generate_frames, generate_store, write_frames

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/8_Call_analytics.py"
TIMEOUT = 120


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def values(v) -> np.ndarray:
    """A trace's x or y as an array (plotly's JSON packs numeric arrays as base64 ``bdata``)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float)
    return np.asarray([np.nan if x is None else x for x in v], dtype=object)


def figure(at: AppTest, title: str) -> dict:
    found = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [f for f in found if title in str(f["layout"].get("title", {}).get("text", ""))]
    assert len(found) == 1, title
    return found[0]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def no_trouble(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """400 calls, 3 agents, 3 queues, one model; the worst call's recording on disk under the data folder."""
    base = tmp_path_factory.mktemp("analytics")
    archive = base / "data" / "archive"
    spec = SyntheticSpec(
        n_calls=400, n_agents=3, queues=("billing", "support", "sales"), days=10, detail_calls=4, archive=str(archive), seed=7
    )
    tables = generate_store(base / "data" / "calls.duckdb", spec)
    calls = tables["calls"]
    worst = (
        calls[calls["status"] != "failed"].sort_values(["customer_mean_sentiment", "n_alerts"], ascending=[True, False]).iloc[0]
    )
    wav = Path(worst["source"])
    wav.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(8000 * worst["duration_s"])) / 8000
    sf.write(
        wav, np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], axis=1), 8000, subtype="PCM_16"
    )
    return base, tables, worst


@pytest.fixture
def env(store, monkeypatch):
    base, tables, worst = store
    monkeypatch.setenv("SER_CALL_STORE", str(base / "data" / "calls.duckdb"))
    monkeypatch.setenv("SER_DATA_DIR", str(base / "data"))
    monkeypatch.delenv("SER_DATA_ROOTS", raising=False)
    return store


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    at.switch_page(PAGE)
    return at.run()


def judged(calls: pd.DataFrame) -> pd.DataFrame:
    return calls[(calls["status"] != "failed") & (calls["model_sha256"] == MODEL_SHA256)]


def test_without_a_store_the_page_says_how_to_make_one(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_CALL_STORE", str(tmp_path / "calls.duckdb"))
    at = open_page()
    no_trouble(at)
    assert at.title[0].value == "Call analytics"
    shown = texts(at.info)
    assert "No call store at" in shown and str(tmp_path / "calls.duckdb") in shown
    assert "python -m ser_lib analyze-calls FOLDER" in shown and "data/calls.duckdb" in shown
    assert not at.metric and not at.get("plotly_chart")


def test_the_headline_numbers_are_the_stores(env):
    _, tables, _ = env
    c = judged(tables["calls"])
    at = open_page()
    no_trouble(at)
    m = metrics(at)
    assert m["Calls analysed"] == f"{len(c):,}"
    assert m["Customer ends negative"] == f"{100 * c['customer_end_negative'].dropna().astype(float).mean():.1f}%"
    assert m["Mean customer sentiment"] == f"{c['customer_mean_sentiment'].mean():+.2f}"
    worsening = (c.loc[c["customer_change"].notna(), "customer_trend"] == "worsening").mean()
    assert m["Calls worsening"] == f"{100 * worsening:.1f}%"


def test_filters_change_the_numbers_and_the_figures(env):
    _, tables, _ = env
    c = judged(tables["calls"])
    at = open_page()
    at.multiselect(key="ca_agents").set_value(["agent_01"]).run()
    at.multiselect(key="ca_queues").set_value(["billing", "sales"]).run()
    no_trouble(at)
    sub = c[(c["agent"] == "agent_01") & c["queue"].isin(["billing", "sales"])]
    assert 0 < len(sub) < len(c)
    assert metrics(at)["Calls analysed"] == f"{len(sub):,}"
    assert metrics(at)["Mean customer sentiment"] == f"{sub['customer_mean_sentiment'].mean():+.2f}"

    days = sub.groupby(sub["started_at"].dt.date).size()
    per_day = figure(at, "Calls per day")
    bars = next(t for t in per_day["data"] if t["type"] == "bar")
    assert values(bars["y"]).astype(int).tolist() == days.tolist()
    quarters = tables["quarter_summaries"].merge(
        sub[["analysis_id", "customer_role"]], left_on=["analysis_id", "role"], right_on=["analysis_id", "customer_role"]
    )
    q = figure(at, "Customer sentiment per quarter")
    np.testing.assert_allclose(
        values(q["data"][0]["y"]).astype(float), quarters.groupby("quarter")["mean_sentiment"].mean().to_numpy()
    )

    agents = at.dataframe[0].value  # the agents table (the first on the page)
    assert agents["agent"].tolist() == ["agent_01"] and agents["calls"].tolist() == [len(sub)]

    start = sorted(days.index)[-3]
    at.date_input(key="ca_period").set_value((start, sorted(days.index)[-1])).run()
    no_trouble(at)
    late = sub[sub["started_at"].dt.date >= start]
    assert metrics(at)["Calls analysed"] == f"{len(late):,}" and len(late) < len(sub)


def test_opening_a_worst_call_shows_its_timeline_and_plays_its_worst_moments(env):
    base, tables, worst = env
    at = open_page()
    table = at.dataframe(key="ca_worst_table").value
    assert table["call"].iloc[0] == worst["call_id"]  # the lowest customer sentiment first
    np.testing.assert_allclose(table["mean sentiment"].iloc[0], worst["customer_mean_sentiment"])
    at.selectbox(key="ca_worst_select").set_value(worst["call_id"]).run()
    no_trouble(at)
    fig = figure(at, "Emotion over the call")
    lines = {
        t["name"]: int(np.isfinite(values(t["y"]).astype(float)).sum())
        for t in fig["data"]
        if t.get("name", "").endswith("sentiment")
    }
    assert lines and all(n > 1 for n in lines.values()), lines
    moments = tables["worst_moments"][tables["worst_moments"]["analysis_id"] == worst["analysis_id"]]
    marks = next(t for t in fig["data"] if t.get("name") == "worst moments")
    np.testing.assert_allclose(sorted(values(marks["y"]).astype(float)), sorted(moments["sentiment"]))
    assert len(at.get("audio")) == len(moments) > 0


def test_an_unreachable_recording_is_said_not_played(env):
    _, tables, worst = env
    at = open_page()
    table = at.dataframe(key="ca_worst_table").value
    other = next(c for c in table["call"] if c != worst["call_id"])
    at.selectbox(key="ca_worst_select").set_value(other).run()
    no_trouble(at)
    assert "not reachable from this server" in texts(at.caption) or "The store kept only this call's summary" in texts(at.info)
    assert not at.get("audio")


def test_a_store_outside_the_allowed_folders_is_refused(env, tmp_path):
    at = open_page()
    at.sidebar.text_input(key="ca_store").set_value(str(tmp_path / "elsewhere.duckdb")).run()
    assert not at.exception
    assert "outside the folders this dashboard may read" in texts(at.sidebar.error)
    assert metrics(at)["Calls analysed"]  # still the default store


def test_calls_written_while_the_page_is_open_appear(tmp_path, monkeypatch):
    path = tmp_path / "data" / "calls.duckdb"
    monkeypatch.setenv("SER_CALL_STORE", str(path))
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "data"))
    generate_store(path, SyntheticSpec(n_calls=50, n_agents=2, days=3, detail_calls=0, seed=1, failed_share=0.0))
    at = open_page()
    no_trouble(at)
    assert metrics(at)["Calls analysed"] == "50"
    more = generate_frames(SyntheticSpec(n_calls=60, n_agents=2, days=3, detail_calls=0, seed=1, failed_share=0.0))
    write_frames(path, {k: v[v["analysis_id"].isin(set(more["calls"]["analysis_id"][50:]))] for k, v in more.items()})
    at.run()
    no_trouble(at)
    assert metrics(at)["Calls analysed"] == "60"
