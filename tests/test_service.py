"""The live call service end to end: a real uvicorn server on a free port, real WebSocket clients.

- the shipped ``models/default`` in ``--complete-chunks`` mode: a Twilio stream and raw streams give
  exactly the analysis ``analyze-call`` gives on the same audio;
- a tiny trained model (decisive, fast) in the default live mode: results within the library's
  stated tolerance of the offline analysis, the events (schema, order, alerts), two calls at once,
  every fault (disconnect, malformed JSON, bad base64, unknown event, unsupported format, too many bad
  messages, too many calls, too big a message, an analysis that fails), back-pressure, the token,
  the REST endpoints and the metrics.

Calls are 25 s, streamed as fast as the service takes them (``speed=0``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from call_audio import SR, make_call, tiny_bundle
from ser_lib.bundle import ModelBundle
from ser_lib.calls import analyze_call
from ser_lib.service import AlertSettings, ServiceSettings
from ser_lib.service.analysis import CallAnalyzer
from ser_lib.service.codecs import alaw_encode, decode
from ser_lib.service.server import BackgroundServer
from ser_lib.service.simulator import load_recording, stream_call, twilio_start

#: The customer is angry in their second turn (as in test_timeline); the calm call has no anger.
ANGRY = [
    ("agent", "neutral", 0.5, 4.0),
    ("customer", "neutral", 5.2, 5.0),
    ("agent", "neutral", 10.8, 3.0),
    ("customer", "angry", 14.5, 6.0),
    ("agent", "neutral", 21.2, 3.0),
]
CALM = [
    ("agent", "neutral", 0.8, 5.0),
    ("customer", "neutral", 6.5, 6.0),
    ("agent", "neutral", 13.5, 4.0),
    ("customer", "neutral", 18.5, 5.0),
]
TOTAL_S = 25.0
#: The library's stated live-vs-offline tolerance on a window's probabilities (tests/test_timeline.py).
STREAM_TOLERANCE = 0.1
TOKEN = "test-token-0123456789"
ANALYZE_CALL_KEYS = {
    "source",
    "model",
    "duration_s",
    "roles",
    "labels",
    "settings",
    "no_speech",
    "message",
    "segments",
    "summary",
}


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict:
    """The two calls as 16 kHz arrays and as 8 kHz stereo mu-law WAV files (left agent, right customer)."""
    folder = tmp_path_factory.mktemp("service_calls")
    out = {}
    for name, turns, seed in (("angry", ANGRY, 0), ("calm", CALM, 3)):
        x = make_call(turns, total_s=TOTAL_S, seed=seed)
        path = folder / f"{name}8k.wav"
        sf.write(path, soxr.resample(x.T, SR, 8000), 8000, subtype="ULAW")
        out[name], out[f"{name}_path"] = x, path
    return out


@pytest.fixture(scope="module")
def default_bundle():
    return ModelBundle.load()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")


@pytest.fixture(scope="module")
def exact_server(default_bundle, tmp_path_factory):
    """The shipped model in two analysis worker processes, waiting for complete encoder chunks."""
    base = tmp_path_factory.mktemp("exact_results")
    settings = ServiceSettings(results=base, store=base / "calls.duckdb", complete_chunks=True, processes=2)
    with BackgroundServer(settings, bundle=default_bundle) as server:
        yield server


@pytest.fixture(scope="module")
def live_server(tiny, tmp_path_factory):
    base = tmp_path_factory.mktemp("live_results")
    settings = ServiceSettings(
        results=base,
        store=base / "calls.duckdb",
        alerts=AlertSettings(sustained_s=3.0),
        max_queued_s=1.0,
        max_bad_messages=5,
        idle_timeout_s=3.0,
    )
    with BackgroundServer(settings, bundle=tiny) as server:
        yield server


@pytest.fixture(scope="module")
def strict_server(tiny, tmp_path_factory):
    """A token, one call at a time, 2 KiB messages."""
    settings = ServiceSettings(
        results=tmp_path_factory.mktemp("strict_results"), token=TOKEN, max_calls=1, max_message_bytes=2048
    )
    with BackgroundServer(settings, bundle=tiny) as server:
        yield server


@pytest.fixture(scope="module")
def offline_tiny(tiny, calls) -> dict:
    return {name: analyze_call(calls[f"{name}_path"], bundle=tiny) for name in ("angry", "calm")}


# --- clients -------------------------------------------------------------------------------------------


def http(server, path: str, *, token: str | None = None) -> tuple[int, dict | str, dict]:
    req = urllib.request.Request(server.url + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body, status, headers = r.read().decode(), r.status, dict(r.headers)
    except urllib.error.HTTPError as exc:
        body, status, headers = exc.read().decode(), exc.code, dict(exc.headers)
    try:
        return status, json.loads(body), headers
    except json.JSONDecodeError:
        return status, body, headers


def stored(server, call_id: str) -> tuple[dict, dict]:
    """The call's row in the service's call store, and its table row counts (read-only, as the dashboard reads)."""
    from ser_lib.store import CallStore

    store = CallStore(server.settings.store, read_only=True)
    rows = store.query("SELECT * FROM calls WHERE call_id = ?", [call_id]).to_dict(orient="records")
    assert len(rows) == 1, rows
    aid = rows[0]["analysis_id"]
    counts = {
        t: int(store.query(f"SELECT count(*) AS n FROM {t} WHERE analysis_id = ?", [aid])["n"].iloc[0])
        for t in ("windows", "segments", "alerts", "party_summaries")
    }
    return rows[0], counts


def call_json(server, call_id: str, *, timeline: bool = False, token: str | None = None) -> dict:
    status, data, _ = http(server, f"/calls/{call_id}" + ("?timeline=1" if timeline else ""), token=token)
    assert status == 200, data
    return data


def window_rows(record: dict) -> list[dict]:
    """The windows of a ``/calls/{id}?timeline=1`` record as dicts, by channel and start."""
    table = record["timeline"]["windows"]
    rows = [dict(zip(table["columns"], r, strict=True)) for r in table["rows"]]
    return sorted(rows, key=lambda r: (r["channel"], r["start_s"]))


def wait_until_final(server, call_id: str, *, token: str | None = None, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = call_json(server, call_id, token=token)
        if data["status"] != "active":
            return data
        time.sleep(0.1)
    raise AssertionError(f"call {call_id} still active after {timeout} s")


def media(track: str, k: int, payload: str, sid: str = "MZ1", seq: int = 0) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {"track": track, "chunk": str(k + 1), "timestamp": str(20 * k), "payload": payload},
            "streamSid": sid,
        }
    )


def twilio_messages(recording, call_id: str, *, frames: int | None = None, custom: dict | None = None, tracks=None) -> list[str]:
    """A Twilio stream as message texts: connected, start, media (both tracks per 20 ms), stop."""
    tracks = tracks or list(recording.tracks)
    out = [
        '{"event": "connected", "protocol": "Call", "version": "1.0.0"}',
        json.dumps(twilio_start(call_id, "MZ1", tracks, custom or {})),
    ]
    seq = 1
    for k in range(frames or recording.frames):
        for t in tracks:
            seq += 1
            out.append(media(t, k, recording.tracks[t][k], seq=seq))
    out.append(json.dumps({"event": "stop", "sequenceNumber": str(seq + 1), "stop": {"accountSid": "AC1", "callSid": call_id}}))
    return out


async def exchange(url: str, messages, *, headers=None, linger: float = 30.0) -> tuple[list[dict], int | None]:
    """Send ``messages`` (text or bytes) while reading what the service sends, until it closes the
    connection (or ``linger`` seconds after the last message); returns (events, close code)."""
    events = []
    async with connect(url, additional_headers=headers, open_timeout=30) as ws:

        async def read():
            try:
                async for text in ws:
                    events.append(json.loads(text))
            except ConnectionClosed:
                pass

        reader = asyncio.create_task(read())
        try:
            for m in messages:
                await ws.send(m)
        except ConnectionClosed:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(reader), linger)
        except TimeoutError:
            pass
    await reader
    return events, ws.close_code


def raw_frames(x: np.ndarray, *, encoding: str, frame_s: float = 0.1, sr: int) -> tuple[list[bytes], np.ndarray]:
    """``x`` [shape=(channels, n)] as raw frames of ``encoding``, and the samples the service decodes from them."""
    if encoding == "pcm_s16le":
        data = np.round(x.T * 32768).clip(-32768, 32767).astype("<i2").tobytes()
    elif encoding == "alaw":
        data = alaw_encode(x[0]) if x.shape[0] == 1 else bytes(np.frombuffer(alaw_encode(x.T.reshape(-1)), np.uint8))
    else:
        data = x.T.astype("<f4").tobytes()
    width = {"pcm_s16le": 2, "alaw": 1, "float32": 4}[encoding] * x.shape[0]
    step = int(frame_s * sr) * width
    return [data[i : i + step] for i in range(0, len(data), step)], decode(data, encoding=encoding, channels=x.shape[0])


async def follow(url: str, done, *, timeout: float = 90.0) -> list[dict]:
    """Events from an event WebSocket until ``done(events)`` is true."""
    events: list[dict] = []
    async with connect(url, open_timeout=30) as ws:
        async with asyncio.timeout(timeout):
            async for text in ws:
                events.append(json.loads(text))
                if done(events):
                    break
    return events


def summaries_for(*ids):
    return lambda evs: {e["call_id"] for e in evs if e["type"] == "call_summary"} >= set(ids)


# --- offline and live agree ----------------------------------------------------------------------------


def assert_same(a, b, *, atol: float = 1e-5, where: str = "") -> None:
    """``a`` and ``b`` (JSON values) equal, numbers within ``atol`` (the resampler's last bits differ
    between 20 ms packets and 30 s blocks), everything else exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], atol=atol, where=f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, atol=atol, where=f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=atol), where
    else:
        assert a == b, where


