"""What a call analysis returns: window results, their tables, and :class:`CallAnalysis`.

- :class:`WindowResult`: one scored window (smoothed and raw probabilities, emotion, sentiment).
- :func:`windows_frame`: window results as a table; :data:`WINDOW_COLUMNS`, :data:`SEGMENT_COLUMNS`,
  :data:`SPEECH_COLUMNS` name the columns of the three tables.
- :class:`CallAnalysis`: segments, windows, speech regions and summary of one call, written as
  JSON (:meth:`CallAnalysis.to_json`) or CSV (:meth:`CallAnalysis.to_csv`).
- :func:`format_clock`: seconds as a call clock (``mm:ss`` or ``h:mm:ss``), for reports and the page.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..decisions import UNCERTAIN, verdict
from ..io import atomic_write_text, dumps_json

#: Columns of :func:`windows_frame` (then ``p_<label>`` and ``raw_<label>`` per emotion).
WINDOW_COLUMNS = (
    "channel",
    "role",
    "region",
    "start_s",
    "end_s",
    "emotion",
    "confidence",
    "sentiment",
    "raw_emotion",
    "ready_s",
    "emitted_s",
    "uncertain",
    "valence",
    "arousal",
)
#: Columns of the segments table (then ``p_<label>`` per emotion).
SEGMENT_COLUMNS = (
    "channel",
    "role",
    "start_s",
    "end_s",
    "emotion",
    "confidence",
    "sentiment",
    "windows",
    "uncertain",
    "valence",
    "arousal",
)
#: Columns of the speech-regions table.
SPEECH_COLUMNS = ("channel", "role", "region", "start_s", "end_s", "closed", "judged")


def shown_emotions(frame: pd.DataFrame) -> pd.Series:
    """What each segment or window shows: its ``emotion``, or "uncertain" where ``uncertain`` is set."""
    if "uncertain" not in frame:
        return frame["emotion"].astype(str)
    unsure = frame["uncertain"].fillna(False).astype(bool)
    return frame["emotion"].astype(str).where(~unsure, UNCERTAIN)


def format_clock(seconds: float) -> str:
    """Seconds from the start of a call as a clock: ``75.3`` -> ``"01:15"``; ``3725`` -> ``"1:02:05"``."""
    s = int(round(float(seconds)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


@dataclass(frozen=True)
class WindowResult:
    """One window's answer: smoothed probabilities (and the raw ones), emotion, sentiment.

    ``ready_s`` is how much audio had arrived when the window's raw result was computed, and
    ``emitted_s`` when its smoothed result became final (the live latency is ``emitted_s - end_s``).
    ``probabilities`` and ``raw`` have shape ``(n_labels,)``. ``uncertain``: the smoothed top
    probability is below the bundle's threshold, so the window shows "uncertain" (:attr:`verdict`)
    rather than ``emotion``; ``valence`` and ``arousal`` are :func:`ser_lib.affect.affect` of the
    smoothed probabilities.
    """

    channel: int
    role: str
    region: int
    start_s: float
    end_s: float
    emotion: str
    confidence: float
    sentiment: float
    probabilities: np.ndarray
    raw: np.ndarray
    ready_s: float
    emitted_s: float
    uncertain: bool = False
    valence: float = 0.0
    arousal: float = 0.0

    @property
    def verdict(self) -> str:
        """What the timeline shows: the emotion, or "uncertain"."""
        return verdict(self.emotion, uncertain=self.uncertain)

    def row(self, labels: Sequence[str]) -> dict:
        """The window as one table row (:data:`WINDOW_COLUMNS`, ``p_<label>``, ``raw_<label>``)."""
        out = {
            "channel": self.channel,
            "role": self.role,
            "region": self.region,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "emotion": self.emotion,
            "confidence": self.confidence,
            "sentiment": self.sentiment,
            "raw_emotion": labels[int(np.argmax(self.raw))],
            "ready_s": self.ready_s,
            "emitted_s": self.emitted_s,
            "uncertain": bool(self.uncertain),
            "valence": float(self.valence),
            "arousal": float(self.arousal),
        }
        out.update({f"p_{lab}": float(v) for lab, v in zip(labels, self.probabilities, strict=True)})
        out.update({f"raw_{lab}": float(v) for lab, v in zip(labels, self.raw, strict=True)})
        return out


def windows_frame(results: Sequence[WindowResult], labels: Sequence[str]) -> pd.DataFrame:
    """Window results as a table: one row each, ``p_<label>`` (smoothed) and ``raw_<label>`` columns."""
    cols = [*WINDOW_COLUMNS, *[f"p_{lab}" for lab in labels], *[f"raw_{lab}" for lab in labels]]
    return pd.DataFrame([r.row(labels) for r in results]).reindex(columns=cols)


@dataclass
class CallAnalysis:
    """Everything known about one call: segments, windows, speech regions and the summary.

    Attributes
    ----------
    segments : pd.DataFrame
        One row per segment (see :func:`ser_lib.calls.segments_from_windows`).
    windows : pd.DataFrame
        One row per scored window (see :func:`windows_frame`).
    speech : pd.DataFrame
        Speech regions per channel (``closed`` is False for one still in progress).
    summary : dict
        See :func:`ser_lib.calls.summarize`.
    duration_s : float
        Seconds of audio analysed.
    roles, labels : list of str
        The party of each channel, and the model's emotions.
    settings : dict
        The :class:`~ser_lib.calls.TimelineSettings` used, with the engine's chunking.
    source, model : str
        Names of the recording and of the model.
    final : bool
        False for a live analysis still in progress.
    stats : dict
        Seconds spent in voice-activity detection, encoder and head.
    """

    segments: pd.DataFrame
    windows: pd.DataFrame
    speech: pd.DataFrame
    summary: dict
    duration_s: float
    roles: list[str]
    labels: list[str]
    settings: dict
    source: str = "call"
    model: str = ""
    final: bool = True
    stats: dict = field(default_factory=dict)

    @property
    def no_speech(self) -> bool:
        """True when nothing in the call could be judged (see :attr:`message`)."""
        return bool(self.summary.get("no_speech"))

    @property
    def uncertain_below(self) -> float:
        """The confidence below which windows and segments were "uncertain" (0: never)."""
        return float(self.settings.get("uncertain_below", 0.0) or 0.0)

    @property
    def message(self) -> str:
        """Why nothing could be judged (empty when something was)."""
        return self.summary.get("message", "")

    def segment_records(self) -> list[dict]:
        """Segments as dicts with ``probabilities`` (label -> value), as written to JSON.

        ``emotion`` is the segment's most probable emotion; ``verdict`` what is shown: the emotion,
        or "uncertain" when ``uncertain`` (its confidence is below the model's threshold).
        """
        out = []
        for r in self.segments.to_dict(orient="records"):
            probs = {lab: round(float(r.pop(f"p_{lab}")), 6) for lab in self.labels}
            out.append(
                {
                    "channel": int(r["channel"]),
                    "role": r["role"],
                    "start_s": round(float(r["start_s"]), 3),
                    "end_s": round(float(r["end_s"]), 3),
                    "emotion": r["emotion"],
                    "verdict": verdict(r["emotion"], uncertain=bool(r["uncertain"])),
                    "uncertain": bool(r["uncertain"]),
                    "confidence": round(float(r["confidence"]), 6),
                    "probabilities": probs,
                    "sentiment": round(float(r["sentiment"]), 6),
                    "valence": round(float(r["valence"]), 6),
                    "arousal": round(float(r["arousal"]), 6),
                    "windows": int(r["windows"]),
                }
            )
        return out

    def to_dict(self) -> dict:
        """The analysis as plain values: source, model, settings, ``segments`` and ``summary``."""
        return {
            "source": self.source,
            "model": self.model,
            "duration_s": round(float(self.duration_s), 3),
            "roles": self.roles,
            "labels": self.labels,
            "settings": self.settings,
            "no_speech": self.no_speech,
            "message": self.message,
            "segments": self.segment_records(),
            "summary": self.summary,
        }

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 1) -> str:
        """The analysis as JSON (``segments`` and ``summary``); also written atomically to ``path`` if given."""
        text = dumps_json(self.to_dict(), indent=indent)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The segments as CSV (one ``p_<label>`` column per emotion); also written atomically to ``path``."""
        text = self.segments.to_csv(index=False, float_format="%.4f")
        if path is not None:
            atomic_write_text(path, text)
        return text
