"""The two inbound WebSocket protocols: Twilio Media Streams at ``/twilio``, raw audio at ``/stream``.

One :class:`_Ingest` per connection reads messages one at a time (while a call's audio queue is
full it does not read, so TCP slows the sender), and turns every fault into an ``error`` event sent
back on the socket and to the event subscribers, a log line and a counter; where the call cannot
go on it closes the socket with a close code (see :mod:`ser_lib.service.protocol`). Nothing a client
sends can raise out of the handler: a failure of one call never reaches another.

A call ends ``completed`` when its client says so (Twilio ``stop``; raw ``{"event": "stop"}``)
and ``ended_abruptly`` when the socket goes away first, or the call had to be closed; either
way the analysis is finished with what arrived and written to the results folder.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid

from starlette.websockets import WebSocket, WebSocketState

from .assembler import TrackAssembler, missing_between
from .codecs import decode
from .protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_INVALID,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_UNSUPPORTED,
    TWILIO_RATE,
    ProtocolError,
    TwilioMedia,
    TwilioStart,
    event,
    parse_raw_start,
    parse_twilio,
)
from .settings import check_role

logger = logging.getLogger(__name__)


class _Ingest:
    """A connection bringing one call's audio; subclasses parse their protocol in :meth:`handle`."""

    source = "?"

    def __init__(self, service, websocket: WebSocket, *, authorised: bool):
        self.service, self.ws = service, websocket
        self.registry = service.registry
        self.metrics = service.registry.metrics
        self.authorised = authorised
        self.session = None
        self.call_id: str | None = None
        self.stopped = False
        self.closed = False
        self.bad = 0

    async def run(self) -> None:
        try:
            while not self.closed:
                try:
                    message = await asyncio.wait_for(self.ws.receive(), self.service.settings.idle_timeout_s)
                except TimeoutError:
                    await self.error(
                        "idle_timeout",
                        f"nothing received for {self.service.settings.idle_timeout_s:g} s: finishing the call with what arrived",
                        CLOSE_GOING_AWAY,
                    )
                    break
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    await self.handle(message)
                except ProtocolError as exc:
                    await self.error(exc.code, str(exc), exc.close)
                if self.session is not None and self.session.failed and not self.closed:
                    if self.session.failure_event is not None:
                        await self.send(self.session.failure_event)
                    await self.close(CLOSE_INTERNAL, "the analysis of this call failed")
        except Exception:  # noqa: BLE001 - log it, close this call, keep the service and the other calls
            logger.exception("%s connection for call %s failed", self.source, self.call_id)
            await self.close(CLOSE_INTERNAL, "internal error")
        finally:
            if self.session is not None:  # finished already (stop, failure) or now; idempotent
                status = "completed" if self.stopped else "ended_abruptly"
                if not self.stopped and self.session.open:
                    logger.warning(
                        "call %s: the connection ended before the call did; finishing it with what arrived", self.call_id
                    )
                await self.registry.finish(self.session, status)

    async def handle(self, message: dict) -> None:
        raise NotImplementedError

    async def send(self, ev: dict) -> None:
        if self.ws.client_state == WebSocketState.CONNECTED and not self.closed:
            try:
                await self.ws.send_json(ev)
            except Exception:  # noqa: BLE001 - the client is gone; the finally clause finishes the call
                self.closed = True

    async def error(self, code: str, message: str, close: int | None = None) -> None:
        """Reject a message: error event (here and to subscribers), log line, counter; close if ``close``."""
        self.bad += 1
        self.metrics.inc("ser_frames_rejected_total", reason=code)
        if self.session is not None:
            self.session.stats["rejected"] += 1
        if close is None and self.bad > self.service.settings.max_bad_messages:
            close, message = (
                CLOSE_INVALID,
                f"{message}; more than {self.service.settings.max_bad_messages} unusable messages, closing",
            )
        logger.warning(
            "%s call %s: %s (%s)%s", self.source, self.call_id or "?", message, code, f", closing with {close}" if close else ""
        )
        seq = self.session.next_seq() if self.session is not None else 0
        pos = self.session.position_s if self.session is not None else 0.0
        ev = event("error", self.call_id, seq, pos, code=code, message=message, fatal=close is not None, close_code=close)
        await self.send(ev)
        self.registry.broadcast(self.call_id, [ev])
        if close is not None:
            await self.close(close, message)

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        if self.ws.client_state == WebSocketState.CONNECTED:
            try:
                await self.ws.close(code=code, reason=reason.encode()[:120].decode(errors="ignore"))
            except Exception:  # noqa: BLE001 - already closed by the peer
                pass

    async def open_call(self, call_id: str, **kwargs) -> None:
        self.call_id = call_id
        self.session = await self.registry.open(call_id, source=self.source, **kwargs)


