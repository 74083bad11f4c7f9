"""A telephone platform in a box: recordings streamed to the service as Twilio Media Streams.

``python -m ser_lib simulate-calls --url ws://127.0.0.1:8765/twilio --calls N [--speed 1] FILE...``
streams each recording (any format :mod:`soundfile` reads; resampled to 8 kHz) the way Twilio does:
``connected``, ``start`` (``callSid``, ``streamSid``, ``tracks``, ``mediaFormat`` audio/x-mulaw 8000 Hz
mono, ``customParameters``), one ``media`` message of 20 ms (160 mu-law bytes, base64) per track per
20 ms with ``chunk`` and ``timestamp``, then ``stop``. A stereo recording is two tracks: by default
its left channel is the agent (``outbound``, what the caller hears) and its right the customer
(``inbound``, the caller); a mono one is the ``inbound`` track only.

``speed`` 1 sends in real time, 4 four times faster, 0 as fast as the service takes it (the
service's back-pressure then paces the sender). Calls run concurrently; each is reported as a
:class:`SimulatedCall`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .codecs import mulaw_encode

logger = logging.getLogger(__name__)

FRAME_MS = 20
RATE = 8000
FRAME = RATE * FRAME_MS // 1000  # 160 samples


@dataclass
class Recording:
    """A recording as Twilio would send it: base64 payloads of 20 ms per track."""

    name: str
    tracks: dict[str, list[str]]
    seconds: float

    @property
    def frames(self) -> int:
        return max(len(p) for p in self.tracks.values())


@dataclass
class SimulatedCall:
    """What happened to one simulated call."""

    call_id: str
    file: str
    seconds: float
    sent_frames: int = 0
    t0: float = 0.0  # time.monotonic() of the first audio frame's due time
    wall_s: float = 0.0
    max_send_lag_s: float = 0.0  # how late (at most) a frame left, against real time x speed
    close_code: int | None = None
    close_reason: str = ""
    events: list[dict] = field(default_factory=list)

    @property
    def errors(self) -> list[dict]:
        return [e for e in self.events if e.get("type") == "error"]

    @property
    def complete(self) -> bool:
        return self.close_code in (None, 1000) and not any(e.get("fatal") for e in self.errors)


def load_recording(path: str | Path, *, roles: Sequence[str] = ("agent", "customer"), sr: int = RATE) -> Recording:
    """Read ``path``, resample to 8 kHz, mu-law encode, and cut into 20 ms payloads per Twilio track.

    ``roles``: the party of each channel of a stereo file (``agent`` -> ``outbound``, ``customer`` ->
    ``inbound``); a mono file is the ``inbound`` track.

    Raises
    ------
    ParameterError
        For more than two channels or roles other than agent and customer.
    UnreadableAudioError
        For a file that cannot be decoded.
    """
    from ..audio import iter_blocks

    blocks = list(iter_blocks(path, sr=sr, block_seconds=60.0))
    y = np.concatenate(blocks, axis=1) if blocks else np.zeros((1, 0), np.float32)
    if y.shape[0] > 2:
        raise ParameterError(f"{path} has {y.shape[0]} channels: a Twilio stream carries at most two tracks")
    tracks = {"agent": "outbound", "customer": "inbound"}
    if sorted(roles) != ["agent", "customer"]:
        raise ParameterError(f"roles={tuple(roles)} must be agent and customer in channel order, e.g. agent,customer")
    names = [tracks[r] for r in roles[: y.shape[0]]] if y.shape[0] == 2 else ["inbound"]
    out = {}
    for name, channel in zip(names, y, strict=True):
        data = mulaw_encode(channel)
        out[name] = [base64.b64encode(data[i : i + FRAME]).decode() for i in range(0, len(data), FRAME)]
    return Recording(Path(path).name, out, y.shape[1] / sr)


def twilio_start(call_id: str, stream_sid: str, tracks: Sequence[str], custom: dict) -> dict:
    """Twilio's ``start`` message for a call (sequenceNumber 1)."""
    return {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": stream_sid,
            "callSid": call_id,
            "tracks": list(tracks),
            "customParameters": custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1},
        },
        "streamSid": stream_sid,
    }


