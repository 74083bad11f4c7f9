"""The live service's pure parts: G.711 tables, Twilio and raw message parsing, the track assembler,
alerts, settings and the Prometheus text. No server, no model."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import soundfile as sf

from ser_lib.errors import ParameterError
from ser_lib.service import AlertSettings, AlertTracker, ServiceSettings
from ser_lib.service.assembler import TrackAssembler, missing_between
from ser_lib.service.codecs import ALAW_TO_INT16, MULAW_TO_INT16, alaw_encode, decode, mulaw_encode
from ser_lib.service.metrics import Metrics
from ser_lib.service.protocol import (
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_UNSUPPORTED,
    SCHEMA,
    ProtocolError,
    TwilioMedia,
    TwilioOther,
    TwilioStart,
    event,
    parse_raw_start,
    parse_twilio,
)

# --- G.711 -----------------------------------------------------------------------------------------


def _libsndfile_decode(codes: bytes, subtype: str) -> np.ndarray:
    """What soundfile (libsndfile) makes of these G.711 bytes, read from a WAV file holding them."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros(len(codes), np.float32), 8000, format="WAV", subtype=subtype)
    raw = bytearray(buf.getvalue())
    at = raw.find(b"data") + 8
    raw[at : at + len(codes)] = codes
    return sf.read(io.BytesIO(bytes(raw)), dtype="float32")[0]


@pytest.mark.parametrize("encoding, subtype", [("mulaw", "ULAW"), ("alaw", "ALAW")])
def test_g711_tables_decode_every_byte_as_libsndfile_does(encoding, subtype):
    codes = bytes(range(256))
    ours = decode(codes, encoding=encoding)[0]
    np.testing.assert_array_equal(ours, _libsndfile_decode(codes, subtype))  # the samples analyze-call reads
    assert ours.dtype == np.float32 and np.abs(ours).max() < 1.0


@pytest.mark.parametrize("encode, table", [(mulaw_encode, MULAW_TO_INT16), (alaw_encode, ALAW_TO_INT16)])
def test_g711_encoding_a_decoded_value_gives_its_code_back(encode, table):
    codes = np.frombuffer(encode(table), np.uint8)
    np.testing.assert_array_equal(table[codes], table)  # every value survives a round trip
    y = np.random.default_rng(0).uniform(-1, 1, 4000).astype(np.float32) ** 3
    back = table[np.frombuffer(encode(y), np.uint8)] / 32768.0
    assert np.all(np.abs(back - y) <= np.abs(y) / 16 + 1e-3)  # companding error only: within one 4-bit step


def test_pcm_and_float_frames_are_split_into_channels():
    stereo = np.array([[0.5, -0.25, 0.0], [-1.0, 0.125, 0.75]], np.float32)
    pcm = np.round(stereo.T * 32768).clip(-32768, 32767).astype("<i2").tobytes()
    np.testing.assert_allclose(decode(pcm, encoding="pcm_s16le", channels=2), stereo, atol=1 / 32768)
    np.testing.assert_array_equal(decode(stereo.T.astype("<f4").tobytes(), encoding="float32", channels=2), stereo)
    with pytest.raises(ParameterError, match="not whole frames"):
        decode(b"\x00" * 6, encoding="float32", channels=2)
    with pytest.raises(ParameterError, match="NaN"):
        decode(np.array([np.nan], "<f4").tobytes(), encoding="float32")
    with pytest.raises(ParameterError, match="opus"):
        decode(b"", encoding="opus")


# --- Twilio messages -------------------------------------------------------------------------------

START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC" + "1" * 32,
        "streamSid": "MZ" + "2" * 32,
        "callSid": "CA" + "3" * 32,
        "tracks": ["inbound", "outbound"],
        "customParameters": {"agentId": "A17", "token": "secret"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
    "streamSid": "MZ" + "2" * 32,
}