class TwilioIngest(_Ingest):
    """Twilio Media Streams: ``connected``, ``start``, ``media``..., ``stop`` (``dtmf``, ``mark`` recorded)."""

    source = "twilio"

    def __init__(self, service, websocket: WebSocket, *, authorised: bool):
        super().__init__(service, websocket, authorised=authorised)
        self.assembler: TrackAssembler | None = None
        self.sequence: int | None = None

    async def handle(self, message: dict) -> None:
        text = message.get("text")
        if text is None:
            raise ProtocolError(
                "a binary frame on /twilio: Media Streams send JSON text frames",
                code="unsupported_frame",
                close=CLOSE_UNSUPPORTED,
            )
        msg = parse_twilio(text)
        if self.session is not None and msg.sequence is not None:
            self.session.stats["missing_messages"] += missing_between(self.sequence, msg.sequence)
        if msg.sequence is not None:
            self.sequence = msg.sequence
        if isinstance(msg, TwilioMedia):
            if self.session is None:
                raise ProtocolError("a media message before the start message", code="media_before_start", close=CLOSE_PROTOCOL)
            self.metrics.inc("ser_frames_received_total", source=self.source)
            self.session.stats["frames"] += 1
            late = self.assembler.late_samples
            self.assembler.add(msg.track, msg.timestamp_ms, msg.payload)
            if self.assembler.late_samples > late:
                self.metrics.inc("ser_frames_dropped_total", reason="late")
                self.session.stats["late_samples"] = self.assembler.late_samples
            chunk = self.assembler.release()
            if chunk is not None:
                self.session.stats["gap_samples"] = self.assembler.gap_samples
                await self.session.push(chunk)
        elif isinstance(msg, TwilioStart):
            await self.start(msg)
        elif msg.event == "stop":
            if self.session is None:
                raise ProtocolError("a stop message before the start message", code="stop_before_start", close=CLOSE_PROTOCOL)
            self.stopped = True
            chunk = self.assembler.release(final=True)
            if chunk is not None:
                await self.session.push(chunk)
            await self.registry.finish(self.session, "completed")
            await self.close(CLOSE_NORMAL, "stream stopped")
        elif msg.event == "dtmf" and self.session is not None:
            digit = {
                "digit": str(msg.data.get("digit", ""))[:8],
                "track": str(msg.data.get("track", ""))[:16],
                "at_s": round(self.assembler.position_s, 3),
            }
            self.session.dtmf.append(digit)
            self.registry.broadcast(
                self.call_id, [event("dtmf", self.call_id, self.session.next_seq(), self.session.position_s, **digit)]
            )
        elif msg.event == "connected":
            if msg.data.get("protocol") not in (None, "Call"):
                logger.warning("twilio connection: protocol %r, expected 'Call'", msg.data.get("protocol"))
        # mark: an echo of a mark the server sent (bidirectional streams); this service sends none

    async def start(self, msg: TwilioStart) -> None:
        if self.session is not None:
            raise ProtocolError(
                f"a second start message (call {msg.call_id!r}) on the stream of call {self.call_id!r}", code="duplicate_start"
            )
        custom = dict(msg.custom)
        token = custom.pop("token", None)
        secret = self.service.settings.token
        if (
            secret
            and not self.authorised
            and not (isinstance(token, str) and hmac.compare_digest(token.encode(), secret.encode()))
        ):
            self.call_id = msg.call_id
            self.metrics.inc("ser_calls_rejected_total", reason="unauthorized")
            raise ProtocolError(
                'not authorised: give the service\'s token as <Parameter name="token" value="..."/> in the <Stream>, '
                "or as a bearer header",
                code="unauthorized",
                close=CLOSE_POLICY,
            )
        roles = dict(self.service.settings.twilio_roles)
        for track in ("inbound", "outbound"):
            override = custom.get(f"{track}Role")
            if override is not None:
                roles[track] = check_role(str(override), f"customParameters.{track}Role")
        tracks = [t for t, _ in self.service.settings.twilio_roles if t in msg.tracks]
        parties = [roles[t] for t in tracks]
        if len(set(parties)) != len(parties):
            raise ProtocolError(
                f"customParameters give both tracks the party {parties[0]!r}", code="bad_field", close=CLOSE_PROTOCOL
            )
        settings = self.service.settings
        self.assembler = TrackAssembler(
            tracks, sr=TWILIO_RATE, encoding="mulaw", max_skew_s=settings.max_skew_s, min_release_s=settings.feed_s
        )
        await self.open_call(
            msg.call_id,
            parties=parties,
            sr=TWILIO_RATE,
            channels=len(tracks),
            tracks=tracks,
            metadata={**custom, "accountSid": msg.account_sid, "streamSid": msg.stream_sid},
            stream_sid=msg.stream_sid,
        )