async def stream_call(
    url: str,
    recording: Recording,
    *,
    call_id: str | None = None,
    speed: float = 1.0,
    token: str | None = None,
    custom: dict | None = None,
    open_timeout: float = 30.0,
    close_timeout: float = 120.0,
) -> SimulatedCall:
    """Stream one recording to ``url`` (the service's ``/twilio``) as a Twilio Media Stream.

    ``token`` goes where Twilio puts it, in ``customParameters`` (a ``<Parameter>`` of the
    ``<Stream>``). Events the service sends back (errors) are kept in ``events``.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    call_id = call_id or "CA" + uuid.uuid4().hex
    stream_sid = "MZ" + uuid.uuid4().hex
    report = SimulatedCall(call_id, recording.name, recording.seconds)
    custom = dict(custom or {})
    if token:
        custom["token"] = token
    tracks = list(recording.tracks)
    t_start = time.monotonic()
    # no pings: while the service applies back-pressure it does not read, so it could not answer them
    async with connect(url, open_timeout=open_timeout, max_size=2**20, compression=None, ping_interval=None) as ws:

        async def receive() -> None:
            try:
                async for text in ws:
                    report.events.append(json.loads(text))
            except (ConnectionClosed, json.JSONDecodeError):
                pass

        listener = asyncio.create_task(receive())
        try:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send(json.dumps(twilio_start(call_id, stream_sid, tracks, custom)))
            seq = 1
            report.t0 = time.monotonic()
            for k in range(recording.frames):
                if speed:
                    wait = report.t0 + k * FRAME_MS / 1000 / speed - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    else:
                        report.max_send_lag_s = max(report.max_send_lag_s, -wait)
                for track in tracks:
                    payloads = recording.tracks[track]
                    if k >= len(payloads):
                        continue
                    seq += 1
                    await ws.send(
                        f'{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"{track}","chunk":"{k + 1}",'
                        f'"timestamp":"{k * FRAME_MS}","payload":"{payloads[k]}"}},"streamSid":"{stream_sid}"}}'
                    )
                report.sent_frames = k + 1
            seq += 1
            stop = {
                "event": "stop",
                "sequenceNumber": str(seq),
                "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_id},
                "streamSid": stream_sid,
            }
            await ws.send(json.dumps(stop))
            try:
                await asyncio.wait_for(ws.wait_closed(), timeout=close_timeout)
            except TimeoutError:  # the service should close after stop; do it ourselves
                logger.warning("call %s: the service did not close the stream %.0f s after stop", call_id, close_timeout)
                await ws.close()
        except ConnectionClosed:
            pass
        finally:
            try:
                await asyncio.wait_for(listener, timeout=10)
            except TimeoutError:
                listener.cancel()
        report.close_code = ws.close_code
        report.close_reason = ws.close_reason or ""
    report.wall_s = time.monotonic() - t_start
    return report


async def simulate_calls(
    url: str,
    files: Sequence[str | Path],
    *,
    calls: int = 1,
    speed: float = 1.0,
    token: str | None = None,
    roles: Sequence[str] = ("agent", "customer"),
    stagger_s: float = 0.0,
    recordings: dict | None = None,
    on_start=None,
) -> list[SimulatedCall]:
    """Stream ``calls`` calls concurrently, cycling through ``files``; call ``k`` starts ``k * stagger_s`` later.

    ``recordings``: already loaded :class:`Recording` objects by file (the benchmark reuses them).
    ``on_start``: called with each :class:`SimulatedCall`'s id as it starts (optional).
    """
    if not files:
        raise ParameterError("give at least one recording to stream")
    if calls < 1 or speed < 0:
        raise ParameterError(f"calls={calls} must be at least 1 and speed={speed} not negative (0: as fast as possible)")
    recordings = recordings if recordings is not None else {}
    for f in files:
        if str(f) not in recordings:
            recordings[str(f)] = load_recording(f, roles=roles)

    async def one(k: int) -> SimulatedCall:
        await asyncio.sleep(k * stagger_s)
        call_id = "CA" + uuid.uuid4().hex
        if on_start is not None:
            on_start(call_id)
        return await stream_call(url, recordings[str(files[k % len(files)])], call_id=call_id, speed=speed, token=token)

    return list(await asyncio.gather(*(one(k) for k in range(calls))))