def _same_analysis(live: dict, offline) -> None:
    expected = json.loads(offline.to_json())
    assert set(live) >= ANALYZE_CALL_KEYS  # the JSON of analyze-call, plus the service's fields
    for key in ANALYZE_CALL_KEYS - {"source"}:
        assert_same(live[key], expected[key], where=key)


def test_a_twilio_stream_gives_exactly_the_offline_analysis(exact_server, default_bundle, calls):
    recording = load_recording(calls["angry_path"])
    report = asyncio.run(stream_call(exact_server.ws_url + "/twilio", recording, speed=0))
    assert report.complete and report.sent_frames == recording.frames and report.errors == []
    live = call_json(exact_server, report.call_id, timeline=True)
    offline = analyze_call(calls["angry_path"], bundle=default_bundle)
    assert live["status"] == "completed" and live["source"] == "twilio" and live["call_id"] == report.call_id
    _same_analysis(live, offline)  # segments, summary, settings, duration: identical
    rows = window_rows(live)
    expected = offline.windows.sort_values(["channel", "start_s"])
    assert [(r["channel"], r["start_s"], r["end_s"], r["emotion"]) for r in rows] == [
        (int(w.channel), round(w.start_s, 4), round(w.end_s, 4), w.emotion) for w in expected.itertuples()
    ]
    pcols = [f"p_{lab}" for lab in default_bundle.labels]
    np.testing.assert_allclose([[r[c] for c in pcols] for r in rows], expected[pcols].to_numpy(), atol=1e-4)
    assert live["parties"] == [
        {"channel": 0, "role": "agent", "track": "outbound"},
        {"channel": 1, "role": "customer", "track": "inbound"},
    ]
    saved = [json.loads(p.read_text()) for p in exact_server.settings.results.glob("*.json")]
    mine = [s for s in saved if s["call_id"] == report.call_id]
    assert len(mine) == 1 and mine[0]["status"] == "completed" and mine[0]["segments"] == live["segments"]
    assert report.call_id not in str(sorted(p.name for p in exact_server.settings.results.iterdir()))  # names are the service's
    # and the call store has it, written by the analysis worker process that held the call
    row, counts = stored(exact_server, report.call_id)
    assert (row["origin"], row["status"], row["source"]) == ("live", "completed", f"twilio:{report.call_id}")
    assert counts["windows"] == len(rows) and counts["segments"] == len(live["segments"])
    assert row["duration_s"] == pytest.approx(live["duration_s"]) and live["store"]["analysis_id"] == row["analysis_id"]