class RawIngest(_Ingest):
    """Raw audio: a JSON start frame, binary frames of interleaved samples, ``{"event": "stop"}``."""

    source = "raw"

    def __init__(self, service, websocket: WebSocket, *, authorised: bool):
        super().__init__(service, websocket, authorised=authorised)
        self.start = None
        self.carry = b""

    async def handle(self, message: dict) -> None:
        text, data = message.get("text"), message.get("bytes")
        if self.session is None:
            if text is None:
                raise ProtocolError(
                    "the first frame must be a JSON text frame declaring the audio format", code="bad_start", close=CLOSE_PROTOCOL
                )
            self.start = start = parse_raw_start(text)
            await self.open_call(
                start.call_id or f"raw-{uuid.uuid4().hex[:20]}",
                parties=list(start.parties),
                sr=start.sample_rate,
                channels=start.channels,
                metadata=start.metadata,
            )
            await self.send(self.session.started_event())
            return
        if data is not None:
            self.metrics.inc("ser_frames_received_total", source=self.source)
            self.session.stats["frames"] += 1
            data = self.carry + data
            whole = len(data) - len(data) % self.start.frame_bytes
            self.carry = data[whole:]
            if whole:
                try:
                    chunk = decode(data[:whole], encoding=self.start.encoding, channels=self.start.channels)
                except ValueError as exc:
                    raise ProtocolError(f"an audio frame was rejected: {exc}", code="bad_audio") from None
                await self.session.push(chunk)
            return
        try:
            msg = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"not JSON ({exc.msg}): {text[:80]!r}", code="bad_json") from None
        kind = msg.get("event") if isinstance(msg, dict) else None
        if kind != "stop":
            raise ProtocolError(
                f'event={kind!r}: after the start frame only binary audio and {{"event": "stop"}} are expected',
                code="unknown_event",
            )
        self.stopped = True
        if self.carry:
            logger.warning("raw call %s: %d trailing bytes were not a whole frame", self.call_id, len(self.carry))
        await self.registry.finish(self.session, "completed")
        if self.session.summary_event is not None:
            await self.send(self.session.summary_event)
        await self.close(CLOSE_NORMAL, "call completed")
