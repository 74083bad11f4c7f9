"""``analyze-calls`` into the call store on the local engine: rows, metadata, resume, retries, workers.

A real DuckDB store and the shipped model (``models/default``) over short generated calls
(tests/call_audio.py). The Ray engine's tests (tests/test_ray_engine.py) compare against the same
rows (:func:`store_rows`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from call_audio import SR, make_call
from ser_lib.bundle import ModelBundle
from ser_lib.calls import plan_archive, run_archive
from ser_lib.calls.pool import AnalysisSpec, analyse_local, jobs_for
from ser_lib.cli import main
from ser_lib.store import TABLES, CallStore, model_identity, read_metadata_csv

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Columns that differ between two runs of the same analysis (when it was written).
WHEN = {"analysed_at"}


def make_archive(folder: Path, *, calls: int = 3, seconds: float = 6.0, broken: bool = True) -> Path:
    """``calls`` short two-party calls in ``folder`` (one in a sub-folder), a broken file, and calls.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "q2").mkdir(exist_ok=True)
    names = []
    for i in range(calls):
        style = "angry" if i % 2 else "neutral"
        x = make_call([("agent", "neutral", 0.3, 2.2), ("customer", style, 2.8, seconds - 3.2)], total_s=seconds, seed=i)
        name = f"q2/call{i}.wav" if i == calls - 1 else f"call{i}.wav"
        sf.write(folder / name, x.T, SR)
        names.append(name)
    if broken:
        (folder / "broken.wav").write_text("not audio")
    rows = ["file,agent,queue,started_at,customer,region"]
    rows += [f"{n},agent{i % 2},billing,2026-05-0{i + 1}T10:00:00,C{i},north" for i, n in enumerate(names)]
    (folder / "calls.csv").write_text("\n".join(rows) + "\n")
    return folder


def store_rows(path: Path) -> dict[str, pd.DataFrame]:
    """Every table of the store at ``path``, without the write time, in a stable order."""
    store = CallStore(path, read_only=True)
    out = {}
    for table in TABLES:
        frame = store.query(f"SELECT * FROM {table}")
        frame = frame.drop(columns=[c for c in WHEN if c in frame.columns])
        out[table] = frame.sort_values(list(frame.columns)[:6]).reset_index(drop=True)
    return out


def assert_same_rows(a: dict, b: dict) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=False, rtol=1e-5, atol=1e-6, obj=table)


def run_engine(archive: Path, store_path: Path, outcomes_of, **plan_kwargs):
    """Plan ``archive`` against the store, run ``outcomes_of(jobs, spec)``, write through run_archive (with calls.csv)."""
    bundle = ModelBundle.load(None)
    name, sha = model_identity(bundle)
    store = CallStore(store_path)
    plan = plan_archive(archive, store=store, model_sha256=sha, **plan_kwargs)
    spec = AnalysisSpec(model=str(bundle.path))
    outcomes = outcomes_of(jobs_for(plan.todo, plan.root), spec)
    meta = read_metadata_csv(archive / "calls.csv")
    return run_archive(plan, outcomes, store=store, model_name=name, model_sha256=sha, labels=bundle.labels, metadata=meta.get)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def one_process(archive, tmp_path_factory) -> Path:
    """The archive analysed by the local engine in this process: the reference rows."""
    path = tmp_path_factory.mktemp("ref") / "calls.duckdb"
    report = run_engine(archive, path, lambda jobs, spec: analyse_local(jobs, spec=spec, workers=1))
    assert (report.analysed, report.failed, report.skipped) == (4, 1, 0)
    return path


def test_every_call_is_in_the_store_once_with_its_metadata(one_process):
    calls = CallStore(one_process, read_only=True).query("SELECT * FROM calls ORDER BY call_id")
    assert calls["call_id"].tolist() == ["broken.wav", "call0.wav", "call1.wav", "q2/call2.wav"]
    assert calls["status"].tolist() == ["failed", "completed", "completed", "completed"]
    assert "Could not read" in calls["error"].iloc[0]
    done = calls[calls["status"] == "completed"]
    assert done["agent"].tolist() == ["agent0", "agent1", "agent0"] and set(done["queue"]) == {"billing"}
    assert done["customer_ref"].tolist() == ["C0", "C1", "C2"]
    assert done["started_at"].dt.day.tolist() == [1, 2, 3]
    assert [json.loads(e) for e in done["extra"]] == [{"region": "north"}] * 3
    assert (done["duration_s"].round(1) == 6.0).all() and (done["channels"] == 2).all()
    windows = CallStore(one_process, read_only=True).query("SELECT analysis_id, count(*) AS n FROM windows GROUP BY 1")
    assert len(windows) == 3 and (windows["n"] > 0).all()  # every analysed call has its windows, the failed none


def test_two_worker_processes_give_the_same_rows_as_one(archive, one_process, tmp_path):
    report = run_engine(archive, tmp_path / "two.duckdb", lambda jobs, spec: analyse_local(jobs, spec=spec, workers=2))
    assert (report.analysed, report.failed) == (4, 1)
    assert_same_rows(store_rows(tmp_path / "two.duckdb"), store_rows(one_process))


def test_cli_writes_the_store_and_the_csv_and_resumes_after_a_limit(archive, one_process, tmp_path, capsys):
    store, out = tmp_path / "s.duckdb", tmp_path / "r.csv"
    args = ["analyze-calls", str(archive), "--store", str(store), "--no-progress"]
    assert main([*args, "--limit", "2"]) == 1  # broken.wav is first in order and fails: exit 1
    assert "Analysed 2 call(s) (1 failed, 0 already done)" in capsys.readouterr().out
    assert main([*args, "--out", str(out)]) == 1  # the CSV is new and wants all four (broken.wav fails again)
    printed = capsys.readouterr().out
    assert "Analysed 4 call(s)" in printed and str(out) in printed
    assert main(args) == 0
    assert "All 4 calls under" in capsys.readouterr().out
    assert_same_rows(store_rows(store), store_rows(one_process))
    rows = pd.read_csv(out)
    assert sorted(set(rows["file"])) == ["broken.wav", "call0.wav", "call1.wav", "q2/call2.wav"]
    assert len(rows) == 1 + 3 * 2  # one error row, one row per party of the others


