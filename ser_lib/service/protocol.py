"""What goes over the service's sockets: Twilio Media Streams in, the raw protocol in, events out.

Inbound, two protocols, each parsed into small typed messages, every fault a :class:`ProtocolError`
naming what was wrong, the value received and what was expected:

- **Twilio Media Streams** (:func:`parse_twilio`), field by field as Twilio's "Media Streams -
  WebSocket Messages" reference describes them: ``connected`` (``protocol``, ``version``);
  ``start`` (``sequenceNumber``, ``start.accountSid``, ``start.streamSid``, ``start.callSid``,
  ``start.tracks``, ``start.customParameters``, ``start.mediaFormat`` {``encoding``
  ``audio/x-mulaw``, ``sampleRate`` 8000, ``channels`` 1}); ``media`` (``media.track``
  ``inbound``/``outbound``, ``media.chunk``, ``media.timestamp`` in ms from the stream's start,
  ``media.payload`` base64 mu-law); ``dtmf`` (``dtmf.track``, ``dtmf.digit``); ``mark``
  (``mark.name``); ``stop`` (``stop.accountSid``, ``stop.callSid``). Numbers arrive as strings.
  Telnyx and SignalWire send the same shape.
- **Raw audio** (:func:`parse_raw_start`): a first JSON text frame declaring ``sample_rate``,
  ``channels``, ``encoding`` (:data:`~ser_lib.service.codecs.ENCODINGS`), ``parties`` and optional
  ``call_id`` and ``metadata``; then binary frames of interleaved samples; ``{"event": "stop"}`` ends it.

Outbound, the versioned event schema (:data:`SCHEMA`, documented in ``docs/LIVE_SCHEMA.md``):
:func:`event` builds every event with the common fields; :func:`window_payload` and
:func:`segment_payload` the analysis ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import SERError
from .codecs import ENCODINGS

#: The event schema's name and major version: fields are only ever added within a version.
SCHEMA: str = "ser-live/1"
SCHEMA_VERSION: str = "1.0"
#: Twilio's audio: 8 kHz mono mu-law, the only format Media Streams send.
TWILIO_ENCODING, TWILIO_RATE = "audio/x-mulaw", 8000
#: Twilio's track names in ``start.tracks`` and ``media.track``.
TWILIO_TRACKS = ("inbound", "outbound")
#: Call ids (Twilio ``callSid``, or a raw stream's ``call_id``): letters, digits and ``._:-``.
CALL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: Limits on what a client may attach to a call.
MAX_METADATA_KEYS, MAX_METADATA_CHARS = 32, 256
#: Sample rates a raw stream may declare.
MIN_RATE, MAX_RATE = 8000, 48000
MAX_CHANNELS = 2


class ServiceError(SERError):
    """A fault of the live service (a client's protocol error, a limit reached, a bad setting)."""


class ProtocolError(ServiceError):
    """A message the service cannot use.

    ``code`` is the error event's machine-readable code; ``close`` the WebSocket close code when
    the call cannot go on (None: the message is rejected and the call continues).
    """

    def __init__(self, message: str, *, code: str, close: int | None = None):
        super().__init__(message)
        self.code, self.close = code, close


#: WebSocket close codes the service uses (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the client sent nothing for idle_timeout_s
CLOSE_PROTOCOL = 1002  # a message out of order (media before start)
CLOSE_UNSUPPORTED = 1003  # an audio format or frame type the service does not take
CLOSE_INVALID = 1007  # too many unusable messages
CLOSE_POLICY = 1008  # not authorised, or a call id that cannot be used
CLOSE_INTERNAL = 1011  # the analysis of this call failed
CLOSE_BUSY = 1013  # the concurrent-call limit is reached, or an event subscriber reads too slowly


# --- Twilio ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwilioStart:
    call_id: str
    stream_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom: dict[str, str]
    sequence: int | None


@dataclass(frozen=True)
class TwilioMedia:
    track: str
    chunk: int | None
    timestamp_ms: int | None
    payload: bytes
    sequence: int | None


@dataclass(frozen=True)
class TwilioOther:
    """``connected``, ``dtmf``, ``mark`` and ``stop``: what the service logs or records."""

    event: str
    data: dict = field(default_factory=dict)
    sequence: int | None = None


def _number(value: Any, what: str) -> int | None:
    """Twilio's numbers are strings (``"160"``); None when absent."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProtocolError(f'{what}={value!r} is not a whole number (Twilio sends e.g. "160")', code="bad_field") from None


def _object(msg: dict, key: str, event: str) -> dict:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"a {event!r} message needs an object {key!r}, got {value!r}", code="bad_field")
    return value


def check_call_id(value: Any, what: str = "call id") -> str:
    """``value`` if it is a usable call id (:data:`CALL_ID`), else a :class:`ProtocolError` (close 1008)."""
    if not isinstance(value, str) or not CALL_ID.match(value):
        raise ProtocolError(
            f"{what}={value!r} is not usable: 1-64 letters, digits or . _ : - (a Twilio callSid is CA + 32 hex digits)",
            code="bad_call_id",
            close=CLOSE_POLICY,
        )
    return value


def parse_twilio(text: str) -> TwilioStart | TwilioMedia | TwilioOther:
    """One Twilio Media Streams message (a JSON text frame) as a typed message.

    Raises
    ------
    ProtocolError
        ``bad_json`` (not JSON, or not an object), ``bad_field`` (a field of the wrong type),
        ``bad_base64`` (a payload that is not base64), ``unknown_event``; and, closing the call,
        ``unsupported_format`` (a ``mediaFormat`` other than 8 kHz mono mu-law) or ``bad_call_id``.
    """
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON ({exc.msg} at character {exc.pos}): {text[:80]!r}", code="bad_json") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"a message must be a JSON object, got {type(msg).__name__}: {text[:80]!r}", code="bad_json")
    event = msg.get("event")
    sequence = _number(msg.get("sequenceNumber"), "sequenceNumber")
    if event == "media":
        media = _object(msg, "media", "media")
        track = media.get("track", "inbound")
        if track not in TWILIO_TRACKS:
            raise ProtocolError(f"media.track={track!r} is not one of {TWILIO_TRACKS}", code="bad_field")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError(f"media.payload must be a base64 string, got {type(payload).__name__}", code="bad_field")
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(f"media.payload is not base64: {payload[:40]!r}", code="bad_base64") from None
        return TwilioMedia(
            track,
            _number(media.get("chunk"), "media.chunk"),
            _number(media.get("timestamp"), "media.timestamp"),
            audio,
            sequence,
        )
    if event == "start":
        start = _object(msg, "start", "start")
        fmt = start.get("mediaFormat") or {}
        encoding, rate, channels = fmt.get("encoding"), _number(fmt.get("sampleRate"), "sampleRate"), fmt.get("channels", 1)
        if encoding != TWILIO_ENCODING or rate != TWILIO_RATE or _number(channels, "channels") != 1:
            raise ProtocolError(
                f"mediaFormat {fmt!r} is not supported: Media Streams send {{'encoding': 'audio/x-mulaw', "
                "'sampleRate': 8000, 'channels': 1}; for other formats use the raw protocol at /stream",
                code="unsupported_format",
                close=CLOSE_UNSUPPORTED,
            )
        tracks = start.get("tracks") or ["inbound"]
        if (
            not isinstance(tracks, list)
            or not tracks
            or any(t not in TWILIO_TRACKS for t in tracks)
            or len(set(tracks)) != len(tracks)
        ):
            raise ProtocolError(
                f"start.tracks={tracks!r} must list 'inbound' and/or 'outbound'",
                code="unsupported_format",
                close=CLOSE_UNSUPPORTED,
            )
        custom = start.get("customParameters") or {}
        if not isinstance(custom, dict):
            raise ProtocolError(
                f"start.customParameters must be an object, got {custom!r}", code="bad_field", close=CLOSE_PROTOCOL
            )
        return TwilioStart(
            check_call_id(start.get("callSid"), "start.callSid"),
            str(start.get("streamSid") or msg.get("streamSid") or ""),
            str(start.get("accountSid") or ""),
            tuple(tracks),
            check_metadata({str(k): v for k, v in custom.items()}, "start.customParameters"),
            sequence,
        )
    if event in ("connected", "stop", "dtmf", "mark"):
        data = msg.get(event) if isinstance(msg.get(event), dict) else {}
        if event == "connected":
            data = {"protocol": msg.get("protocol"), "version": msg.get("version")}
        return TwilioOther(event, data, sequence)
    raise ProtocolError(
        f"event={event!r} is not a Media Streams event (connected, start, media, dtmf, mark, stop)", code="unknown_event"
    )


# --- raw protocol ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawStart:
    """The raw protocol's first frame."""

    call_id: str | None
    sample_rate: int
    channels: int
    encoding: str
    parties: tuple[str, ...]
    metadata: dict[str, Any]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame (one sample of every channel)."""
        return ENCODINGS[self.encoding] * self.channels


def check_metadata(value: Any, what: str = "metadata") -> dict[str, Any]:
    """A small JSON object of call metadata (at most 32 keys; keys and string values at most 256 characters)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(value).__name__}", code="bad_field", close=CLOSE_PROTOCOL)
    if len(value) > MAX_METADATA_KEYS:
        raise ProtocolError(f"{what} has {len(value)} keys; at most {MAX_METADATA_KEYS}", code="bad_field", close=CLOSE_PROTOCOL)
    for k, v in value.items():
        if (
            len(str(k)) > MAX_METADATA_CHARS
            or not isinstance(v, (str, int, float, bool, type(None)))
            or (isinstance(v, str) and len(v) > MAX_METADATA_CHARS)
        ):
            raise ProtocolError(
                f"{what}[{str(k)[:40]!r}] must be a string of at most {MAX_METADATA_CHARS} characters, a number, "
                "a boolean or null",
                code="bad_field",
                close=CLOSE_PROTOCOL,
            )
    return dict(value)