def test_twilio_messages_are_parsed_field_by_field():
    start = parse_twilio(json.dumps(START))
    assert isinstance(start, TwilioStart)
    assert (start.call_id, start.stream_sid, start.tracks, start.sequence) == (
        "CA" + "3" * 32,
        "MZ" + "2" * 32,
        ("inbound", "outbound"),
        1,
    )
    assert start.custom == {"agentId": "A17", "token": "secret"}
    payload = bytes(range(160))
    media = parse_twilio(
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": "3",
                "media": {"track": "outbound", "chunk": "2", "timestamp": "20", "payload": base64.b64encode(payload).decode()},
                "streamSid": "MZ1",
            }
        )
    )
    assert media == TwilioMedia("outbound", 2, 20, payload, 3)  # Twilio's numbers are strings
    connected = parse_twilio('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
    assert connected == TwilioOther("connected", {"protocol": "Call", "version": "1.0.0"}, None)
    dtmf = parse_twilio('{"event": "dtmf", "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": "1"}}')
    assert (dtmf.event, dtmf.data["digit"], dtmf.sequence) == ("dtmf", "1", 5)
    stop = parse_twilio('{"event": "stop", "sequenceNumber": "9", "stop": {"accountSid": "AC1", "callSid": "CA1"}}')
    assert (stop.event, stop.data["callSid"]) == ("stop", "CA1")
    assert parse_twilio('{"event": "mark", "mark": {"name": "m1"}}').data == {"name": "m1"}


@pytest.mark.parametrize(
    "text, code, close",
    [
        ("not json", "bad_json", None),
        ("[1, 2]", "bad_json", None),
        ('{"event": "media", "media": {"track": "inbound", "payload": "%%%"}}', "bad_base64", None),
        ('{"event": "media", "media": {"track": "sideways", "payload": ""}}', "bad_field", None),
        ('{"event": "media", "media": {"track": "inbound", "timestamp": "soon", "payload": ""}}', "bad_field", None),
        ('{"event": "hello"}', "unknown_event", None),
    ],
)
def test_unusable_twilio_messages_are_protocol_errors(text, code, close):
    with pytest.raises(ProtocolError) as info:
        parse_twilio(text)
    assert (info.value.code, info.value.close) == (code, close)


def test_a_twilio_start_in_another_format_or_with_a_bad_call_id_ends_the_call():
    other = json.loads(json.dumps(START))
    other["start"]["mediaFormat"] = {"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1}
    with pytest.raises(ProtocolError, match="audio/x-l16") as info:
        parse_twilio(json.dumps(other))
    assert (info.value.code, info.value.close) == ("unsupported_format", CLOSE_UNSUPPORTED)
    bad = json.loads(json.dumps(START))
    bad["start"]["callSid"] = "../../etc/passwd"
    with pytest.raises(ProtocolError, match="not usable") as info:
        parse_twilio(json.dumps(bad))
    assert (info.value.code, info.value.close) == ("bad_call_id", CLOSE_POLICY)


# --- the raw protocol ------------------------------------------------------------------------------


def test_the_raw_start_frame_declares_format_and_parties():
    start = parse_raw_start(
        json.dumps(
            {
                "sample_rate": 16000,
                "channels": 2,
                "encoding": "pcm_s16le",
                "parties": ["customer", "agent"],
                "call_id": "c-1",
                "metadata": {"queue": "billing"},
            }
        )
    )
    assert (start.call_id, start.sample_rate, start.channels, start.parties, start.frame_bytes) == (
        "c-1",
        16000,
        2,
        ("customer", "agent"),
        4,
    )
    assert start.metadata == {"queue": "billing"}
    mono = parse_raw_start('{"sample_rate": 8000, "encoding": "mulaw"}')
    assert (mono.channels, mono.parties, mono.call_id) == (1, ("speaker",), None)


@pytest.mark.parametrize(
    "frame, code, close",
    [
        ("{nope", "bad_json", CLOSE_PROTOCOL),
        ('{"sample_rate": 8000, "encoding": "opus"}', "unsupported_format", CLOSE_UNSUPPORTED),
        ('{"sample_rate": 4000, "encoding": "mulaw"}', "unsupported_format", CLOSE_UNSUPPORTED),
        ('{"sample_rate": 8000, "encoding": "mulaw", "channels": 6}', "unsupported_format", CLOSE_UNSUPPORTED),
        ('{"sample_rate": 8000, "encoding": "mulaw", "channels": 2, "parties": ["agent"]}', "bad_field", CLOSE_PROTOCOL),
        ('{"sample_rate": 8000, "encoding": "mulaw", "call_id": "a/b"}', "bad_call_id", CLOSE_POLICY),
        ('{"sample_rate": 8000, "encoding": "mulaw", "metadata": {"note": "' + "x" * 300 + '"}}', "bad_field", CLOSE_PROTOCOL),
    ],
)
def test_a_bad_raw_start_frame_closes_the_call_with_a_reason(frame, code, close):
    with pytest.raises(ProtocolError) as info:
        parse_raw_start(frame)
    assert (info.value.code, info.value.close) == (code, close)


def test_events_carry_the_schema_and_common_fields():
    ev = event("window", "CA1", 7, 12.34567, emotion="angry")
    assert ev["schema"] == SCHEMA == "ser-live/1"
    assert (ev["type"], ev["call_id"], ev["seq"], ev["position_s"], ev["emotion"]) == ("window", "CA1", 7, 12.346, "angry")
    assert ev["sent_at"].endswith("Z") and "T" in ev["sent_at"]


# --- the track assembler ---------------------------------------------------------------------------


def _frames(codes: np.ndarray, n: int = 160) -> list[bytes]:
    return [codes[i : i + n].tobytes() for i in range(0, len(codes), n)]


def test_tracks_are_released_in_step_and_out_of_order_frames_land_where_they_belong():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, 1600, dtype=np.uint8), rng.integers(0, 256, 1600, dtype=np.uint8)
    asm = TrackAssembler(["outbound", "inbound"], max_skew_s=0.5)
    fa, fb = _frames(a), _frames(b)
    order = [1, 0, 2, 3, 5, 4, 6, 7, 9, 8]  # pairs swapped, as a network might deliver them
    out = []
    for k in order:
        asm.add("outbound", 20 * k, fa[k])
        asm.add("inbound", 20 * k, fb[k])
        if (chunk := asm.release()) is not None:
            out.append(chunk)
    got = np.concatenate(out, axis=1)
    np.testing.assert_array_equal(
        got, np.concatenate([decode(a.tobytes(), encoding="mulaw"), decode(b.tobytes(), encoding="mulaw")])
    )
    assert asm.late_samples == 0 and asm.gap_samples == 0


def test_a_gap_in_the_timestamps_is_silence_and_late_audio_is_counted():
    asm = TrackAssembler(["inbound"], max_skew_s=0.1)
    tone = np.full(160, 0x10, np.uint8).tobytes()
    asm.add("inbound", 0, tone)
    asm.add("inbound", 100, tone)  # 80 ms missing: waited for while less than 0.1 s lies beyond the hole
    out = [asm.release()]
    assert out[0].shape == (1, 160)
    for t in range(120, 260, 20):  # the missing frames never come
        asm.add("inbound", t, tone)
        out.append(asm.release())
    y = np.concatenate([o for o in out if o is not None], axis=1)[0]
    assert len(y) == 2080 and np.all(y[160:800] == 0) and np.all(y[:160] != 0) and np.all(y[800:] != 0)
    assert asm.gap_samples == 640
    asm.add("inbound", 40, tone)  # long released: counted, not merged into the past
    assert asm.late_samples == 160 and asm.release() is None
    with pytest.raises(ProtocolError, match="ahead") as info:
        asm.add("inbound", 3_600_000, tone)
    assert info.value.code == "bad_timestamp"
    with pytest.raises(ProtocolError) as info:
        asm.add("outbound", 0, tone)
    assert info.value.code == "unknown_track"


def test_a_frame_arriving_late_but_within_the_skew_fills_its_hole():
    asm = TrackAssembler(["inbound"], max_skew_s=0.5)
    frames = [np.full(160, 0x10 + k, np.uint8).tobytes() for k in range(5)]
    for k in (0, 1, 3, 4, 2):  # frame 2 comes last
        asm.add("inbound", 20 * k, frames[k])
    y = asm.release()[0]
    np.testing.assert_array_equal(y, decode(b"".join(frames), encoding="mulaw")[0])
    assert asm.gap_samples == 0 and asm.late_samples == 0


def test_a_silent_track_does_not_hold_the_other_back_beyond_the_skew():
    asm = TrackAssembler(["outbound", "inbound"], max_skew_s=0.1)
    frame = np.full(160, 0x10, np.uint8).tobytes()
    released = 0
    for k in range(50):  # one second on the inbound track only
        asm.add("inbound", 20 * k, frame)
        if (chunk := asm.release()) is not None:
            released += chunk.shape[1]
            assert np.all(chunk[0] == 0)  # the missing track is silence
    assert released == 8000 - 800  # everything but the last 0.1 s
    assert asm.release(final=True).shape[1] == 800
    assert missing_between(3, 7) == 3 and missing_between(None, 7) == 0 and missing_between(7, 7) == 0


# --- alerts ----------------------------------------------------------------------------------------


def _window(tracker, t, sentiment, angry=0.0, role="customer"):
    return tracker.update(role=role, channel=1, start_s=t, end_s=t + 3.0, sentiment=sentiment, probabilities={"angry": angry})


def test_sustained_negative_sentiment_alerts_once_per_episode():
    tracker = AlertTracker(AlertSettings(negative_below=-0.3, sustained_s=6.0, rearm_margin=0.1), id_prefix="CA1")
    raised = [a for t in range(0, 10) for a in _window(tracker, float(t), -0.6)]
    assert [a["kind"] for a in raised] == ["sustained_negative"]  # once, not every window after 6 s
    assert raised[0]["alert_id"] == "CA1-1" and raised[0]["start_s"] == 0.0 and raised[0]["end_s"] == 6.0
    assert raised[0]["value"] == pytest.approx(-0.6) and "customer sentiment below -0.30" in raised[0]["message"]
    assert _window(tracker, 10.0, -0.25) == []  # inside the hysteresis band: the episode goes on
    assert _window(tracker, 11.0, -0.6) == []
    assert _window(tracker, 12.0, 0.1) == []  # recovered: the episode is over
    again = [a for t in range(13, 20) for a in _window(tracker, float(t), -0.6)]
    assert [a["alert_id"] for a in again] == ["CA1-2"]
    assert _window(tracker, 0.0, -0.9, role="agent") == []  # only the customer is watched


def test_an_anger_spike_alerts_once_until_it_falls_back():
    tracker = AlertTracker(AlertSettings(spike_above=0.7, rearm_margin=0.2))
    assert [a["emotion"] for a in _window(tracker, 0.0, 0.0, angry=0.8)] == ["angry"]
    assert _window(tracker, 1.0, 0.0, angry=0.95) == [] and _window(tracker, 2.0, 0.0, angry=0.6) == []
    assert _window(tracker, 3.0, 0.0, angry=0.45) == []  # below 0.7 - 0.2: re-armed
    assert [a["kind"] for a in _window(tracker, 4.0, 0.0, angry=0.75)] == ["emotion_spike"]


def test_alert_settings_are_validated():
    with pytest.raises(ParameterError, match="negative_below=-2"):
        AlertSettings(negative_below=-2)
    with pytest.raises(ParameterError, match="spike_above=1.5"):
        AlertSettings(spike_above=1.5)
    assert AlertSettings(roles=("*",)).watches("agent")


# --- settings and metrics --------------------------------------------------------------------------


def test_listening_beyond_this_machine_needs_a_token(tmp_path):
    with pytest.raises(ParameterError, match="reachable from other machines"):
        ServiceSettings(host="0.0.0.0", results=tmp_path)
    with pytest.raises(ParameterError, match="at least 16"):
        ServiceSettings(host="0.0.0.0", token="short", results=tmp_path)
    assert ServiceSettings(host="0.0.0.0", token="a-long-enough-secret", results=tmp_path).token
    assert ServiceSettings(host="::1", results=tmp_path).host == "::1"
    with pytest.raises(ParameterError, match="same party"):
        ServiceSettings(twilio_roles=(("outbound", "agent"), ("inbound", "agent")), results=tmp_path)


def test_metrics_render_the_prometheus_text_format():
    m = Metrics()
    m.inc("ser_frames_rejected_total", reason="bad_json")
    m.inc("ser_frames_rejected_total", 2, reason="bad_base64")
    m.windows(4, [0.4, 1.1, 1.3])  # one window without a latency
    text = m.render(active_calls=1, calls=[{"call_id": 'CA"1', "lag_s": 0.25, "queued_s": 1.5}], subscribers=2)
    lines = text.splitlines()
    assert "ser_active_calls 1" in lines and "ser_event_subscribers 2" in lines
    assert 'ser_call_lag_seconds{call_id="CA\\"1"} 0.25' in lines  # label values escaped
    assert 'ser_frames_rejected_total{reason="bad_base64"} 2' in lines and "ser_windows_total 4" in lines
    assert 'ser_window_latency_seconds_bucket{le="0.5"} 1' in lines and 'ser_window_latency_seconds_bucket{le="1.5"} 3' in lines
    assert "ser_window_latency_seconds_count 3" in lines and "# TYPE ser_window_latency_seconds histogram" in lines
    assert m.get("ser_frames_rejected_total") == 3