def test_an_interrupted_run_resumes_with_only_the_rest(tmp_path):
    """The driver is killed (SIGKILL) after its first call is stored; the rerun analyses only the others."""
    archive = make_archive(tmp_path / "a", calls=4, broken=False)
    store = tmp_path / "s.duckdb"
    cmd = [sys.executable, "-m", "ser_lib", "analyze-calls", str(archive), "--store", str(store), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reader, sha = CallStore(store, read_only=True), _sha()
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if reader.exists() and len(reader.analysed_call_ids(sha)) >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    first = reader.analysed_call_ids(sha)
    assert 1 <= len(first) < 4
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Analysed {4 - len(first)} call(s) (0 failed, {len(first)} already done)" in done.stdout
    calls = reader.query("SELECT call_id, count(*) AS n FROM calls GROUP BY call_id")
    assert sorted(calls["call_id"]) == ["call0.wav", "call1.wav", "call2.wav", "q2/call3.wav"] and (calls["n"] == 1).all()


def test_retry_errors_analyses_only_the_failed_call_again(tmp_path, capsys):
    archive = make_archive(tmp_path / "a", calls=1)
    store = tmp_path / "s.duckdb"
    args = ["analyze-calls", str(archive), "--store", str(store), "--no-progress"]
    assert main(args) == 1
    capsys.readouterr()
    x = make_call([("customer", "neutral", 0.2, 3.0)], total_s=4.0)
    (archive / "broken.wav").unlink()
    sf.write(archive / "broken.wav", x.T, SR)  # fixed
    assert main(args) == 0 and "already in" in capsys.readouterr().out  # a failure counts as done ...
    assert main([*args, "--retry-errors"]) == 0  # ... until --retry-errors
    assert "Analysed 1 call(s) (0 failed, 1 already done)" in capsys.readouterr().out
    calls = CallStore(store, read_only=True).query("SELECT call_id, status FROM calls ORDER BY 1")
    assert calls.values.tolist() == [["broken.wav", "completed"], ["q2/call0.wav", "completed"]]


def test_name_pattern_metadata_and_clear_errors(tmp_path, capsys):
    archive = tmp_path / "a"
    archive.mkdir()
    x = make_call([("customer", "neutral", 0.2, 2.5)], total_s=3.0)
    sf.write(archive / "billing_alice_20260501T101500.wav", x.T, SR)
    store = tmp_path / "s.duckdb"
    pattern = r"(?P<queue>[^_]+)_(?P<agent>[^_]+)_(?P<started_at>\d{8}T\d{6})"
    base = ["analyze-calls", str(archive), "--store", str(store), "--no-progress"]
    assert main([*base, "--name-pattern", pattern]) == 0
    row = CallStore(store, read_only=True).query("SELECT queue, agent, started_at FROM calls").iloc[0]
    assert (row["queue"], row["agent"], str(row["started_at"])) == ("billing", "alice", "2026-05-01 10:15:00")
    capsys.readouterr()
    assert main([*base, "--name-pattern", "no groups"]) == 2
    assert "has no named groups" in capsys.readouterr().err
    assert main([*base, "--address", "auto"]) == 2
    assert "--address auto is for --engine ray" in capsys.readouterr().err


def test_worker_processes_use_the_commands_uncertainty_threshold(tmp_path):
    """--uncertain-below is resolved by the command and reaches every worker process."""
    archive = tmp_path / "a"
    archive.mkdir()
    for i in range(2):
        sf.write(archive / f"c{i}.wav", make_call([("customer", "neutral", 0.2, 3.0)], total_s=3.5, seed=i).T, SR)
    store = tmp_path / "s.duckdb"
    args = ["analyze-calls", str(archive), "--store", str(store), "--workers", "2", "--uncertain-below", "0.97"]
    assert main([*args, "--no-progress"]) == 0
    settings = CallStore(store, read_only=True).query("SELECT settings FROM calls")["settings"]
    assert [json.loads(s)["uncertain_below"] for s in settings] == [0.97, 0.97]


def test_engine_ray_without_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    archive = tmp_path / "a"
    archive.mkdir()
    sf.write(archive / "c.wav", make_call([("customer", "neutral", 0.2, 2.0)], total_s=2.5).T, SR)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    args = ["analyze-calls", str(archive), "--store", str(tmp_path / "s.duckdb"), "--engine", "ray", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--engine ray needs Ray, which is not installed: pip install -r requirements-cluster.txt" in err
    assert not CallStore(tmp_path / "s.duckdb", read_only=True).analysed_call_ids(_sha())  # nothing written


def test_engine_ray_with_no_cluster_at_the_address_says_how_to_start_one(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-cluster.txt")
    if Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster runs on this machine: --address auto would join it")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    archive = tmp_path / "a"
    archive.mkdir()
    sf.write(archive / "c.wav", make_call([("customer", "neutral", 0.2, 2.0)], total_s=2.5).T, SR)
    args = ["analyze-calls", str(archive), "--store", str(tmp_path / "s.duckdb"), "--engine", "ray", "--address", "auto"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Could not reach the Ray cluster at --address auto" in err and "ray start --head" in err


def _sha() -> str:
    return model_identity(ModelBundle.load(None))[1]