def parse_raw_start(text: str) -> RawStart:
    """The raw protocol's first frame: ``{"sample_rate": 8000, "channels": 2, "encoding": "mulaw",
    "parties": ["agent", "customer"], "call_id": "...", "metadata": {...}}``.

    Raises
    ------
    ProtocolError
        Closing the call: ``bad_json`` or ``bad_field`` (close 1002), ``unsupported_format`` for an
        encoding, rate or channel count the service does not take (close 1003), ``bad_call_id`` (1008).
    """
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"the first frame is not JSON ({exc.msg}): {text[:80]!r}", code="bad_json", close=CLOSE_PROTOCOL
        ) from None
    if not isinstance(msg, dict):
        raise ProtocolError(
            "the first frame must be a JSON object declaring the audio format", code="bad_json", close=CLOSE_PROTOCOL
        )
    if msg.get("event", "start") != "start":
        raise ProtocolError(
            f"the first frame must be the start frame, got event={msg.get('event')!r}", code="bad_field", close=CLOSE_PROTOCOL
        )
    encoding = msg.get("encoding")
    if encoding not in ENCODINGS:
        raise ProtocolError(
            f"encoding={encoding!r} is not supported: use one of {', '.join(ENCODINGS)}",
            code="unsupported_format",
            close=CLOSE_UNSUPPORTED,
        )
    rate, channels = msg.get("sample_rate"), msg.get("channels", 1)
    if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
        raise ProtocolError(
            f"sample_rate={rate!r} is not supported: a whole number of Hz from {MIN_RATE} to {MAX_RATE}",
            code="unsupported_format",
            close=CLOSE_UNSUPPORTED,
        )
    if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError(
            f"channels={channels!r} is not supported: 1 (one party) or 2 (one party per channel)",
            code="unsupported_format",
            close=CLOSE_UNSUPPORTED,
        )
    parties = msg.get("parties")
    if parties is None:
        parties = ["speaker"] if channels == 1 else ["agent", "customer"]
    if (
        not isinstance(parties, list)
        or len(parties) != channels
        or any(not isinstance(p, str) or not re.match(r"^[A-Za-z0-9 _-]{1,32}$", p) for p in parties)
        or len(set(parties)) != len(parties)
    ):
        raise ProtocolError(
            f"parties={parties!r} must name each of the {channels} channel(s) once, in channel order "
            '(1-32 letters, digits, spaces, _ or -), e.g. ["agent", "customer"]',
            code="bad_field",
            close=CLOSE_PROTOCOL,
        )
    call_id = msg.get("call_id")
    return RawStart(
        None if call_id is None else check_call_id(call_id, "call_id"),
        rate,
        channels,
        encoding,
        tuple(parties),
        check_metadata(msg.get("metadata")),
    )


