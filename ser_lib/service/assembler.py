"""The tracks of a Twilio stream put back in step: frames placed by timestamp, gaps as silence.

Twilio sends each track (``inbound``: the caller; ``outbound``: what the caller hears) as its own
series of ``media`` messages, each stamped with its position in milliseconds from the stream's
start. :class:`TrackAssembler` writes every payload at its timestamp, so frames that arrive out of
order land where they belong, and releases the audio in step on all tracks (one array per release,
``(tracks, n)``) as far as every track is complete. A hole in a track (a frame missing) is waited for
until the track has ``max_skew_s`` of audio beyond it, then released as silence: a gap in the
timestamps is silence. A track that stops, or never starts, is padded the same way so the others are
not held up. A frame for audio already released is *late*: it is counted (``late_samples``) and
reported, never silently merged into the past.

Payloads stay G.711 bytes until release (one table lookup per release, not per message).
"""

from __future__ import annotations

import numpy as np

from .codecs import ALAW_SILENCE, MULAW_SILENCE, decode
from .protocol import ProtocolError


class TrackAssembler:
    """Aligns the tracks of one stream by timestamp.

    Parameters
    ----------
    tracks : sequence of str
        Track names in channel order (e.g. ``("outbound", "inbound")``).
    sr : int
        Samples per second of every track (8000 for Twilio).
    encoding : {"mulaw", "alaw"}
        Payload encoding (one byte per sample).
    max_skew_s : float
        How much audio a track may have beyond a hole (or another track beyond a silent one)
        before the hole is released as silence.
    snap_s : float
        A frame whose timestamp is within this of where its track ends is placed right after it
        (timestamps are whole milliseconds; 20 ms frames should not overlap or leave 1-sample gaps).
    max_gap_s : float
        A timestamp further than this ahead of the released audio is refused (``bad_timestamp``):
        it would otherwise make the service allocate that much silence.
    min_release_s : float
        Release audio in pieces of at least this much (fewer, larger pieces: less work per message);
        the end of the stream releases whatever is left.
    """

    def __init__(
        self,
        tracks,
        *,
        sr: int = 8000,
        encoding: str = "mulaw",
        max_skew_s: float = 0.5,
        snap_s: float = 0.005,
        max_gap_s: float = 30.0,
        min_release_s: float = 0.0,
    ):
        self.tracks = tuple(tracks)
        self.sr, self.encoding = int(sr), encoding
        self._silence = bytes([MULAW_SILENCE if encoding == "mulaw" else ALAW_SILENCE])
        self._buf = {t: bytearray() for t in self.tracks}  # bytes from ``released`` on
        self._have = {t: bytearray() for t in self.tracks}  # 1 where a sample has arrived, 0 in a hole
        self._end = dict.fromkeys(self.tracks, 0)  # absolute sample where each track's last frame ended
        self.released = 0  # samples released on every track
        self._skew = int(round(max_skew_s * sr))
        self._snap = int(round(snap_s * sr))
        self._max_gap = int(round(max_gap_s * sr))
        self._min_release = max(1, int(round(min_release_s * sr)))
        self.late_samples = 0
        self.gap_samples = 0  # silence released where audio never came

    def add(self, track: str, timestamp_ms: int | None, payload: bytes) -> None:
        """Place one frame of ``track`` at ``timestamp_ms`` (None: right after the track's last frame).

        Raises
        ------
        ProtocolError
            ``unknown_track`` for a track the stream's ``start`` did not announce, ``bad_timestamp``
            for one further than ``max_gap_s`` ahead (both reject this frame only).
        """
        if track not in self._buf:
            raise ProtocolError(
                f"media for track {track!r}, which the stream's start did not announce (tracks: {list(self.tracks)})",
                code="unknown_track",
            )
        end = self._end[track]
        pos = end if timestamp_ms is None else int(round(timestamp_ms * self.sr / 1000))
        if abs(pos - end) <= self._snap:
            pos = end
        if pos - self.released > self._max_gap:
            raise ProtocolError(
                f"media.timestamp={timestamp_ms} ms is {(pos - self.released) / self.sr:.1f} s ahead of the audio so far; "
                f"gaps of more than {self._max_gap / self.sr:.0f} s are refused",
                code="bad_timestamp",
            )
        data = memoryview(payload)
        if pos < self.released:  # the start (or all) of this frame is in audio already released
            late = min(len(data), self.released - pos)
            self.late_samples += late
            data, pos = data[late:], self.released
            if not len(data):
                return
        buf, have = self._buf[track], self._have[track]
        a, b = pos - self.released, pos - self.released + len(data)
        if b > len(buf):
            have.extend(bytes(b - len(buf)))
            buf.extend(self._silence * (b - len(buf)))
        buf[a:b] = data
        have[a:b] = b"\x01" * len(data)
        self._end[track] = pos + len(data)

    def _ready(self, final: bool) -> int:
        furthest = self.released + max(len(b) for b in self._buf.values())
        if final:
            return furthest
        ready = furthest
        for t in self.tracks:
            hole = self._have[t].find(0)
            complete = self.released + (len(self._have[t]) if hole < 0 else hole)
            ready = min(ready, max(complete, furthest - self._skew))
        return ready

    def release(self, *, final: bool = False) -> np.ndarray | None:
        """The audio now complete on every track [shape=(tracks, n)], float32; None if there is none.

        ``final``: the stream ended, release everything (holes and shorter tracks as silence).
        """
        n = self._ready(final) - self.released
        if n <= 0 or (n < self._min_release and not final):
            return None
        rows = []
        for t in self.tracks:
            buf, have = self._buf[t], self._have[t]
            if len(buf) < n:
                have.extend(bytes(n - len(buf)))
                buf.extend(self._silence * (n - len(buf)))
            self.gap_samples += n - sum(have[:n]) if have.find(0, 0, n) >= 0 else 0
            rows.append(bytes(buf[:n]))
            del buf[:n], have[:n]
        self.released += n
        return np.concatenate([decode(r, encoding=self.encoding) for r in rows], axis=0)

    @property
    def position_s(self) -> float:
        """Where the stream is: the end of the latest audio received on any track, in seconds."""
        return max(self._end.values(), default=0) / self.sr

    @property
    def buffered_samples(self) -> int:
        """Samples held back, waiting for a hole to fill or for the other tracks (the most on any track)."""
        return max((len(b) for b in self._buf.values()), default=0)


def missing_between(previous: int | None, sequence: int | None) -> int:
    """Messages missing between two Twilio ``sequenceNumber`` values (0 when consecutive, unnumbered or repeated)."""
    if previous is None or sequence is None or sequence <= previous:
        return 0
    return sequence - previous - 1
