"""The call store from the command line: analyze-call writes to it; calls list / info / export read it."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
import soundfile as sf

from call_audio import SR, make_call
from ser_lib.cli import main
from ser_lib.store import CallStore
from ser_lib.store.sample_call import sample_analysis


def _cli(*args, capsys):
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A folder with one short stereo call (agent left, customer right), a broken file and a metadata CSV."""
    root = tmp_path_factory.mktemp("archive")
    (root / "billing").mkdir()
    turns = [("agent", "neutral", 0.5, 3.0), ("customer", "angry", 4.0, 4.0), ("agent", "neutral", 8.5, 3.0)]
    sf.write(root / "billing" / "call1.wav", make_call(turns, total_s=12.0).T, SR)
    (root / "broken.wav").write_bytes(b"RIFF this is not audio" * 20)
    (root / "calls.csv").write_text(
        "file,agent,queue,started_at,customer,site\nbilling/call1.wav,alice,billing,2025-05-01T10:15:00,C-9,leeds\n"
    )
    return root


def test_analyze_call_writes_to_the_store_and_replaces_on_a_second_run(archive, tmp_path, capsys):
    store = tmp_path / "s" / "calls.duckdb"
    args = ["analyze-call", archive / "billing" / "call1.wav", "--vad", "energy", "--store", store,
            "--metadata", archive / "calls.csv"]  # fmt: skip
    code, out, err = _cli(*args, capsys=capsys)
    assert code == 0, err
    assert "stored as billing/call1.wav@" in out and str(store) in out
    reader = CallStore(store, read_only=True)
    row = reader.calls().iloc[0]
    assert (row.call_id, row.agent, row.queue, row.customer_ref) == ("billing/call1.wav", "alice", "billing", "C-9")
    assert json.loads(row.extra) == {"site": "leeds"} and row.started_at == pd.Timestamp(2025, 5, 1, 10, 15)
    assert row.status == "completed" and row.model_name == "default" and row.duration_s == pytest.approx(12.0, abs=0.01)
    assert row.source == str((archive / "billing" / "call1.wav").resolve())
    assert row.n_windows == reader.counts()["windows"] > 0

    code, _, err = _cli(*args, capsys=capsys)  # the same call, the same model: replaced
    assert code == 0, err
    assert reader.counts()["calls"] == 1 and reader.counts()["windows"] == row.n_windows


def test_analyze_call_no_store_writes_nothing_and_call_id_names_the_call(archive, tmp_path, capsys):
    store = tmp_path / "calls.duckdb"
    wav = archive / "billing" / "call1.wav"
    code, _, err = _cli("analyze-call", wav, "--vad", "energy", "--store", store, "--no-store", "--quiet", capsys=capsys)
    assert code == 0, err
    assert not store.exists()
    pattern = r"(?P<queue>[a-z]+)(?P<n>\d)\.wav"
    code, _, err = _cli("analyze-call", wav, "--vad", "energy", "--store", store, "--call-id", "CA123", "--name-pattern",
                        pattern, "--quiet", capsys=capsys)  # fmt: skip
    assert code == 0, err
    row = CallStore(store, read_only=True).calls().iloc[0]
    assert (row.call_id, row.queue, json.loads(row.extra)) == ("CA123", "call", {"n": "1"})


def test_a_call_that_cannot_be_analysed_is_stored_as_failed(archive, tmp_path, capsys):
    store = tmp_path / "calls.duckdb"
    code, _, err = _cli("analyze-call", archive / "broken.wav", "--store", store, capsys=capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    row = CallStore(store, read_only=True).calls().iloc[0]
    assert row.status == "failed" and row.error and row.error in err


def test_a_newer_store_stops_analyze_call_before_the_work(archive, tmp_path, capsys):
    store = tmp_path / "calls.duckdb"
    CallStore(store).check_writable()
    con = duckdb.connect(str(store))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    code, out, err = _cli("analyze-call", archive / "billing" / "call1.wav", "--store", store, capsys=capsys)
    assert code == 2 and "schema version 99, newer than this ser_lib reads" in err and "Upgrade ser_lib" in err
    assert out == ""  # nothing was analysed


def test_calls_list_info_and_export(tmp_path, capsys):
    from ser_lib.store import CallMetadata

    store = CallStore(tmp_path / "calls.duckdb")
    for i, queue in enumerate(["billing", "sales", "billing"]):
        store.write_analysis(sample_analysis(duration_s=90.0, seed=i), call_id=f"q/{i}.wav", source="x", model_name="m",
                             model_sha256="a" * 64, metadata=CallMetadata(agent=f"ag{i}", queue=queue))  # fmt: skip
    code, out, err = _cli("calls", "list", "--store", store.path, "--queue", "billing", capsys=capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["call_id", "started_at", "agent", "queue"] and len(lines) == 3
    assert "q/2.wav" in lines[1] and "q/0.wav" in lines[2] and "sales" not in out

    code, out, _ = _cli("calls", "info", "--store", store.path, capsys=capsys)
    assert code == 0 and "schema version 2" in out and "calls" in out and " 3" in out

    for fmt in ("parquet", "csv"):
        code, out, err = _cli("calls", "export", "--format", fmt, "--store", store.path, "--out", tmp_path / fmt, capsys=capsys)
        assert code == 0, err
        assert out.count("wrote ") == 7
        read = pd.read_parquet if fmt == "parquet" else pd.read_csv
        calls = read(tmp_path / fmt / f"calls.{fmt}")
        assert sorted(calls["call_id"]) == ["q/0.wav", "q/1.wav", "q/2.wav"]
        n = duckdb.sql(f"SELECT count(*) FROM '{tmp_path / fmt / f'windows.{fmt}'}'").fetchall()[0][0]
        assert n == store.counts()["windows"]

    code, _, err = _cli("calls", "list", "--store", tmp_path / "none.duckdb", capsys=capsys)
    assert code == 2 and "No call store at" in err and "analyze-calls" in err
