"""``analyze-calls --engine ray``: a real local Ray (``ray.init(num_cpus=2)``, one per module).

The Ray engine writes the same store rows as the local engine; a worker killed in the middle of a
run loses no call and writes none twice; a call whose worker dies every time is recorded as failed
after its attempts and the run goes on; a run cut short resumes with only the rest.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ser_lib.bundle import ModelBundle
from ser_lib.calls.pool import AnalysisSpec, analyse_local, jobs_for
from ser_lib.calls.ray_engine import RayPool, analyse_on_ray
from ser_lib.cli import main
from ser_lib.store import CallStore
from test_analyze_calls_store import assert_same_rows, make_archive, run_engine, store_rows

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-cluster.txt")

ALL = ["broken.wav", "call0.wav", "call1.wav", "call2.wav", "q2/call3.wav"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (starting one takes seconds), shut down after it."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive(tmp_path_factory.mktemp("archive"), calls=4, seconds=5.0)


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory):
    """The rows of the local engine (one process) over the same archive."""
    path = tmp_path_factory.mktemp("ref") / "calls.duckdb"
    run_engine(archive, path, lambda jobs, spec: analyse_local(jobs, spec=spec, workers=1))
    return store_rows(path)


def test_ray_gives_the_same_store_rows_as_the_local_engine(local_ray, archive, reference, tmp_path):
    seen = []

    def on_ray(jobs, spec):
        for outcome in analyse_on_ray(jobs, spec=spec, workers=2):
            seen.append(outcome)
            yield outcome

    report = run_engine(archive, tmp_path / "ray.duckdb", on_ray)
    assert (report.analysed, report.failed, report.skipped) == (5, 1, 0)
    assert len({o.worker for o in seen}) == 2  # both actors worked
    assert_same_rows(store_rows(tmp_path / "ray.duckdb"), reference)
    assert ray.is_initialized()  # the engine leaves a Ray it did not start running


def test_a_worker_killed_mid_run_loses_nothing_and_repeats_nothing(local_ray, archive, reference, tmp_path):
    spec = AnalysisSpec(model=str(ModelBundle.load(None).path))
    pool = RayPool(spec, workers=2)
    pids = set(ray.get([a.pid.remote() for a in pool.actors]))
    killed, seen = [], []

    def with_a_kill(jobs, _spec):
        for outcome in pool.run(jobs):
            seen.append(outcome)
            if not killed:  # the other actor is still busy with its first call: kill its process
                other = next(p for p in pids if not outcome.worker.endswith(f":{p}"))
                os.kill(other, signal.SIGKILL)
                killed.append(other)
            yield outcome

    try:
        report = run_engine(archive, tmp_path / "ray.duckdb", with_a_kill)
    finally:
        pool.close()
    assert killed and pool.replaced == 1
    assert sorted(o.attempts for o in seen) == [1, 1, 1, 1, 2]  # the call the dead worker held was handed out again
    assert (report.analysed, report.failed) == (5, 1)  # only broken.wav failed: the killed call was analysed again
    calls = CallStore(tmp_path / "ray.duckdb", read_only=True).query("SELECT call_id, count(*) AS n FROM calls GROUP BY 1")
    assert sorted(calls["call_id"]) == ALL and (calls["n"] == 1).all()
    assert_same_rows(store_rows(tmp_path / "ray.duckdb"), reference)


def test_a_call_that_kills_its_worker_every_time_is_recorded_as_failed(local_ray, archive, tmp_path):
    """call1.wav's worker is killed whenever it holds it: after two attempts it is a failure, the rest goes on."""
    spec = AnalysisSpec(model=str(ModelBundle.load(None).path))
    pool = RayPool(spec, workers=2, max_attempts=2)
    stop, killed = threading.Event(), []

    def killer() -> None:
        while not stop.is_set():
            actor = pool.holding.get("call1.wav")
            if actor is not None and id(actor) not in killed:
                killed.append(id(actor))
                ray.kill(actor)
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        outcomes = {o.call_id: o for o in pool.run(jobs_for(sorted(p for p in archive.rglob("*.wav")), archive))}
    finally:
        stop.set()
        thread.join()
        pool.close()
    assert sorted(outcomes) == ALL and len(killed) == 2 and pool.replaced == 2
    poisoned = outcomes["call1.wav"]
    assert poisoned.failed and poisoned.attempts == 2 and "died 2 times" in poisoned.error
    assert sorted(c for c, o in outcomes.items() if o.failed) == ["broken.wav", "call1.wav"]


def test_cli_engine_ray_resumes_with_only_the_rest(local_ray, archive, reference, tmp_path, capsys):
    args = ["analyze-calls", str(archive), "--store", str(tmp_path / "s.duckdb"), "--engine", "ray", "--workers", "2"]
    assert main([*args, "--limit", "2", "--no-progress"]) == 1  # broken.wav is among the first two
    assert "Analysed 2 call(s) (1 failed, 0 already done)" in capsys.readouterr().out
    assert main(args) == 0  # with the progress bar
    captured = capsys.readouterr()
    assert "Analysed 3 call(s) (0 failed, 2 already done)" in captured.out
    assert "5/5" in captured.err  # the bar reached every call
    assert_same_rows(store_rows(tmp_path / "s.duckdb"), reference)