# --- events out --------------------------------------------------------------------------------------


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds (``2025-05-01T12:00:00.123Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(type_: str, call_id: str | None, seq: int, position_s: float, /, **fields) -> dict:
    """An event with the schema's common fields: ``schema``, ``type``, ``call_id``, ``seq``,
    ``sent_at``, ``position_s`` (seconds of the call's audio received when it was made)."""
    return {
        "schema": SCHEMA,
        "type": type_,
        "call_id": call_id,
        "seq": seq,
        "sent_at": now_iso(),
        "position_s": round(float(position_s), 3),
        **fields,
    }


def _probs(labels, values) -> dict[str, float]:
    return {lab: round(float(v), 4) for lab, v in zip(labels, np.asarray(values, float), strict=True)}


def window_payload(w, labels) -> dict:
    """The analysis fields of a ``window`` event from a :class:`ser_lib.calls.WindowResult`."""
    return {
        "channel": int(w.channel),
        "role": w.role,
        "region": int(w.region),
        "start_s": round(float(w.start_s), 3),
        "end_s": round(float(w.end_s), 3),
        "emotion": w.emotion,
        "confidence": round(float(w.confidence), 4),
        "sentiment": round(float(w.sentiment), 4),
        "probabilities": _probs(labels, w.probabilities),
    }


def segment_payload(record: dict) -> dict:
    """The fields of a ``segment`` event: one record of :meth:`ser_lib.calls.CallAnalysis.segment_records`."""
    return {
        k: record[k]
        for k in ("channel", "role", "start_s", "end_s", "emotion", "confidence", "sentiment", "probabilities", "windows")
    }