@pytest.mark.parametrize("encoding, sr, parties", [("pcm_s16le", 16000, ["agent", "customer"]), ("alaw", 8000, ["customer"])])
def test_raw_audio_gives_exactly_the_offline_analysis(exact_server, default_bundle, calls, encoding, sr, parties):
    x = calls["angry"] if len(parties) == 2 else calls["angry"][1:2]  # mono: the customer's channel alone
    if sr != SR:
        x = soxr.resample(x.T, SR, sr).T.astype(np.float32)
    frames, samples = raw_frames(np.ascontiguousarray(x), encoding=encoding, sr=sr)
    start = {
        "sample_rate": sr,
        "channels": len(parties),
        "encoding": encoding,
        "parties": parties,
        "metadata": {"queue": "billing"},
    }
    events, code = asyncio.run(exchange(exact_server.ws_url + "/stream", [json.dumps(start), *frames, '{"event": "stop"}']))
    assert code == 1000 and [e["type"] for e in events] == ["call_started", "call_summary"]
    call_id = events[0]["call_id"]
    assert call_id.startswith("raw-") and [p["role"] for p in events[0]["parties"]] == parties
    live = call_json(exact_server, call_id)
    offline = analyze_call(samples, bundle=default_bundle, sr=sr, roles=parties)
    _same_analysis(live, offline)
    assert live["metadata"] == {"queue": "billing"} and events[1]["summary"] == live["summary"]


