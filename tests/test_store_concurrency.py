"""The call store's concurrency, for real: one process writes calls while others read, none fails.

DuckDB lets one process open a file read-write or many read-only, never both at once; the store
takes turns with a cross-process lock (see ser_lib.store.store). These tests run separate Python
processes on one store file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

from ser_lib.store import CallStore
from ser_lib.store.sample_call import sample_analysis

WRITER = textwrap.dedent(
    """
    import sys
    from ser_lib.store import CallStore
    from ser_lib.store.sample_call import sample_analysis

    path, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = CallStore(path)
    results = [sample_analysis(duration_s=120.0, seed=i) for i in range(4)]
    for i in range(n):
        store.write_analysis(results[i % 4], call_id=f"{tag}/{i:03d}.wav", source="x", model_name="m", model_sha256="d" * 64)
    print("written", n, flush=True)
    """
)

READER = textwrap.dedent(
    """
    import json, sys, time
    from ser_lib.store import CallStore

    path, stop_at, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    store = CallStore(path, read_only=True)
    seen, errors, t0 = [], [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            with store.reader() as con:  # one batch: the calls and their windows agree (one snapshot)
                n = con.execute("SELECT count(*) FROM calls").fetchone()[0]
                orphans = con.execute("SELECT count(*) FROM calls c WHERE status = 'completed' AND n_windows <> "
                                      "(SELECT count(*) FROM windows w WHERE w.analysis_id = c.analysis_id)").fetchone()[0]
            seen.append(n)
            if orphans:
                errors.append(f"{orphans} call(s) without all their windows")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        if seen and seen[-1] >= stop_at:
            break
    print(json.dumps({"seen": seen, "errors": errors}))
    """
)


def _run(code: str, *args) -> subprocess.Popen:
    cmd = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_reader_process_sees_a_growing_store_while_a_writer_process_writes(tmp_path):
    path = tmp_path / "calls.duckdb"
    CallStore(path).write_analysis(sample_analysis(duration_s=60.0), call_id="first.wav", source="x", model_name="m",
                                   model_sha256="d" * 64)  # fmt: skip
    n = 30
    writer = _run(WRITER, path, n, "batch")
    readers = [_run(READER, path, n + 1, 120) for _ in range(2)]
    w_out, w_err = writer.communicate(timeout=300)
    assert writer.returncode == 0, w_err
    assert f"written {n}" in w_out
    for r in readers:
        out, err = r.communicate(timeout=300)
        assert r.returncode == 0, err
        report = json.loads(out.strip().splitlines()[-1])
        seen = report["seen"]
        assert report["errors"] == []
        assert seen == sorted(seen), "a reader saw the count go down"
        assert seen[-1] == n + 1  # it read until it saw every call
        assert len(set(seen)) >= 3, f"the reader saw too few states of the store while it grew: {sorted(set(seen))}"
    assert len(CallStore(path, read_only=True).calls()) == n + 1


def test_two_writer_processes_and_threads_take_turns(tmp_path):
    path = tmp_path / "calls.duckdb"
    writers = [_run(WRITER, path, 8, f"proc{k}") for k in range(2)]
    store = CallStore(path)
    result = sample_analysis(duration_s=60.0, seed=7)
    failures = []

    def write(k: int) -> None:
        try:
            for i in range(4):
                store.write_analysis(result, call_id=f"thread{k}/{i}.wav", source="x", model_name="m", model_sha256="d" * 64)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    assert failures == []
    ids = CallStore(path, read_only=True).calls()["call_id"]
    assert len(ids) == 2 * 8 + 2 * 4 and ids.is_unique


def test_a_writer_waits_for_a_program_holding_the_file_read_only_without_the_lock(tmp_path):
    """An analyst's read-only DuckDB session (no ser_lib, no lock file) delays a write; it does not fail it."""
    import time

    path = tmp_path / "calls.duckdb"
    store = CallStore(path)
    result = sample_analysis(duration_s=60.0)
    store.write_analysis(result, call_id="a.wav", source="x", model_name="m", model_sha256="d" * 64)
    holder = _run(
        "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1], read_only=True)\nprint('open', flush=True)\n"
        "time.sleep(1.5)\ncon.close()\n",
        path,
    )
    assert holder.stdout.readline().strip() == "open"
    t0 = time.monotonic()
    store.write_analysis(result, call_id="b.wav", source="x", model_name="m", model_sha256="d" * 64)
    waited = time.monotonic() - t0
    holder.communicate(timeout=60)
    assert waited > 0.5, f"the write did not wait for the other program ({waited:.2f} s)"
    assert sorted(CallStore(path, read_only=True).calls()["call_id"]) == ["a.wav", "b.wav"]
