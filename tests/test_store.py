"""The call store (ser_lib.store) on real DuckDB files: writes, idempotence, failures, reads, exports, errors."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pandas as pd
import pytest

from ser_lib.errors import SERError, StoreBusyError, StoreError, StoreNotFoundError
from ser_lib.store import SCHEMA_VERSION, TABLES, CallMetadata, CallStore, default_store_path, model_identity
from ser_lib.store.sample_call import sample_analysis

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture(scope="module")
def call():
    return sample_analysis(duration_s=300.0, seed=3, customer_start=0.4, customer_end=-0.7)


@pytest.fixture
def store(tmp_path):
    return CallStore(tmp_path / "data" / "calls.duckdb")


def _write(store, result, call_id="q1/call1.wav", sha=SHA_A, **kw):
    kw.setdefault("source", f"/archive/{call_id}")
    kw.setdefault("model_name", "default")
    return store.write_analysis(result, call_id=call_id, model_sha256=sha, **kw)


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_CALL_STORE", str(tmp_path / "x.duckdb"))
    assert default_store_path() == tmp_path / "x.duckdb"
    assert CallStore().path == tmp_path / "x.duckdb"
    monkeypatch.delenv("SER_CALL_STORE")
    assert str(default_store_path()) == "data/calls.duckdb"


def test_a_written_call_reads_back_with_every_table(store, call):
    md = CallMetadata(agent="alice", queue="billing", customer_ref="C-17", started_at=datetime(2025, 5, 1, 10, 15),
                      extra={"site": "leeds"})  # fmt: skip
    alerts = [{"kind": "sustained_negative", "role": "customer", "channel": 1, "start_s": 60.0, "end_s": 75.0,
               "value": -0.6, "threshold": -0.3, "message": "customer below -0.30"}]  # fmt: skip
    aid = _write(store, call, metadata=md, alerts=alerts)
    assert aid == f"q1/call1.wav@{SHA_A[:12]}"
    assert store.path.is_file()  # created on first use, its folder too

    counts = store.counts()
    assert counts["schema_version"] == SCHEMA_VERSION
    assert counts["calls"] == 1 and counts["windows"] == len(call.windows) and counts["segments"] == len(call.segments)
    assert counts["party_summaries"] == 2 and counts["quarter_summaries"] == 8 and counts["alerts"] == 1
    assert counts["worst_moments"] == len(call.summary["worst_moments"]) > 0

    row = store.calls().iloc[0]
    cust = call.summary["parties"]["customer"]
    quarters = [q["mean_sentiment"] for q in cust["quarters"] if q["mean_sentiment"] is not None]
    assert (row.agent, row.queue, row.customer_ref) == ("alice", "billing", "C-17")
    assert row.started_at == pd.Timestamp(2025, 5, 1, 10, 15)
    assert json.loads(row.extra) == {"site": "leeds"} and json.loads(row.roles) == ["agent", "customer"]
    assert row.status == "completed" and row.origin == "file" and row.channels == 2 and not row.no_speech
    assert row.customer_mean_sentiment == pytest.approx(cust["mean_sentiment"])
    assert row.customer_first_quarter == pytest.approx(quarters[0]) and row.customer_last_quarter == pytest.approx(quarters[-1])
    assert row.customer_change == pytest.approx(quarters[-1] - quarters[0])
    assert row.customer_end_negative == (quarters[-1] < 0) and row.customer_trend == cust["trend"]["direction"]
    assert row.n_alerts == 1 and row.is_latest and row.day == pd.Timestamp(2025, 5, 1)

    # the detail tables hold the analysis itself
    w = store.query("SELECT * FROM windows_v ORDER BY channel, start_s")
    ref = call.windows.sort_values(["channel", "start_s"])
    assert w["sentiment"].to_numpy() == pytest.approx(ref["sentiment"].to_numpy())
    probs = json.loads(w["probabilities"].iloc[0])
    assert set(probs) == set(call.labels) and sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert set(w["call_id"]) == {"q1/call1.wav"} and set(w["agent"]) == {"alice"}
    wm = store.query("SELECT * FROM worst_moments ORDER BY rank")
    first = call.summary["worst_moments"][0]
    assert wm["sentiment"].iloc[0] == pytest.approx(first["sentiment"]) and wm["peak_s"].iloc[0] == pytest.approx(first["peak_s"])
    a = store.query("SELECT * FROM alerts").iloc[0]
    assert a.kind == "sustained_negative" and json.loads(a.detail)["threshold"] == -0.3
    q = store.query("SELECT quarter, mean_sentiment FROM quarter_summaries WHERE role = 'customer' ORDER BY quarter")
    assert q["quarter"].tolist() == [1, 2, 3, 4]


def test_same_model_replaces_and_another_model_adds(store, call):
    other = sample_analysis(duration_s=120.0, seed=9)
    _write(store, call)
    _write(store, other)  # the same call, the same model: replaced, not doubled
    c = store.counts()
    assert c["calls"] == 1 and c["windows"] == len(other.windows) and c["segments"] == len(other.segments)
    assert store.calls().iloc[0].duration_s == pytest.approx(120.0)

    _write(store, call, sha=SHA_B, model_name="candidate")  # another model: a second analysis of the same call
    c = store.counts()
    assert c["calls"] == 2 and c["windows"] == len(other.windows) + len(call.windows)
    both = store.calls()
    assert set(both["model_name"]) == {"default", "candidate"} and set(both["call_id"]) == {"q1/call1.wav"}
    latest = store.calls(latest_only=True)
    assert len(latest) == 1 and latest.iloc[0].model_name == "candidate"
    assert store.has_analysis("q1/call1.wav", SHA_A) and store.has_analysis("q1/call1.wav", SHA_B)
    assert not store.has_analysis("q1/other.wav", SHA_A)
    assert store.analysed_call_ids(SHA_A) == {"q1/call1.wav"} and store.analysed_call_ids("c" * 64) == set()


def test_a_failure_is_a_row_and_a_later_success_replaces_it(store, call):
    aid = store.write_failure(call_id="bad.wav", source="/a/bad.wav", error="not audio", model_name="default",
                              model_sha256=SHA_A, metadata=CallMetadata(agent="bob"))  # fmt: skip
    row = store.calls().iloc[0]
    assert row.analysis_id == aid and row.status == "failed" and row.error == "not audio" and row.agent == "bob"
    assert pd.isna(row.duration_s) and store.has_analysis("bad.wav", SHA_A)
    assert store.analysed_call_ids(SHA_A) == {"bad.wav"}
    _write(store, call, call_id="bad.wav")
    rows = store.calls()
    assert len(rows) == 1 and rows.iloc[0].status == "completed" and pd.isna(rows.iloc[0].error)


def test_mono_and_no_speech_calls(store):
    mono = sample_analysis(duration_s=60.0, roles=("speaker",), seed=2, customer_end=-0.8)
    _write(store, mono, call_id="mono.wav", status="ended_abruptly", origin="live")
    silent = sample_analysis(duration_s=1.5, seed=1)  # too short for any turn: nothing judged
    assert silent.no_speech
    _write(store, silent, call_id="silent.wav")
    rows = store.calls().set_index("call_id")
    assert rows.loc["mono.wav", "customer_role"] == "speaker" and rows.loc["mono.wav", "channels"] == 1
    assert rows.loc["mono.wav", "status"] == "ended_abruptly" and rows.loc["mono.wav", "origin"] == "live"
    assert rows.loc["silent.wav", "no_speech"] and pd.isna(rows.loc["silent.wav", "customer_mean_sentiment"])


def test_filters_of_calls(store, call):
    for i, (queue, agent, day) in enumerate([("billing", "alice", 1), ("sales", "bob", 2), ("billing", "bob", 3)]):
        _write(store, call, call_id=f"c{i}.wav",
               metadata=CallMetadata(agent=agent, queue=queue, started_at=datetime(2025, 5, day, 9)))  # fmt: skip
    assert store.calls()["call_id"].tolist() == ["c2.wav", "c1.wav", "c0.wav"]  # newest first
    assert store.calls(queues=["billing"])["call_id"].tolist() == ["c2.wav", "c0.wav"]
    assert store.calls(agents=["bob"], since="2025-05-03")["call_id"].tolist() == ["c2.wav"]
    assert store.calls(until=datetime(2025, 5, 2))["call_id"].tolist() == ["c0.wav"]
    assert store.calls(queues=[]).empty and len(store.calls(limit=2)) == 2
    assert list(store.calls(columns=["call_id", "agent"]).columns) == ["call_id", "agent"]


def test_bad_arguments_are_refused_with_the_value(store, call):
    with pytest.raises(StoreError, match="status 'done'.*completed, ended_abruptly, failed"):
        _write(store, call, status="done")
    with pytest.raises(StoreError, match="model_sha256 'abc'"):
        _write(store, call, sha="abc")
    with pytest.raises(StoreError, match="call_id ''"):
        _write(store, call, call_id="")
    with pytest.raises(StoreError, match="read-only"):
        CallStore(store.path, read_only=True).write_analysis(call, call_id="x", source="x", model_name="m", model_sha256=SHA_A)
    with pytest.raises(StoreError, match="query failed.*no_such_table"):
        _write(store, call) and store.query("SELECT * FROM no_such_table")


def test_a_reader_on_a_missing_store_says_how_to_make_one(tmp_path):
    reader = CallStore(tmp_path / "none.duckdb", read_only=True)
    with pytest.raises(StoreNotFoundError, match=r"No call store at .*none\.duckdb.*analyze-calls DIR"):
        reader.calls()
    assert not (tmp_path / "none.duckdb").exists()  # a reader never creates one
    assert reader.analysed_call_ids(SHA_A) == set() and not reader.has_analysis("x", SHA_A)


def test_a_damaged_store_is_a_clear_store_error(tmp_path, call):
    bad = tmp_path / "calls.duckdb"
    bad.write_bytes(b"this is not a database" * 500)
    for s in (CallStore(bad), CallStore(bad, read_only=True)):
        with pytest.raises(StoreError, match=r"Cannot open the call store .*calls\.duckdb.*move it away") as info:
            s.calls() if s.read_only else _write(s, call)
        assert isinstance(info.value, SERError)
    assert bad.read_bytes().startswith(b"this is not")  # left as it was


def test_a_newer_store_is_refused_by_readers_and_writers(store, call):
    _write(store, call)
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    for s in (CallStore(store.path), CallStore(store.path, read_only=True)):
        with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than this ser_lib reads .*Upgrade"):
            s.calls() if s.read_only else _write(s, call)


def test_a_held_lock_gives_a_busy_error_after_the_timeout(store, call):
    import fcntl
    import os

    _write(store, call)
    fd = os.open(store.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer in the middle of its write
    try:
        with pytest.raises(StoreBusyError, match=r"stayed locked for 0 s"):
            CallStore(store.path, read_only=True, timeout=0.2).calls()
        with pytest.raises(StoreBusyError):
            _write(CallStore(store.path, timeout=0.2), call)
    finally:
        os.close(fd)
    # DuckDB's own lock (a program holding the file read-write without our lock file): readers retry, then say so
    con = duckdb.connect(str(store.path))
    try:
        with pytest.raises(StoreBusyError, match="DuckDB's file lock.*-readonly"):
            CallStore(store.path, read_only=True, timeout=0.3)._check_schema_for_reading()
    finally:
        con.close()
    assert len(CallStore(store.path, read_only=True).calls()) == 1


def test_export_parquet_and_csv_read_back(store, call, tmp_path):
    _write(store, call, alerts=[{"kind": "emotion_spike", "role": "customer", "start_s": 1.0, "end_s": 4.0}])
    _write(store, sample_analysis(duration_s=90.0, seed=5), call_id="two.wav")
    counts = store.counts()
    for fmt in ("parquet", "csv"):
        files = store.export(tmp_path / fmt, fmt=fmt)
        assert [f.name for f in files] == [f"{t}.{fmt}" for t in TABLES]
        for f, table in zip(files, TABLES, strict=True):
            reader = pd.read_parquet if fmt == "parquet" else pd.read_csv
            back = duckdb.sql(f"SELECT count(*) FROM '{f}'").fetchall()[0][0]
            assert back == counts[table], (fmt, table)
            if table in ("calls", "windows"):
                assert len(reader(f)) == counts[table]
        calls = pd.read_parquet(files[0]) if fmt == "parquet" else pd.read_csv(files[0])
        assert set(calls["call_id"]) == {"q1/call1.wav", "two.wav"} and "is_latest" in calls.columns
        assert not list((tmp_path / fmt).glob(".*.tmp"))  # no temporary file left
    with pytest.raises(StoreError, match="format 'xlsx'"):
        store.export(tmp_path, fmt="xlsx")


def test_model_identity_of_the_shipped_bundle():
    from ser_lib.bundle import ModelBundle

    bundle = ModelBundle.load("models/default")
    assert model_identity(bundle) == (bundle.name, bundle.card["files"]["model.onnx"])