def test_the_live_mode_agrees_with_offline_within_the_stated_tolerance(live_server, tiny, calls, offline_tiny):
    recording = load_recording(calls["angry_path"])

    async def run():
        subscriber = asyncio.create_task(
            follow(live_server.ws_url + "/events", lambda evs: any(e["type"] == "call_summary" for e in evs))
        )
        await asyncio.sleep(0.3)
        report = await stream_call(live_server.ws_url + "/twilio", recording, speed=0)
        return report, await subscriber

    report, events = asyncio.run(run())
    live = call_json(live_server, report.call_id, timeline=True)
    offline = offline_tiny["angry"]
    live_w = window_rows(live)
    expected = offline.windows.sort_values(["channel", "start_s"])
    assert [(r["channel"], r["start_s"], r["end_s"]) for r in live_w] == [
        (int(w.channel), round(w.start_s, 4), round(w.end_s, 4)) for w in expected.itertuples()
    ]
    assert [r["emotion"] for r in live_w] == expected["emotion"].tolist()
    pcols = [f"p_{lab}" for lab in tiny.labels]
    assert np.abs(np.array([[r[c] for c in pcols] for r in live_w]) - expected[pcols].to_numpy()).max() <= STREAM_TOLERANCE
    assert [s["emotion"] for s in live["segments"]] == offline.segments["emotion"].tolist()
    # the events: the schema's common fields, in order, one per final window and segment
    mine = [e for e in events if e["call_id"] == report.call_id]
    assert all(e["schema"] == "ser-live/1" and {"type", "seq", "sent_at", "position_s"} <= set(e) for e in mine)
    assert [e["seq"] for e in mine] == sorted(e["seq"] for e in mine) and mine[0]["type"] == "call_started"
    assert mine[-1]["type"] == "call_summary" and mine[-1]["status"] == "completed"
    window_events = [e for e in mine if e["type"] == "window"]
    assert [(e["channel"], e["start_s"]) for e in sorted(window_events, key=lambda e: (e["channel"], e["start_s"]))] == sorted(
        (r["channel"], r["start_s"]) for r in live_w
    )
    assert all(e["latency_s"] is not None and e["latency_s"] >= 0 for e in window_events)
    segment_events = [e for e in mine if e["type"] == "segment"]
    assert sorted((e["channel"], e["start_s"], e["emotion"]) for e in segment_events) == sorted(
        (s["channel"], s["start_s"], s["emotion"]) for s in live["segments"]
    )
    alerts = [e for e in mine if e["type"] == "alert"]
    assert {a["kind"] for a in alerts} == {"emotion_spike", "sustained_negative"}  # the customer's angry turn
    assert all(a["role"] == "customer" and 14.0 <= a["start_s"] <= 21.0 for a in alerts)
    assert len([a for a in alerts if a["kind"] == "sustained_negative"]) == 1  # once per episode
    assert [a["alert_id"] for a in live["alerts"]] == [a["alert_id"] for a in alerts]
    row, counts = stored(live_server, report.call_id)  # the store has the same call, its alerts included
    assert row["n_alerts"] == counts["alerts"] == len(alerts) and counts["windows"] == len(live_w)
    assert row["customer_dominant"] == live["summary"]["parties"]["customer"]["dominant"]


def test_two_calls_at_once_are_kept_apart(live_server, calls, offline_tiny):
    recordings = {name: load_recording(calls[f"{name}_path"]) for name in ("angry", "calm")}
    ids = {"angry": "CA" + "a" * 32, "calm": "CA" + "c" * 32}

    async def run():
        everything = asyncio.create_task(follow(live_server.ws_url + "/events", summaries_for(*ids.values())))
        one = asyncio.create_task(follow(live_server.ws_url + f"/calls/{ids['calm']}/events", summaries_for(ids["calm"])))
        await asyncio.sleep(0.3)
        await asyncio.gather(*(stream_call(live_server.ws_url + "/twilio", recordings[n], call_id=ids[n], speed=0) for n in ids))
        return await everything, await one

    everything, one = asyncio.run(run())
    for name, call_id in ids.items():
        rows = window_rows(call_json(live_server, call_id, timeline=True))
        expected = offline_tiny[name].windows.sort_values(["channel", "start_s"])
        assert [(r["channel"], r["start_s"], r["emotion"]) for r in rows] == [
            (int(w.channel), round(w.start_s, 4), w.emotion) for w in expected.itertuples()
        ], name
        events = [e for e in everything if e["call_id"] == call_id and e["type"] == "window"]
        assert len(events) == len(rows)
    assert {e["call_id"] for e in one} == {ids["calm"]}  # the per-call socket carries that call only
    assert len([e for e in one if e["type"] == "window"]) == len(
        call_json(live_server, ids["calm"], timeline=True)["timeline"]["windows"]["rows"]
    )
    assert not any(e["type"] == "alert" for e in one)  # the calm customer raises no alert; the angry one does
    assert any(e["type"] == "alert" and e["call_id"] == ids["angry"] for e in everything)


