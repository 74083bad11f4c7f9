"""The live service's commands as a user runs them: ``python -m ser_lib serve`` and ``simulate-calls``,
each in its own process (the shipped model; a 12 s generated call)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
import soxr

from call_audio import SR, make_call
from ser_lib.service.server import free_port

ROOT = Path(__file__).resolve().parent.parent
TURNS = [("agent", "neutral", 0.5, 3.5), ("customer", "angry", 4.6, 4.0), ("agent", "neutral", 9.0, 2.5)]


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", "ser_lib", *args]


def test_serve_refuses_to_listen_beyond_this_machine_without_a_token():
    out = subprocess.run(_python("serve", "--host", "0.0.0.0"), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2
    assert "reachable from other machines" in out.stderr and "--token" in out.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``python -m ser_lib serve`` on a free port, writing results to a temporary folder."""
    base = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = open(base / "serve.log", "wb")
    proc = subprocess.Popen(
        _python(
            "serve",
            "--port",
            str(port),
            "--results",
            str(base / "results"),
            "--store",
            str(base / "calls.duckdb"),
            "--log-level",
            "warning",
        ),  # fmt: skip
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if json.loads(r.read())["status"] == "ok":
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serve did not start: {(base / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield {"port": port, "proc": proc, "base": base, "log": base / "serve.log"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_simulated_calls_are_analysed_and_ctrl_c_finishes_the_active_ones(served, tmp_path):
    call = tmp_path / "call.wav"
    sf.write(call, soxr.resample(make_call(TURNS, total_s=12.0).T, SR, 8000), 8000, subtype="ULAW")
    url = f"ws://127.0.0.1:{served['port']}/twilio"
    out = subprocess.run(
        _python("simulate-calls", "--url", url, "--calls", "2", "--speed", "0", str(call)),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert sum("12.0 of 12.0 s sent" in line for line in lines) == 2
    assert sum(line.strip().startswith("completed; agent: mostly") and "customer: mostly" in line for line in lines) == 2
    # a call in progress when the service is stopped is finished with what arrived and written
    live = subprocess.Popen(
        _python("simulate-calls", "--url", url, "--speed", "1", str(call)), cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    time.sleep(4.0)
    served["proc"].send_signal(signal.SIGINT)
    assert served["proc"].wait(60) == 130  # interrupted, as every command reports Ctrl-C, after a clean shutdown
    live.communicate(timeout=60)
    saved = [json.loads(p.read_text()) for p in (served["base"] / "results").glob("*.json")]
    assert sorted(s["status"] for s in saved) == ["completed", "completed", "ended_abruptly"]
    cut = next(s for s in saved if s["status"] == "ended_abruptly")
    assert 2.0 < cut["duration_s"] < 12.0 and cut["source"] == "twilio" and cut["timeline"]["windows"]["columns"][0] == "channel"
    assert all(s["summary"]["parties"]["customer"]["speech_s"] > 0 for s in saved if s["status"] == "completed")
    # the call store holds the same three calls, the cut one marked as such
    from ser_lib.store import CallStore

    rows = CallStore(served["base"] / "calls.duckdb", read_only=True).query("SELECT status, origin, duration_s FROM calls")
    assert sorted(rows["status"]) == ["completed", "completed", "ended_abruptly"] and set(rows["origin"]) == {"live"}
    assert float(rows.loc[rows["status"] == "ended_abruptly", "duration_s"].iloc[0]) == pytest.approx(cut["duration_s"], abs=0.01)
