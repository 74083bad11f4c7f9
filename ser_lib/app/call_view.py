"""What the Call timeline page shows, computed without Streamlit: summary cards, the worst-moments
table, and a microphone conversation built by recording and appending turns.

The page reads its widgets, calls these and :mod:`ser_lib.calls`, and renders the results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..audio import load_audio, to_wav_bytes
from ..calls import CallAnalysis, StreamingAnalyzer, TimelineSettings, format_clock
from ..config import SAMPLE_RATE
from ..errors import ParameterError

#: Playback speeds offered for the live replay (``None``: as fast as the computer goes).
REPLAY_SPEEDS: dict[str, float | None] = {"1x (real time)": 1.0, "2x": 2.0, "5x": 5.0, "10x": 10.0, "as fast as possible": None}


@dataclass(frozen=True)
class PartyCard:
    """One party's headline figures, for ``st.metric``."""

    role: str
    dominant: str
    dominant_share: str
    mean_sentiment: str
    trend: str
    trend_delta: str | None
    speech: str


def party_cards(result: CallAnalysis) -> list[PartyCard]:
    """A card per party: dominant emotion and its share, mean sentiment, trend, speaking time."""
    cards = []
    for role, p in result.summary["parties"].items():
        trend = p["trend"]
        change = trend.get("change")
        cards.append(
            PartyCard(
                role=role,
                dominant=p["dominant"] or "no judged speech",
                dominant_share=f"{100 * p['shares'][p['dominant']]:.0f}% of judged speech" if p["dominant"] else "",
                mean_sentiment=f"{p['mean_sentiment']:+.2f}" if p["mean_sentiment"] is not None else "n/a",
                trend=trend["direction"],
                trend_delta=None
                if change is None
                else f"{change:+.2f} from Q{trend['first_quarter']} to Q{trend['last_quarter']}",
                speech=f"{format_clock(p['speech_s'])} ({100 * (p['talk_share'] or 0):.0f}% of the call)",
            )
        )
    return cards


def worst_table(result: CallAnalysis) -> pd.DataFrame:
    """The worst moments as a table: rank, time, party, emotion, confidence, sentiment, start second."""
    rows = [
        {
            "#": i,
            "time": f"{format_clock(m['start_s'])}-{format_clock(m['end_s'])}",
            "party": m["role"],
            "emotion": m["emotion"],
            "confidence": m["confidence"],
            "sentiment": m["sentiment"],
            "start_s": m["start_s"],
        }
        for i, m in enumerate(result.summary["worst_moments"], 1)
    ]
    return pd.DataFrame(rows, columns=["#", "time", "party", "emotion", "confidence", "sentiment", "start_s"])


def segments_table(result: CallAnalysis) -> pd.DataFrame:
    """Segments for display: clock times, party, emotion, confidence, sentiment."""
    s = result.segments
    return pd.DataFrame(
        {
            "start": s["start_s"].map(format_clock),
            "end": s["end_s"].map(format_clock),
            "party": s["role"],
            "emotion": s["emotion"],
            "confidence": s["confidence"].round(2),
            "sentiment": s["sentiment"].round(2),
        }
    )


def digest(data: bytes) -> str:
    """A short content hash: the page's cache key for an upload."""
    return hashlib.sha1(data).hexdigest()[:16]


@dataclass
class MicConversation:
    """A conversation recorded turn by turn in the browser (``st.audio_input``) and analysed live.

    Each recording is decoded, followed by ``gap_s`` of silence (so the detector closes the turn)
    and fed to one :class:`StreamingAnalyzer`, whose timeline grows turn by turn. A microphone is
    mono, so its one party is :data:`ser_lib.calls.MONO_ROLE`.
    """

    bundle: object
    settings: TimelineSettings = field(default_factory=TimelineSettings)
    gap_s: float = 1.0
    analyzer: StreamingAnalyzer = field(init=False)
    audio: list[np.ndarray] = field(init=False, default_factory=list)
    seen: list[str] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.analyzer = StreamingAnalyzer(self.bundle, sr=SAMPLE_RATE, channels=1, settings=self.settings, name="the recording")

    def add(self, data: bytes) -> bool:
        """Append one recording (WAV bytes); returns False if this recording was added already."""
        key = digest(data)
        if key in self.seen:
            return False
        y = load_audio(data, sr=SAMPLE_RATE, validate=False)
        if y.size == 0:
            raise ParameterError("The recording is empty: record again and speak for at least a second.")
        y = np.concatenate([y, np.zeros(int(self.gap_s * SAMPLE_RATE), np.float32)])
        self.analyzer.feed(y)
        self.audio.append(y)
        self.seen.append(key)
        return True

    @property
    def turns(self) -> int:
        return len(self.seen)

    def result(self) -> CallAnalysis:
        return self.analyzer.result(source="the recording")

    def wav(self) -> bytes:
        """Everything recorded so far (with the gaps) as WAV bytes, for the player."""
        y = np.concatenate(self.audio) if self.audio else np.zeros(SAMPLE_RATE // 10, np.float32)
        return to_wav_bytes(y, sr=SAMPLE_RATE)


def roles_for(left: str, options: Sequence[str] = ("agent", "customer")) -> tuple[str, str]:
    """The two roles with ``left`` on channel 0: the page's channel-role switch."""
    if left not in options:
        raise ParameterError(f"Left channel role {left!r} must be one of {list(options)}")
    other = [o for o in options if o != left][0]
    return (left, other)