# --- faults ----------------------------------------------------------------------------------------------


def test_a_client_that_disconnects_mid_call_is_finished_with_what_arrived(live_server, calls):
    recording = load_recording(calls["angry_path"])
    call_id = "CA" + "d" * 32
    messages = twilio_messages(recording, call_id, frames=600)[:-1]  # 12 s, and no stop: the line drops
    asyncio.run(exchange(live_server.ws_url + "/twilio", messages, linger=0.01))
    data = wait_until_final(live_server, call_id)
    assert data["status"] == "ended_abruptly" and data["duration_s"] == pytest.approx(12.0, abs=0.05)
    assert data["segments"] and max(s["end_s"] for s in data["segments"]) <= 12.0
    saved = [json.loads(p.read_text()) for p in live_server.settings.results.glob("*.json")]
    assert [s["status"] for s in saved if s["call_id"] == call_id] == ["ended_abruptly"]
    row, counts = stored(live_server, call_id)
    assert row["status"] == "ended_abruptly" and row["duration_s"] == pytest.approx(12.0, abs=0.05)
    assert counts["segments"] == len(data["segments"])


def test_bad_messages_get_error_events_and_the_call_goes_on(live_server, calls):
    recording = load_recording(calls["calm_path"])
    call_id = "CA" + "b" * 32
    messages = twilio_messages(recording, call_id)
    bad = ["this is not json", media("inbound", 5, "***not base64***"), '{"event": "hello"}', b"\x00\x01"]
    events, code = asyncio.run(exchange(live_server.ws_url + "/twilio", messages[:100] + bad[:3] + messages[100:]))
    assert code == 1000
    assert [(e["type"], e["code"], e["fatal"]) for e in events] == [
        ("error", "bad_json", False),
        ("error", "bad_base64", False),
        ("error", "unknown_event", False),
    ]
    assert all(e["call_id"] == call_id and e["message"] for e in events)
    data = call_json(live_server, call_id)
    assert data["status"] == "completed" and data["duration_s"] == pytest.approx(TOTAL_S, abs=0.05)
    assert data["stats"]["rejected"] == 3
    _, metrics, _ = http(live_server, "/metrics")
    for reason in ("bad_json", "bad_base64", "unknown_event"):
        assert f'ser_frames_rejected_total{{reason="{reason}"}}' in metrics


START_16K = {"sample_rate": 16000, "encoding": "pcm_s16le"}


@pytest.mark.parametrize(
    "path, messages, code, close",
    [
        ("/twilio", [b"\x00" * 10], "unsupported_frame", 1003),
        ("/twilio", [media("inbound", 0, "AAAA")], "media_before_start", 1002),
        (
            "/twilio",
            [
                json.dumps(
                    {
                        **twilio_start("CA1", "MZ1", ["inbound"], {}),
                        "start": {"callSid": "CA1", "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000}},
                    }
                )
            ],
            "unsupported_format",
            1003,
        ),
        ("/stream", [b"\x00" * 10], "bad_start", 1002),
        ("/stream", ['{"sample_rate": 8000, "encoding": "opus"}'], "unsupported_format", 1003),
        ("/stream", ["{not json"], "bad_json", 1002),
        ("/stream", [json.dumps({**START_16K, "call_id": "../../etc/passwd"})], "bad_call_id", 1008),
    ],
)
def test_a_message_the_call_cannot_go_on_after_closes_it_with_a_code(live_server, path, messages, code, close):
    events, closed = asyncio.run(exchange(live_server.ws_url + path, messages))
    assert closed == close
    assert [(e["type"], e["code"], e["fatal"], e["close_code"]) for e in events] == [("error", code, True, close)]
    status, health, _ = http(live_server, "/healthz")
    assert status == 200 and health["status"] == "ok"


def test_too_many_unusable_messages_close_the_call(live_server):
    start = json.dumps({**START_16K, "call_id": "noisy-client"})
    events, closed = asyncio.run(exchange(live_server.ws_url + "/stream", [start, *['{"event": "nope"}'] * 6]))
    assert closed == 1007
    assert [e["fatal"] for e in events if e["type"] == "error"] == [False] * 5 + [True]
    assert wait_until_final(live_server, "noisy-client")["status"] == "ended_abruptly"


def test_a_client_that_goes_silent_is_finished_after_the_idle_timeout(live_server, calls):
    frames, _ = raw_frames(calls["calm"][:, : 4 * SR], encoding="pcm_s16le", sr=SR)
    start = json.dumps({**START_16K, "channels": 2, "call_id": "went-quiet"})
    began = time.monotonic()
    events, code = asyncio.run(exchange(live_server.ws_url + "/stream", [start, *frames], linger=30))
    assert code == 1001 and 3.0 <= time.monotonic() - began < 20
    assert [(e["code"], e["fatal"]) for e in events if e["type"] == "error"] == [("idle_timeout", True)]
    data = wait_until_final(live_server, "went-quiet")
    assert data["status"] == "ended_abruptly" and data["duration_s"] == pytest.approx(4.0, abs=0.01)


def test_a_failing_analysis_closes_that_call_only(live_server, calls, monkeypatch):
    original = CallAnalyzer.feed

    def broken(self, x):
        if self.call_id == "boom":
            raise RuntimeError("simulated fault")
        return original(self, x)

    monkeypatch.setattr(CallAnalyzer, "feed", broken)
    frames, _ = raw_frames(calls["calm"], encoding="pcm_s16le", sr=SR)
    start = {**START_16K, "channels": 2, "parties": ["agent", "customer"]}

    async def run():
        return await asyncio.gather(
            exchange(live_server.ws_url + "/stream", [json.dumps({**start, "call_id": "boom"}), *frames, '{"event": "stop"}']),
            exchange(live_server.ws_url + "/stream", [json.dumps({**start, "call_id": "fine"}), *frames, '{"event": "stop"}']),
        )

    (boom_events, boom_code), (fine_events, fine_code) = asyncio.run(run())
    assert boom_code == 1011 and any(e["type"] == "error" and e["code"] == "analysis_failed" for e in boom_events)
    broken_call = wait_until_final(live_server, "boom")
    assert broken_call["status"] == "ended_abruptly" and "simulated fault" in broken_call["error"]
    assert fine_code == 1000 and fine_events[-1]["type"] == "call_summary" and fine_events[-1]["status"] == "completed"
    assert call_json(live_server, "fine")["duration_s"] == pytest.approx(TOTAL_S, abs=0.01)
    # the store: the broken call as a failure with its reason, the other complete
    boom_row, _ = stored(live_server, "boom")
    assert boom_row["status"] == "failed" and "simulated fault" in boom_row["error"]
    fine_row, fine_counts = stored(live_server, "fine")
    assert fine_row["status"] == "completed" and fine_counts["windows"] > 0


def test_back_pressure_slows_the_sender_and_nothing_is_dropped(live_server, calls, offline_tiny):
    """At speed 0 the simulator sends as fast as TCP lets it; the service never queues more than
    max_queued_s (1 s) per call, stops reading the socket at that bound, and analyses everything."""
    recording = load_recording(calls["angry_path"])
    call_id = "CA" + "e" * 32
    seen: list[tuple[float, float]] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            _, text, _ = http(live_server, "/metrics")
            lag = [
                float(x.split()[-1]) for x in text.splitlines() if x.startswith(f'ser_call_lag_seconds{{call_id="{call_id}"}}')
            ]
            queued = [
                float(x.split()[-1])
                for x in text.splitlines()
                if x.startswith(f'ser_call_queued_audio_seconds{{call_id="{call_id}"}}')
            ]
            if lag and queued:
                seen.append((lag[0], queued[0]))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = asyncio.run(stream_call(live_server.ws_url + "/twilio", recording, call_id=call_id, speed=0))
    finally:
        stop.set()
        watcher.join()
    data = call_json(live_server, call_id)
    assert report.complete and data["status"] == "completed"
    assert data["duration_s"] == pytest.approx(TOTAL_S, abs=0.01) and data["stats"]["late_samples"] == 0  # all analysed
    assert data["stats"]["backpressure_pauses"] > 0 and data["stats"]["max_lag_s"] > 0
    assert len(data["segments"]) == len(offline_tiny["angry"].segments)
    assert seen and max(q for _, q in seen) <= 1.0 + 0.05  # the bound, plus at most one 20 ms release
    assert max(lag for lag, _ in seen) > 0  # the lag is measured while the call runs


# --- security and limits ----------------------------------------------------------------------------------


def test_the_token_is_required_everywhere_but_healthz(strict_server, calls):
    status, body, headers = http(strict_server, "/calls")
    assert status == 401 and headers.get("www-authenticate") == "Bearer" and "Authorization: Bearer" in body["error"]
    assert http(strict_server, "/calls", token=TOKEN)[0] == 200
    assert http(strict_server, f"/calls?token={TOKEN}")[0] == 200
    assert http(strict_server, "/calls", token="wrong-token-0123456789")[0] == 401
    assert http(strict_server, "/metrics")[0] == 401 and http(strict_server, "/healthz")[0] == 200
    for path in ("/stream", "/events"):
        with pytest.raises(InvalidStatus, match="403"):
            asyncio.run(exchange(strict_server.ws_url + path, []))
    recording = load_recording(calls["calm_path"])
    short = twilio_messages(recording, "CA" + "f" * 32, frames=50)
    events, closed = asyncio.run(exchange(strict_server.ws_url + "/twilio", short))
    assert closed == 1008 and [e["code"] for e in events] == ["unauthorized"]
    report = asyncio.run(
        stream_call(strict_server.ws_url + "/twilio", recording, speed=0, token=TOKEN)
    )  # <Parameter name="token">
    assert report.complete
    data = call_json(strict_server, report.call_id, token=TOKEN)
    assert data["status"] == "completed" and "token" not in data["metadata"]  # the secret is never stored
    frames, _ = raw_frames(calls["calm"][:, : 2 * SR], encoding="pcm_s16le", sr=SR, frame_s=0.02)  # 1280 bytes each
    start = json.dumps({**START_16K, "channels": 2})
    events, closed = asyncio.run(exchange(strict_server.ws_url + f"/stream?token={TOKEN}", [start, *frames, '{"event": "stop"}']))
    assert closed == 1000 and events[-1]["type"] == "call_summary"


def test_limits_on_concurrent_calls_and_message_size(strict_server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    start = json.dumps({**START_16K, "call_id": "first"})

    async def run():
        async with connect(strict_server.ws_url + "/stream", additional_headers=auth) as first:
            await first.send(start)
            assert json.loads(await first.recv())["type"] == "call_started"
            refused = await exchange(
                strict_server.ws_url + "/stream", [json.dumps({**START_16K, "call_id": "second"})], headers=auth
            )
            await first.send('{"event": "stop"}')
            async for _ in first:
                pass
        after = await exchange(
            strict_server.ws_url + "/stream", [json.dumps({**START_16K, "call_id": "third"}), '{"event": "stop"}'], headers=auth
        )
        async with connect(strict_server.ws_url + "/stream", additional_headers=auth) as big:
            await big.send(json.dumps({**START_16K, "call_id": "big"}))
            assert json.loads(await big.recv())["type"] == "call_started"
            await big.send(b"\x00" * 4096)
            with pytest.raises(ConnectionClosed):
                await big.recv()
        return refused, after, (None, big.close_code)

    (events, code), (after_events, after_code), (_, big_code) = asyncio.run(run())
    assert code == 1013 and [(e["code"], e["fatal"]) for e in events] == [("too_many_calls", True)]
    assert after_code == 1000 and after_events[0]["type"] == "call_started"  # the slot is free again
    assert big_code == 1009  # larger than --max-message-kb
    assert wait_until_final(strict_server, "big", token=TOKEN)["status"] == "ended_abruptly"


# --- REST, metrics, Twilio details --------------------------------------------------------------------------


def _short_call(server, call_id: str, x: np.ndarray) -> None:
    frames, _ = raw_frames(x, encoding="pcm_s16le", sr=SR)
    start = json.dumps({**START_16K, "channels": x.shape[0], "parties": ["agent", "customer"], "call_id": call_id})
    _, code = asyncio.run(exchange(server.ws_url + "/stream", [start, *frames, '{"event": "stop"}']))
    assert code == 1000


def test_rest_lists_calls_and_returns_one_call(live_server, calls):
    _short_call(live_server, "rest-1", calls["angry"][:, 14 * SR :])
    status, listing, _ = http(live_server, "/calls")
    assert status == 200 and listing["schema"] == "ser-live/1" and listing["active"] == 0
    assert listing["calls"] and all(
        {"call_id", "status", "parties", "alerts", "duration_s", "lag_s"} <= set(c) for c in listing["calls"]
    )
    angry = next(c for c in listing["calls"] if c["call_id"] == "rest-1")
    assert angry["parties"]["customer"]["emotion"] == "angry" and len(angry["parties"]["customer"]["sparkline"]) > 3
    assert angry["alert_count"] >= 1 and angry["alerts"][0]["role"] == "customer"
    _, completed, _ = http(live_server, "/calls?status=completed")
    assert {c["status"] for c in completed["calls"]} == {"completed"}
    assert http(live_server, "/calls?status=maybe")[0] == 400
    status, missing, _ = http(live_server, "/calls/CA404")
    assert status == 404 and "CA404" in missing["error"]


def test_metrics_in_the_prometheus_text_format(live_server, calls):
    _short_call(live_server, "metrics-1", calls["calm"][:, : 12 * SR])
    status, text, headers = http(live_server, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")
    }
    assert values["ser_active_calls"] == 0 and values["ser_windows_total"] >= 5
    assert values['ser_calls_started_total{source="raw"}'] >= 1 and values['ser_calls_finished_total{status="completed"}'] >= 1
    assert 0 < values["ser_window_latency_seconds_count"] <= values["ser_windows_total"]
    assert values["ser_audio_seconds_total"] >= 12.0 and "ser_windows_per_second" in values
    assert values["ser_process_resident_memory_bytes"] > 1e8


def test_twilio_roles_single_track_dtmf_and_marks(live_server, calls):
    recording = load_recording(calls["angry_path"])
    call_id = "CA" + "9" * 32
    messages = twilio_messages(
        recording, call_id, frames=400, tracks=["inbound"], custom={"inboundRole": "caller", "queue": "billing"}
    )
    extra = [
        '{"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "7"}}',
        '{"event": "mark", "streamSid": "MZ1", "mark": {"name": "greeting"}}',
    ]
    events, code = asyncio.run(exchange(live_server.ws_url + "/twilio", messages[:200] + extra + messages[200:]))
    assert code == 1000 and events == []  # nothing but errors is ever sent to Twilio
    data = call_json(live_server, call_id)
    assert data["roles"] == ["caller"] and data["parties"] == [{"channel": 0, "role": "caller", "track": "inbound"}]
    assert data["dtmf"] == [{"digit": "7", "track": "inbound_track", "at_s": pytest.approx(3.96, abs=0.05)}]
    assert data["metadata"]["queue"] == "billing" and data["duration_s"] == pytest.approx(8.0, abs=0.02)
    assert data["stats"]["missing_messages"] == 0
    row, _ = stored(live_server, call_id)  # customParameters become the store's call metadata
    assert row["queue"] == "billing" and json.loads(row["extra"]).get("inboundRole") == "caller"


def test_an_analysis_process_that_dies_fails_its_calls_only(exact_server, calls):
    """Run last on this server: one of its two analysis processes is killed."""
    frames, _ = raw_frames(calls["calm"], encoding="pcm_s16le", sr=SR)
    start = {**START_16K, "channels": 2, "parties": ["agent", "customer"]}
    backend = exact_server.service.registry.backend

    async def run():
        async with connect(exact_server.ws_url + "/stream") as ws:
            await ws.send(json.dumps({**start, "call_id": "doomed"}))
            await ws.recv()  # call_started
            for f in frames[:30]:
                await ws.send(f)
            victim = next(w for w in backend.workers if w.calls == 1)
            victim.proc.kill()
            victim.proc.join(10)
            events = []
            try:
                for f in frames[30:]:
                    await ws.send(f)
                async for text in ws:
                    events.append(json.loads(text))
            except ConnectionClosed:
                pass
        after = await exchange(
            exact_server.ws_url + "/stream", [json.dumps({**start, "call_id": "survivor"}), *frames, '{"event": "stop"}']
        )
        return events, ws.close_code, after

    events, code, (after_events, after_code) = asyncio.run(run())
    assert code == 1011 and [e["code"] for e in events if e["type"] == "error"] == ["analysis_failed"]
    doomed = wait_until_final(exact_server, "doomed")
    assert doomed["status"] == "ended_abruptly" and "analysis worker" in doomed["error"]
    assert after_code == 1000 and after_events[-1]["status"] == "completed"  # placed on the surviving process
    assert call_json(exact_server, "survivor")["duration_s"] == pytest.approx(TOTAL_S, abs=0.01)
    _, health, _ = http(exact_server, "/healthz")
    assert health["status"] == "ok" and health["analysis_processes"] == 2
    # the store: the dead call's row under the same model (name and hash) as the survivor's, though
    # this process holds no model (the analysis runs in the worker processes)
    doomed_row, _ = stored(exact_server, "doomed")
    survivor_row, _ = stored(exact_server, "survivor")
    assert doomed_row["status"] == "failed" and survivor_row["status"] == "completed"
    assert (doomed_row["model_name"], doomed_row["model_sha256"]) == (survivor_row["model_name"], survivor_row["model_sha256"])
    assert len(doomed_row["model_sha256"]) == 64 and doomed_row["model_name"] == "default"
