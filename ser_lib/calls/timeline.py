"""Emotion over a whole call, offline from disk or live as the audio arrives.

One engine serves both: :class:`StreamingAnalyzer` takes audio chunks of any size (20 ms packets
from a phone switch, or 30 s blocks read from disk) and :func:`analyze_call` is that same analyser
fed from :func:`ser_lib.audio.iter_blocks`, so memory stays flat however long the call is, and the
offline and live results come from the same voice-activity detection, windowing, smoothing and
segmentation code. Per channel (one party per channel in a stereo recording; the mix in mono):

1. **Speech** - :class:`ser_lib.vad.StreamingVAD` (Silero) finds speech regions; silence and hold
   time get no emotion.
2. **Windows** - inside each region, windows of ``window_s`` (3 s) every ``hop_s`` (1 s) from the
   region start, plus one window aligned to the region end when the grid leaves a tail. A region
   shorter than a window but at least ``min_window_s`` long is judged as one window; shorter
   speech (a "yes") is counted as speech but gets no emotion.
3. **Encoder frames** - for encoder bundles, the encoder runs once over each region's audio in
   consecutive chunks from the region start, one window (3 s) and then ``smooth + 1`` hops (2 s)
   each, and every window is pooled from the frames it covers
   (:meth:`ModelBundle.probabilities_from_frames`) instead of re-encoding overlapping windows. These
   short chunks cost no more encoder time per second than the front end's 10 s (measured on the
   same 5 minutes of speech: equal within the noise of a shared machine) and resemble how the
   training clips (1.5-5 s, encoded alone) were encoded. Live, a window that ends inside the chunk
   in progress is scored from that chunk encoded so far (same start, so the same positions), and
   scored again from the complete chunk before its smoothed result is final: the chunk length is
   chosen so that it is always complete by then. Offline and live results therefore differ only
   where the smoothing median used a neighbour still scored from a chunk in progress.
4. **Smoothing** - each window's probabilities are replaced by the per-class median over itself
   and its ``smooth`` neighbours on each side within the region, renormalised; one stray window
   cannot flip a segment. A window is final once its right neighbour exists (one hop later).
5. **Segments** - :func:`segments_from_windows` gives each window the stretch of time nearest its
   centre, joins neighbours with the same emotion, and merges runs shorter than
   ``min_segment_s`` into the neighbour they resemble most.
6. **Summary** - :func:`summarize`: per party and overall, per quarter of the call, the trend and
   the strongest negative moments.

Sentiment is ``sum(p[e] * SENTIMENT_WEIGHTS[e])`` over the emotions (:data:`ser_lib.config.SENTIMENT_WEIGHTS`):
happy +1, calm and surprise +0.25, neutral 0, sad and fear -0.75, angry and disgust -1, so it
lies in [-1, 1].
"""

from __future__ import annotations

import ctypes
import io
import json
import logging
import os
import struct
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..audio import AudioSource, audio_info, iter_blocks, source_name
from ..config import SAMPLE_RATE, SENTIMENT_WEIGHTS
from ..errors import ParameterError, UnreadableAudioError
from .vad import SpeechRegion, StreamingVAD, VADSettings

logger = logging.getLogger(__name__)


#: Roles of a stereo call: channel 0 (left) and channel 1 (right).
DEFAULT_ROLES: tuple[str, str] = ("agent", "customer")
#: The one party of a mono recording: both voices mixed, which no channel split can separate.
MONO_ROLE: str = "speaker"
#: Segments at or below this sentiment can be a "worst moment".
WORST_BELOW: float = -0.25
#: A change in mean sentiment between the first and last quarter with speech larger than this
#: (either way) makes the trend "improving" or "worsening"; otherwise "steady".
TREND_STEP: float = 0.15
#: Encoder frames per second and audio samples per frame.
_FRAME_RATE = 50
_HOP = SAMPLE_RATE // _FRAME_RATE

ProgressCallback = Callable[[float, float], None]


def _frames_of(seconds: float, what: str) -> int:
    """``seconds`` as a whole number of 20 ms encoder frames, or an error saying so."""
    n = seconds * _FRAME_RATE
    if abs(n - round(n)) > 1e-6:
        raise ParameterError(f"{what}={seconds} s must be a multiple of 0.02 s (one encoder frame), e.g. 3.0 or 2.5")
    return int(round(n))


@dataclass(frozen=True)
class TimelineSettings:
    """Windowing, smoothing and segmentation, shared by the offline and the live analysis.

    Parameters
    ----------
    window_s : float
        Window length in seconds (the models were trained on 1.5-5 s clips; 2.5-3 s is right).
    hop_s : float
        Seconds between window starts (0.5-1 s). Live results lag one hop (the smoothing's look-ahead).
    smooth : int
        Neighbours on each side in the median smoothing (0: none).
    min_window_s : float
        Speech regions shorter than this get no emotion (too little to judge).
    min_segment_s : float
        Runs of one emotion shorter than this are merged into a neighbouring segment.
    vad : VADSettings
        Voice-activity detection settings.
    """

    window_s: float = 3.0
    hop_s: float = 1.0
    smooth: int = 1
    min_window_s: float = 1.0
    min_segment_s: float = 1.5
    vad: VADSettings = field(default_factory=VADSettings)

    def __post_init__(self):
        w = _frames_of(self.window_s, "window_s")
        h = _frames_of(self.hop_s, "hop_s")
        if not 0.5 <= self.window_s <= 30.0:
            raise ParameterError(f"window_s={self.window_s} must be between 0.5 and 30 s; 2.5-3 s suits the models")
        if not 0 < h <= w:
            raise ParameterError(f"hop_s={self.hop_s} must be positive and at most window_s={self.window_s}")
        if not 0 <= int(self.smooth) <= 5 or int(self.smooth) != self.smooth:
            raise ParameterError(f"smooth={self.smooth} must be a whole number of neighbours from 0 to 5")
        if not 0.25 <= self.min_window_s <= self.window_s:
            raise ParameterError(f"min_window_s={self.min_window_s} must be between 0.25 s and window_s={self.window_s}")
        if self.min_segment_s < 0:
            raise ParameterError(f"min_segment_s={self.min_segment_s} must not be negative")
        if not isinstance(self.vad, VADSettings):
            raise ParameterError(f"vad must be a VADSettings, got {type(self.vad).__name__}")

    @property
    def chunk_s(self) -> float:
        """Seconds per encoder chunk after a region's first (which is one window): ``smooth + 1`` hops,
        at least the encoder's 2 s minimum input. A live window's result is final ``smooth`` hops
        after its audio, and by then the chunk its audio ends in is complete, so it is scored from
        the offline frames."""
        hops = max(int(self.smooth) + 1, int(np.ceil(2.0 / self.hop_s - 1e-9)))
        return round(hops * self.hop_s, 6)

    def to_dict(self) -> dict:
        return {**asdict(self), "chunk_s": self.chunk_s}


# --- sentiment, roles, smoothing ------------------------------------------------------------------


def sentiment_weights(labels: Sequence[str]) -> np.ndarray:
    """The sentiment weight of each label [shape=(n_labels,)] (0 for a label without one)."""
    return np.array([SENTIMENT_WEIGHTS.get(lab, 0.0) for lab in labels], dtype=float)


def sentiment(probabilities: np.ndarray, *, labels: Sequence[str]) -> np.ndarray:
    """Sentiment in [-1, 1] of probabilities [shape=(..., n_labels)]: positive minus negative emotions."""
    return np.asarray(probabilities, float) @ sentiment_weights(labels)


def channel_roles(channels: int, roles: Sequence[str] | None = None) -> list[str]:
    """The role of each channel: ``roles`` in channel order for stereo, :data:`MONO_ROLE` for mono.

    Channels beyond ``roles`` are named ``"channel 3"``, ``"channel 4"``, ...
    """
    if channels < 1:
        raise ParameterError(f"channels={channels} must be at least 1")
    if channels == 1:
        return [MONO_ROLE]
    roles = list(DEFAULT_ROLES if roles is None else roles)
    if any(not isinstance(r, str) or not r.strip() for r in roles):
        raise ParameterError(f"roles={roles} must be non-empty names, e.g. ('agent', 'customer')")
    out = [roles[c].strip() if c < len(roles) else f"channel {c + 1}" for c in range(channels)]
    if len(set(out)) != len(out):
        raise ParameterError(f"roles={out} name a party twice: give each channel its own role")
    return out


def parse_roles(text: str) -> tuple[str, ...]:
    """``"agent,customer"`` -> ``("agent", "customer")`` (the CLI's and the page's format)."""
    roles = tuple(r.strip() for r in str(text).split(","))
    if len(roles) < 2 or any(not r for r in roles):
        raise ParameterError(
            f"--channels {text!r} must name the parties in channel order, separated by a comma, e.g. "
            "'agent,customer' (left is the agent) or 'customer,agent'"
        )
    return roles


def smooth_probabilities(raw: np.ndarray, *, radius: int = 1) -> np.ndarray:
    """Median of each class over ``radius`` neighbours each side, renormalised to sum to 1.

    Parameters
    ----------
    raw : np.ndarray [shape=(k, n_labels)]
        Window probabilities of one speech region, in time order.

    Returns
    -------
    smoothed : np.ndarray [shape=(k, n_labels)]
    """
    raw = np.asarray(raw, float)
    if radius <= 0 or len(raw) < 2:
        return raw.copy()
    out = np.empty_like(raw)
    for j in range(len(raw)):
        out[j] = _median_at(raw, j, radius)
    return out


def _median_at(raw: Sequence[np.ndarray] | np.ndarray, j: int, radius: int) -> np.ndarray:
    lo, hi = max(0, j - radius), min(len(raw), j + radius + 1)
    m = np.median(np.asarray(raw[lo:hi], float), axis=0)
    s = m.sum()
    return m / s if s > 0 else np.asarray(raw[j], float)


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowResult:
    """One window's answer: smoothed probabilities (and the raw ones), emotion, sentiment.

    ``ready_s`` is how much audio had arrived when the window's raw result was computed, and
    ``emitted_s`` when its smoothed result became final (the live latency is ``emitted_s - end_s``).
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

    def row(self, labels: Sequence[str]) -> dict:
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
        }
        out.update({f"p_{lab}": float(v) for lab, v in zip(labels, self.probabilities)})
        out.update({f"raw_{lab}": float(v) for lab, v in zip(labels, self.raw)})
        return out


WINDOW_COLUMNS = ("channel", "role", "region", "start_s", "end_s", "emotion", "confidence", "sentiment", "raw_emotion", "ready_s", "emitted_s")
SEGMENT_COLUMNS = ("channel", "role", "start_s", "end_s", "emotion", "confidence", "sentiment", "windows")
SPEECH_COLUMNS = ("channel", "role", "region", "start_s", "end_s", "closed", "judged")


def windows_frame(results: Sequence[WindowResult], labels: Sequence[str]) -> pd.DataFrame:
    """Window results as a table: one row each, ``p_<label>`` (smoothed) and ``raw_<label>`` columns."""
    cols = [*WINDOW_COLUMNS, *[f"p_{lab}" for lab in labels], *[f"raw_{lab}" for lab in labels]]
    return pd.DataFrame([r.row(labels) for r in results]).reindex(columns=cols)


def segments_from_windows(
    windows: pd.DataFrame,
    speech: pd.DataFrame,
    *,
    labels: Sequence[str],
    min_segment_s: float = 1.5,
) -> pd.DataFrame:
    """Segments of one emotion from smoothed windows, region by region.

    Each window owns the time nearest its centre (the region's start to the first midpoint,
    midpoints between centres, the last midpoint to the region's end), so a region's segments tile
    it exactly. Consecutive windows with the same emotion form a run; runs shorter than
    ``min_segment_s`` are merged into the neighbour whose emotion they gave more probability.

    Parameters
    ----------
    windows : pd.DataFrame
        From :func:`windows_frame` (``channel``, ``role``, ``region``, ``start_s``, ``end_s``, ``p_*``).
    speech : pd.DataFrame
        Speech regions (``channel``, ``region``, ``start_s``, ``end_s``).

    Returns
    -------
    segments : pd.DataFrame
        ``channel``, ``role``, ``start_s``, ``end_s``, ``emotion``, ``confidence``, ``sentiment``,
        ``windows`` (how many), and ``p_<label>`` (time-weighted mean of the smoothed windows).
    """
    cols = [*SEGMENT_COLUMNS, *[f"p_{lab}" for lab in labels]]
    if windows is None or windows.empty:
        return pd.DataFrame(columns=cols)
    pcols = [f"p_{lab}" for lab in labels]
    weights = sentiment_weights(labels)
    bounds = {(int(r.channel), int(r.region)): (float(r.start_s), float(r.end_s)) for r in speech.itertuples()}
    rows = []
    for (channel, region), w in windows.groupby(["channel", "region"], sort=True):
        w = w.sort_values("start_s")
        probs = w[pcols].to_numpy(float)
        starts, ends = w["start_s"].to_numpy(float), w["end_s"].to_numpy(float)
        r0, r1 = bounds.get((int(channel), int(region)), (starts[0], ends[-1]))
        r0, r1 = min(r0, starts[0]), max(r1, ends[-1])
        centres = (starts + ends) / 2
        cuts = np.concatenate([[r0], (centres[1:] + centres[:-1]) / 2, [r1]])
        dur = np.diff(cuts)
        label_idx = probs.argmax(axis=1)
        runs: list[list[int]] = []  # [label, first, last]
        for j, k in enumerate(label_idx):
            if runs and runs[-1][0] == k:
                runs[-1][2] = j
            else:
                runs.append([int(k), j, j])
        while len(runs) > 1:
            lengths = [cuts[b + 1] - cuts[a] for _, a, b in runs]
            i = int(np.argmin(lengths))
            if lengths[i] >= min_segment_s:
                break
            _, a, b = runs[i]
            mean = probs[a : b + 1].mean(axis=0)
            options = [n for n in (i - 1, i + 1) if 0 <= n < len(runs)]
            target = max(options, key=lambda n: mean[runs[n][0]])  # ties: the earlier neighbour
            runs[target][1] = min(runs[target][1], a)
            runs[target][2] = max(runs[target][2], b)
            del runs[i]
            merged: list[list[int]] = []
            for run in runs:
                if merged and merged[-1][0] == run[0]:
                    merged[-1][2] = run[2]
                else:
                    merged.append(run)
            runs = merged
        role = w["role"].iloc[0]
        for k, a, b in runs:
            d = dur[a : b + 1]
            mean = (probs[a : b + 1] * d[:, None]).sum(axis=0) / max(d.sum(), 1e-9)
            row = {
                "channel": int(channel),
                "role": role,
                "start_s": float(cuts[a]),
                "end_s": float(cuts[b + 1]),
                "emotion": labels[k],
                "confidence": float(mean[k]),
                "sentiment": float(mean @ weights),
                "windows": int(b - a + 1),
            }
            row.update({c: float(v) for c, v in zip(pcols, mean)})
            rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=cols)
    return out.sort_values(["start_s", "channel"], kind="stable").reset_index(drop=True)


# --- the summary ----------------------------------------------------------------------------------


def _party_summary(segments: pd.DataFrame, windows: pd.DataFrame, speech: pd.DataFrame, *, duration_s: float, labels: Sequence[str]) -> dict:
    speech_s = float((speech["end_s"] - speech["start_s"]).sum()) if len(speech) else 0.0
    out: dict[str, Any] = {
        "speech_s": round(speech_s, 2),
        "talk_share": round(speech_s / duration_s, 4) if duration_s > 0 else None,
    }
    out.update(_share_summary(segments, labels=labels))
    quarters = []
    edges = np.linspace(0.0, duration_s, 5)
    for q in range(4):
        a, b = float(edges[q]), float(edges[q + 1])
        clipped = _clip_segments(segments, a, b)
        quarters.append({"quarter": q + 1, "start_s": round(a, 2), "end_s": round(b, 2), **_share_summary(clipped, labels=labels)})
    out["quarters"] = quarters
    out["trend"] = _trend(quarters, windows)
    return out


def _clip_segments(segments: pd.DataFrame, a: float, b: float) -> pd.DataFrame:
    if segments.empty:
        return segments
    s = segments[(segments["end_s"] > a) & (segments["start_s"] < b)].copy()
    s["start_s"] = s["start_s"].clip(lower=a)
    s["end_s"] = s["end_s"].clip(upper=b)
    return s


def _share_summary(segments: pd.DataFrame, *, labels: Sequence[str]) -> dict:
    if segments is None or segments.empty:
        return {"judged_s": 0.0, "dominant": None, "mean_sentiment": None, "shares": {lab: 0.0 for lab in labels}}
    d = (segments["end_s"] - segments["start_s"]).to_numpy(float)
    total = float(d.sum())
    by = pd.Series(d, index=segments["emotion"].to_numpy()).groupby(level=0).sum()
    shares = {lab: round(float(by.get(lab, 0.0)) / total, 4) if total > 0 else 0.0 for lab in labels}
    dominant = max(labels, key=lambda lab: shares[lab]) if total > 0 else None
    mean = float((segments["sentiment"].to_numpy(float) * d).sum() / total) if total > 0 else None
    return {"judged_s": round(total, 2), "dominant": dominant, "mean_sentiment": None if mean is None else round(mean, 4), "shares": shares}


def _trend(quarters: list[dict], windows: pd.DataFrame) -> dict:
    with_speech = [q for q in quarters if q["mean_sentiment"] is not None]
    slope = None
    if windows is not None and len(windows) >= 3:
        t = ((windows["start_s"] + windows["end_s"]) / 2).to_numpy(float) / 60.0
        if np.ptp(t) > 0:
            slope = round(float(np.polyfit(t, windows["sentiment"].to_numpy(float), 1)[0]), 4)
    if len(with_speech) < 2:
        return {"first": None, "last": None, "change": None, "slope_per_min": slope, "direction": "n/a"}
    first, last = with_speech[0]["mean_sentiment"], with_speech[-1]["mean_sentiment"]
    change = last - first
    direction = "improving" if change > TREND_STEP else "worsening" if change < -TREND_STEP else "steady"
    return {
        "first": first,
        "first_quarter": with_speech[0]["quarter"],
        "last": last,
        "last_quarter": with_speech[-1]["quarter"],
        "change": round(change, 4),
        "slope_per_min": slope,
        "direction": direction,
    }


def worst_moments(segments: pd.DataFrame, windows: pd.DataFrame, *, n: int = 5, below: float = WORST_BELOW) -> list[dict]:
    """The ``n`` most negative segments (sentiment at or below ``below``), most negative first.

    Each has ``role``, ``channel``, ``start_s``, ``end_s``, ``emotion``, ``confidence``,
    ``sentiment`` and ``peak_s`` (centre of the segment's most negative window: where to listen).
    """
    if segments is None or segments.empty:
        return []
    neg = segments[segments["sentiment"] <= below].sort_values(["sentiment", "start_s"]).head(n)
    out = []
    for r in neg.itertuples():
        peak = (r.start_s + r.end_s) / 2
        if windows is not None and not windows.empty:
            w = windows[(windows["channel"] == r.channel) & (windows["end_s"] > r.start_s) & (windows["start_s"] < r.end_s)]
            if len(w):
                j = w["sentiment"].to_numpy(float).argmin()
                peak = float(np.clip((w["start_s"].iloc[j] + w["end_s"].iloc[j]) / 2, r.start_s, r.end_s))
        out.append(
            {
                "role": r.role,
                "channel": int(r.channel),
                "start_s": round(float(r.start_s), 2),
                "end_s": round(float(r.end_s), 2),
                "peak_s": round(float(peak), 2),
                "emotion": r.emotion,
                "confidence": round(float(r.confidence), 4),
                "sentiment": round(float(r.sentiment), 4),
            }
        )
    return out


def summarize(
    segments: pd.DataFrame,
    windows: pd.DataFrame,
    speech: pd.DataFrame,
    *,
    duration_s: float,
    roles: Sequence[str],
    labels: Sequence[str],
    settings: TimelineSettings | None = None,
    name: str = "the call",
    n_worst: int = 5,
) -> dict:
    """The call summary: overall and per party, per quarter, the trend, the worst moments.

    Returns
    -------
    summary : dict
        ``duration_s``, ``roles``, ``no_speech`` and ``message``, ``parties`` (role ->
        ``speech_s``, ``talk_share``, ``judged_s``, ``dominant``, ``mean_sentiment``, ``shares``
        (fraction of judged time per emotion), ``quarters`` (the same four times) and ``trend``
        (``first``, ``last``, ``change``, ``slope_per_min``, ``direction``)), ``overall`` (the same
        over every party), ``worst_moments`` and ``sentiment_weights``.
    """
    settings = settings or TimelineSettings()
    parties = {}
    for role in roles:
        parties[role] = _party_summary(
            segments[segments["role"] == role] if len(segments) else segments,
            windows[windows["role"] == role] if len(windows) else windows,
            speech[speech["role"] == role] if len(speech) else speech,
            duration_s=duration_s,
            labels=labels,
        )
    overall = _party_summary(segments, windows, speech, duration_s=duration_s, labels=labels)
    no_speech = segments is None or segments.empty
    if not no_speech:
        message = ""
    elif speech is None or speech.empty:
        message = (
            f"No speech found in {name}: the voice-activity detector heard no speech in {duration_s:.1f} s of audio "
            "(silence, hold music, tones or noise), so there is no emotion to show. Check that this is the right "
            "recording and that its level is not near silent."
        )
    else:
        total = float((speech["end_s"] - speech["start_s"]).sum())
        message = (
            f"No speech long enough to judge in {name}: {len(speech)} stretch(es) of speech, {total:.1f} s in all, "
            f"each shorter than {settings.min_window_s} s, the least an emotion can be judged on."
        )
    return {
        "duration_s": round(float(duration_s), 3),
        "roles": list(roles),
        "no_speech": bool(no_speech),
        "message": message,
        "parties": parties,
        "overall": overall,
        "worst_moments": worst_moments(segments, windows, n=n_worst),
        "sentiment_weights": {lab: float(w) for lab, w in zip(labels, sentiment_weights(labels))},
    }


# --- the analysis result ------------------------------------------------------------------------------


@dataclass
class CallAnalysis:
    """Everything known about one call: segments, windows, speech regions and the summary.

    Attributes
    ----------
    segments : pd.DataFrame
        One row per segment (see :func:`segments_from_windows`).
    windows : pd.DataFrame
        One row per scored window (see :func:`windows_frame`).
    speech : pd.DataFrame
        Speech regions per channel (``closed`` is False for one still in progress).
    summary : dict
        See :func:`summarize`.
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
    def message(self) -> str:
        return self.summary.get("message", "")

    def segment_records(self) -> list[dict]:
        """Segments as dicts with ``probabilities`` (label -> value), as written to JSON."""
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
                    "confidence": round(float(r["confidence"]), 6),
                    "probabilities": probs,
                    "sentiment": round(float(r["sentiment"]), 6),
                    "windows": int(r["windows"]),
                }
            )
        return out

    def to_dict(self) -> dict:
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
        """The analysis as JSON (``segments`` and ``summary``); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent, default=_json_default)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The segments as CSV (one ``p_<label>`` column per emotion); also written to ``path``."""
        text = self.segments.to_csv(index=False, float_format="%.4f")
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"Not JSON serialisable: {type(o).__name__}")


# --- the engine -----------------------------------------------------------------------------------


class _Region:
    """A speech region being analysed on one channel (times in samples from the region start)."""

    __slots__ = ("index", "start", "end", "frames", "frames0", "encoded", "partial", "next_k", "pending", "history", "closed", "tail_done")

    def __init__(self, index: int, start: int):
        self.index, self.start = index, start
        self.end: int | None = None
        self.frames: np.ndarray | None = None  # encoder frames from frame ``frames0`` of the region
        self.frames0 = 0
        self.encoded = 0  # samples of the region encoded so far
        self.partial: np.ndarray | None = None  # frames of the chunk in progress, encoded so far (live only)
        self.next_k = 0  # next grid window
        self.pending: list[list] = []  # [start, end, raw, ready_s, partial] of scored windows not yet final
        self.history: list[np.ndarray] = []  # raw of the last final windows (the median's left side)
        self.closed = False
        self.tail_done = False


@dataclass
class _Job:
    """A window waiting for the model: its input and its (still empty) entry in ``region.pending``."""

    entry: list
    x: np.ndarray


class _Track:
    """One channel: its VAD, a bounded audio buffer, and the region in progress."""

    def __init__(self, owner: "StreamingAnalyzer", channel: int, role: str):
        self.owner, self.channel, self.role = owner, channel, role
        self.vad = StreamingVAD(settings=owner.settings.vad)
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf0 = 0  # absolute sample of buf[0]
        self.region: _Region | None = None
        self.touched: list[_Region] = []
        self.speech: list[dict] = []

    # audio buffer --------------------------------------------------------------------------------
    def _audio(self, a: int, b: int) -> np.ndarray:
        if a < self.buf0:
            raise RuntimeError(f"audio from sample {a} was already dropped (buffer starts at {self.buf0})")
        return self.buf[a - self.buf0 : b - self.buf0]

    def _trim(self) -> None:
        o = self.owner
        keep = self.vad.position - o._pad - FRAME_SLACK
        pending = self.vad.pending_start
        if pending is not None and self.vad.open_region is None:  # speech that may yet become a region
            keep = min(keep, pending)
        r = self.region
        if r is not None:
            if o.encoder:
                need = r.encoded - o._context
            else:
                need = (r.next_k - 1) * o._hop
            keep = min(keep, r.start + max(0, need))
        keep = max(self.buf0, keep)
        if keep - self.buf0 > SAMPLE_RATE:  # drop in steps of at least a second
            self.buf = self.buf[keep - self.buf0 :].copy()
            self.buf0 = keep

    # feeding ---------------------------------------------------------------------------------------
    def feed(self, y: np.ndarray, jobs: list[_Job]) -> None:
        self.buf = np.concatenate([self.buf, y]) if len(self.buf) else y.copy()
        self.touched = []
        t0 = time.perf_counter()
        closed = self.vad.feed(y)
        self.owner.vad_seconds += time.perf_counter() - t0
        for reg in closed:
            self._close(reg, jobs)
        self._advance_open(jobs)
        self._trim()

    def finish(self, jobs: list[_Job]) -> None:
        self.touched = []
        for reg in self.vad.finish():
            self._close(reg, jobs)

    def _close(self, reg: SpeechRegion, jobs: list[_Job]) -> None:
        r = self.region if self.region is not None and self.region.index == reg.index else _Region(reg.index, reg.start)
        r.end = reg.end - reg.start
        self._advance(r, r.end, final=True, jobs=jobs)
        r.closed = True
        self.region = None
        self.speech.append({"region": reg.index, "start": reg.start, "end": reg.end})
        if r not in self.touched:
            self.touched.append(r)

    def _advance_open(self, jobs: list[_Job]) -> None:
        op = self.vad.open_region
        if op is None:
            return
        if self.region is None or self.region.index != op.index:
            self.region = _Region(op.index, op.start)
        self._advance(self.region, op.confirmed - op.start, final=False, jobs=jobs)
        if self.region not in self.touched:
            self.touched.append(self.region)

    def _advance(self, r: _Region, available: int, *, final: bool, jobs: list[_Job]) -> None:
        """Encode what is complete of region ``r`` up to ``available`` samples; queue ready windows."""
        o = self.owner
        if o.encoder:
            while True:
                # the first chunk covers at least the first window, so a region shorter than a
                # window is encoded in one piece, as offline and as in training
                step = max(o._chunk, o._window) if r.encoded == 0 else o._chunk
                if r.encoded + step > available:
                    break
                self._encode(r, r.encoded, r.encoded + step)
            if final and r.encoded < available:
                self._encode(r, r.encoded, available)
            for e in r.pending:  # windows scored from a chunk in progress that is now complete: score
                if e[4] and e[1] <= r.encoded:  # them again from its final frames, as offline does
                    e[4] = False
                    jobs.append(_Job(e, self._window_input(r, e[0], e[1])))
            ready = r.encoded
            if o.grow and not final and r.encoded < r.next_k * o._hop + o._window <= available:
                # live: a window ends inside the chunk in progress; encode that chunk as far as it
                # goes (same start, so the same positions as the complete chunk will have)
                self._encode(r, r.encoded, available, partial=True)
                ready = available
        else:
            ready = available
        W, H = o._window, o._hop
        while r.next_k * H + W <= ready:
            a = r.next_k * H
            self._queue(r, a, a + W, jobs)
            r.next_k += 1
        if final and not r.tail_done:
            r.tail_done = True
            if r.next_k == 0:
                if available >= o._min_window:
                    self._queue(r, 0, available, jobs)
            elif available - ((r.next_k - 1) * H + W) >= H / 2:
                self._queue(r, available - W, available, jobs)

    def _encode(self, r: _Region, a: int, b: int, *, partial: bool = False) -> None:
        """Encode samples [a, b) of region ``r`` (plus ``context_s`` before them) and keep their frames;
        ``partial``: the chunk in progress so far, kept apart until the whole chunk is encoded."""
        o = self.owner
        lead = min(a, o._context)  # whole frames (context_s is), never before the region start
        y = self._audio(r.start + a - lead, r.start + b)
        t0 = time.perf_counter()
        frames = o.bundle.encoder().encode(y)[lead // _HOP :]
        o.encode_seconds += time.perf_counter() - t0
        o.encoded_audio_s += len(y) / SAMPLE_RATE
        if partial:
            r.partial = frames
            return
        r.partial = None
        if r.frames is None or len(r.frames) == 0:
            r.frames, r.frames0 = frames, a // _HOP
        else:
            r.frames = np.concatenate([r.frames, frames])
        r.encoded = b

    def _queue(self, r: _Region, a: int, b: int, jobs: list[_Job]) -> None:
        o = self.owner
        entry = [a, b, None, 0.0, bool(o.encoder and b > r.encoded)]  # start, end, raw, ready_s, from a partial chunk
        r.pending.append(entry)
        jobs.append(_Job(entry, self._window_input(r, a, b)))
        # frames before the earliest window still to be final (or a tail window one hop back) are no longer needed
        if o.encoder and r.frames is not None and not r.closed:
            first = min([e[0] for e in r.pending] + [(r.next_k - 1) * o._hop])
            keep = max(0, first // _HOP - r.frames0)
            if keep > 0:
                r.frames = r.frames[keep:]
                r.frames0 += keep

    def _window_input(self, r: _Region, a: int, b: int) -> np.ndarray:
        """What the model sees for samples [a, b) of region ``r``: its encoder frames (those of the
        chunk in progress where the window reaches into it), or its features."""
        o = self.owner
        if not o.encoder:
            return o.bundle.features(self._audio(r.start + a, r.start + b), sr=SAMPLE_RATE)
        frames = r.frames
        if r.partial is not None and b > r.encoded:
            frames = r.partial if frames is None or len(frames) == 0 else np.concatenate([frames, r.partial])
            if r.frames is None or len(r.frames) == 0:
                r.frames0 = r.encoded // _HOP
        f0 = int(round(a / _HOP)) - r.frames0
        f1 = min(len(frames), int(round(b / _HOP)) - r.frames0)
        return frames[f0 : max(f0 + 1, f1)]

    # results -----------------------------------------------------------------------------------------
    def emit(self, position_s: float) -> list[WindowResult]:
        out: list[WindowResult] = []
        for r in self.touched:
            out += self._emit_region(r, position_s)
        self.touched = []
        return out

    def _emit_region(self, r: _Region, position_s: float) -> list[WindowResult]:
        """Final results of region ``r``: a window is final once ``smooth`` windows after it are
        scored, or when the region has closed (the same median as :func:`smooth_probabilities`)."""
        o = self.owner
        radius = int(o.settings.smooth)
        out = []
        while r.pending and (r.closed or len(r.pending) > radius):
            a, b, raw, ready = r.pending[0][:4]
            left = r.history[-radius:] if radius else []
            seq = [*left, raw, *[p[2] for p in r.pending[1 : 1 + radius]]]
            smoothed = _median_at(seq, len(left), radius)
            r.pending.pop(0)
            r.history = [*left, raw][-radius:] if radius else []
            k = int(np.argmax(smoothed))
            out.append(
                WindowResult(
                    channel=self.channel,
                    role=self.role,
                    region=r.index,
                    start_s=(r.start + a) / SAMPLE_RATE,
                    end_s=(r.start + b) / SAMPLE_RATE,
                    emotion=o.labels[k],
                    confidence=float(smoothed[k]),
                    sentiment=float(smoothed @ o._weights),
                    probabilities=smoothed,
                    raw=np.asarray(raw, float),
                    ready_s=ready,
                    emitted_s=position_s,
                )
            )
        return out

    def provisional(self) -> list[tuple[int, int, int, np.ndarray]]:
        r = self.region
        if r is None:
            return []
        return [(r.index, r.start + e[0], r.start + e[1], e[2]) for e in r.pending if e[2] is not None]

    def speech_rows(self, position: int) -> list[dict]:
        rows = [
            {"channel": self.channel, "role": self.role, "region": s["region"], "start_s": s["start"] / SAMPLE_RATE, "end_s": s["end"] / SAMPLE_RATE, "closed": True}
            for s in self.speech
        ]
        op = self.vad.open_region
        if op is not None:
            rows.append({"channel": self.channel, "role": self.role, "region": op.index, "start_s": op.start / SAMPLE_RATE, "end_s": op.confirmed / SAMPLE_RATE, "closed": False})
        return rows


FRAME_SLACK = 4 * 512  # audio kept before the VAD position (a region may start up to ``pad`` before it)


class StreamingAnalyzer:
    """Emotion of a call as its audio arrives, window by window.

    Parameters
    ----------
    bundle : ModelBundle
    sr : int
        Sample rate of the chunks (8 kHz telephone audio is resampled to 16 kHz as it arrives).
    channels : int
        Channels per chunk: 2 for a stereo call (one party each), 1 for mono.
    roles : sequence of str or None
        Party of each channel (default ``("agent", "customer")``: left agent, right customer);
        a mono stream is one party, :data:`MONO_ROLE`.
    settings : TimelineSettings or None
        Windows, smoothing, segments and VAD (shared with :func:`analyze_call`).
    chunk_s : float or None
        Seconds of speech per encoder chunk after a region's first chunk (which is one window long);
        default :attr:`TimelineSettings.chunk_s` (2 s).
    context_s : float
        Seconds of audio before each chunk also fed to the encoder (default 0: chunks as offline).
    grow : bool
        Live (default): a window ending inside the chunk in progress is scored from that chunk
        encoded so far, so its result does not wait for the chunk. ``False`` waits for complete
        chunks and reproduces :func:`analyze_call` exactly, with up to one chunk more latency.
    name : str
        Names the call in messages.
    **kwargs
        Overrides of single :class:`TimelineSettings` fields (``window_s=2.5``, ``hop_s=0.5``).

    Examples
    --------
    >>> analyzer = StreamingAnalyzer(bundle, sr=8000, channels=2)      # doctest: +SKIP
    >>> for chunk in packets:                                           # (2, n) float32 or int16
    ...     for w in analyzer.feed(chunk):
    ...         print(w.role, w.start_s, w.emotion, round(w.sentiment, 2))
    >>> analyzer.finish(); result = analyzer.result()
    """

    def __init__(
        self,
        bundle,
        *,
        sr: int = SAMPLE_RATE,
        channels: int = 1,
        roles: Sequence[str] | None = None,
        settings: TimelineSettings | None = None,
        chunk_s: float | None = None,
        context_s: float = 0.0,
        grow: bool = True,
        name: str = "the call",
        **kwargs,
    ):
        if settings is None:
            settings = TimelineSettings(**kwargs)
        elif kwargs:
            settings = replace(settings, **kwargs)
        if int(sr) <= 0:
            raise ParameterError(f"sr={sr} must be a positive sample rate")
        self.bundle = bundle
        self.settings = settings
        self.sr = int(sr)
        self.channels = int(channels)
        self.roles = channel_roles(self.channels, roles)
        self.labels = list(bundle.labels)
        self.name = name
        self.encoder = bool(getattr(bundle, "frame_rate", None))
        if self.encoder and bundle.frame_rate != _FRAME_RATE:
            raise ParameterError(f"{bundle.name} has {bundle.frame_rate} frames per second; the timeline expects {_FRAME_RATE}")
        chunk_s = settings.chunk_s if chunk_s is None else chunk_s
        self.grow = bool(grow)
        self._chunk = _frames_of(chunk_s, "chunk_s") * _HOP
        self._context = _frames_of(context_s, "context_s") * _HOP
        if self._chunk <= 0 or self._context < 0:
            raise ParameterError(f"chunk_s={chunk_s} must be positive and context_s={context_s} not negative")
        self.chunk_s, self.context_s = chunk_s, context_s
        self._window = _frames_of(settings.window_s, "window_s") * _HOP
        self._hop = _frames_of(settings.hop_s, "hop_s") * _HOP
        self._min_window = int(round(settings.min_window_s * SAMPLE_RATE))
        self._pad = int(round(settings.vad.pad_s * SAMPLE_RATE))
        self._weights = sentiment_weights(self.labels)
        self._head = bundle.probabilities_from_features
        self._tracks = [_Track(self, c, role) for c, role in enumerate(self.roles)]
        self._resampler = None
        if self.sr != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.sr, SAMPLE_RATE, self.channels, dtype="float32", quality="HQ")
        self._samples = 0  # 16 kHz samples received per channel
        self._results: list[WindowResult] = []
        self._finished = False
        self.vad_seconds = 0.0  # time spent in voice-activity detection
        self.encode_seconds = 0.0  # time spent in the encoder
        self.encoded_audio_s = 0.0  # audio fed to the encoder (context included)
        self.head_seconds = 0.0

    # --- input -----------------------------------------------------------------------------------------
    @property
    def position_s(self) -> float:
        """Seconds of audio received (per channel)."""
        return self._samples / SAMPLE_RATE

    def _as_channels(self, chunk) -> np.ndarray:
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            chunk = np.frombuffer(bytes(chunk), dtype="<i2").reshape(-1, self.channels).T
        x = np.asarray(chunk)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        elif x.dtype == np.int32:
            x = x.astype(np.float32) / 2147483648.0
        elif not np.issubdtype(x.dtype, np.floating):
            raise ParameterError(f"Audio chunks must be float samples in [-1, 1] or int16 PCM, got dtype={x.dtype}")
        x = x.astype(np.float32, copy=False)
        if x.ndim == 1:
            if self.channels != 1:
                raise ParameterError(
                    f"A chunk of shape {x.shape} has one channel, but this analyser expects {self.channels}: "
                    "pass shape (channels, n)"
                )
            x = x[None, :]
        elif x.ndim == 2 and x.shape[0] != self.channels and x.shape[1] == self.channels:
            x = x.T
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ParameterError(f"A chunk of shape {x.shape} does not have {self.channels} channel(s): pass shape (channels, n)")
        if not np.all(np.isfinite(x)):
            raise ParameterError("An audio chunk contains NaN or infinite samples: the stream is damaged")
        return x

    def feed(self, chunk) -> list[WindowResult]:
        """Add audio; return the windows whose (smoothed) result became final.

        Parameters
        ----------
        chunk : np.ndarray [shape=(channels, n) or (n,) for mono], float in [-1, 1] or int16; or
            bytes of interleaved 16-bit little-endian PCM.

        Returns
        -------
        results : list of WindowResult
            In time order per channel. A window is final one hop after its audio (the median
            smoothing looks one window ahead); at a pause it is final when the VAD closes the region.
        """
        if self._finished:
            raise ParameterError("feed() after finish(): start a new StreamingAnalyzer for another call")
        x = self._as_channels(chunk)
        if self._resampler is not None:
            x = np.ascontiguousarray(self._resampler.resample_chunk(np.ascontiguousarray(x.T), last=False).T)
        return self._process(x)

    def finish(self) -> list[WindowResult]:
        """End of the call: flush the resampler, close open regions, return the last results."""
        if self._finished:
            return []
        out: list[WindowResult] = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)
            if len(tail):
                out += self._process(np.ascontiguousarray(tail.T))
        jobs: list[_Job] = []
        for t in self._tracks:
            t.finish(jobs)
        self._run(jobs)
        for t in self._tracks:
            out += t.emit(self.position_s)
        self._finished = True
        self._results += out
        return out

    def _process(self, x: np.ndarray) -> list[WindowResult]:
        if x.shape[1] == 0:
            return []
        self._samples += x.shape[1]
        jobs: list[_Job] = []
        for t, y in zip(self._tracks, x):
            t.feed(y, jobs)
        self._run(jobs)
        out: list[WindowResult] = []
        for t in self._tracks:
            out += t.emit(self.position_s)
        self._results += out
        return out

    def _run(self, jobs: list[_Job]) -> None:
        """One model call for every window that became ready in this feed, on every channel."""
        if not jobs:
            return
        t0 = time.perf_counter()
        probs = self._head([j.x for j in jobs])
        self.head_seconds += time.perf_counter() - t0
        for j, p in zip(jobs, probs):
            j.entry[2], j.entry[3] = p, self.position_s

    # --- output -----------------------------------------------------------------------------------------
    @property
    def results(self) -> list[WindowResult]:
        """Every final window result so far."""
        return list(self._results)

    def provisional(self) -> pd.DataFrame:
        """Windows scored but not final yet (awaiting their right neighbour): raw probabilities."""
        rows = []
        for t in self._tracks:
            for region, a, b, raw in t.provisional():
                k = int(np.argmax(raw))
                rows.append(
                    {"channel": t.channel, "role": t.role, "region": region, "start_s": a / SAMPLE_RATE, "end_s": b / SAMPLE_RATE, "emotion": self.labels[k], "confidence": float(raw[k]), "sentiment": float(raw @ self._weights)}
                )
        return pd.DataFrame(rows, columns=["channel", "role", "region", "start_s", "end_s", "emotion", "confidence", "sentiment"])

    def speech(self) -> pd.DataFrame:
        """Speech regions so far (the one in progress has ``closed=False``)."""
        rows = []
        for t in self._tracks:
            rows += t.speech_rows(self._samples)
        df = pd.DataFrame(rows, columns=[c for c in SPEECH_COLUMNS if c != "judged"])
        judged = {(r.channel, r.region) for r in self._results}
        df["judged"] = [(c, r) in judged for c, r in zip(df["channel"], df["region"])]
        return df.sort_values(["start_s", "channel"], kind="stable").reset_index(drop=True)

    def windows(self) -> pd.DataFrame:
        return windows_frame(self._results, self.labels)

    def result(self, *, source: str | None = None) -> CallAnalysis:
        """The analysis so far (final after :meth:`finish`): segments, windows, speech, summary."""
        windows = self.windows()
        speech = self.speech()
        segments = segments_from_windows(windows, speech, labels=self.labels, min_segment_s=self.settings.min_segment_s)
        duration = self.position_s
        summary = summarize(
            segments, windows, speech, duration_s=duration, roles=self.roles, labels=self.labels, settings=self.settings, name=source or self.name
        )
        settings = {**self.settings.to_dict(), "chunk_s": self.chunk_s, "context_s": self.context_s, "grow": self.grow}
        settings["vad"] = asdict(self.settings.vad)
        model = self.bundle.describe() if hasattr(self.bundle, "describe") else ""
        stats = {
            "vad_s": round(self.vad_seconds, 3),
            "encode_s": round(self.encode_seconds, 3),
            "head_s": round(self.head_seconds, 3),
            "encoded_audio_s": round(self.encoded_audio_s, 2),
        }
        return CallAnalysis(
            segments, windows, speech, summary, duration, list(self.roles), list(self.labels), settings, source or self.name, model, self._finished, stats
        )


# --- offline: a call from disk -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``), between blocks of a call.

    The encoder allocates differently sized buffers for every speech region; without this the
    freed pieces stay mapped and a 2-hour call's resident memory creeps up by ~100 MB an hour
    although nothing is kept. A no-op where glibc is not the allocator.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def check_complete(source: AudioSource) -> None:
    """Raise :class:`UnreadableAudioError` if a WAV file's header promises more audio than it holds.

    libsndfile silently plays a cut-off WAV up to where it stops; a call analysis should say the
    recording is incomplete instead of reporting on part of it.
    """
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                head = f.read(1 << 16)
                size = os.fstat(f.fileno()).st_size
        except OSError:
            return
    elif isinstance(source, (bytes, bytearray, memoryview)):
        head, size = bytes(source[: 1 << 16]), len(source)
    else:
        return
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return
    order = "<" if head[:4] == b"RIFF" else ">"
    pos = 12
    while pos + 8 <= len(head):
        cid = head[pos : pos + 4]
        (csize,) = struct.unpack(order + "I", head[pos + 4 : pos + 8])
        if cid == b"data":
            if csize in (0, 0xFFFFFFFF):  # a recorder that never finalised the header: nothing to compare
                return
            have = size - (pos + 8)
            if have < csize:
                raise UnreadableAudioError(
                    f"{name} is truncated: its header announces {csize:,} bytes of audio but the file holds only "
                    f"{max(have, 0):,} ({100 * max(have, 0) / csize:.0f}%). Copy or export the recording again."
                )
            return
        pos += 8 + csize + (csize & 1)


def analyze_call(
    source: AudioSource | np.ndarray,
    *,
    bundle,
    sr: int | None = None,
    roles: Sequence[str] | None = DEFAULT_ROLES,
    settings: TimelineSettings | None = None,
    progress: ProgressCallback | None = None,
    block_seconds: float = 30.0,
    chunk_s: float | None = None,
    name: str | None = None,
    **kwargs,
) -> CallAnalysis:
    """Emotion over a whole call, streamed from disk block by block (memory stays flat).

    Parameters
    ----------
    source : path, bytes, file object, or np.ndarray [shape=(n,) or (channels, n)]
        A recording in any format :func:`ser_lib.audio.load_audio` reads (WAV PCM or mu-law at
        8-48 kHz, FLAC, Ogg Vorbis/Opus, MP3), or samples at ``sr``.
    bundle : ModelBundle
    sr : int or None
        Sample rate of an array ``source`` (default 16 kHz); ignored for files.
    roles : sequence of str
        Party per channel of a stereo call (default left agent, right customer). Mono: one party,
        :data:`MONO_ROLE`.
    settings : TimelineSettings or None
    progress : callable ``(seconds_done, seconds_total) -> None`` or None
    **kwargs
        Overrides of single :class:`TimelineSettings` fields (``window_s``, ``hop_s``, ...).

    Returns
    -------
    CallAnalysis
        With ``no_speech`` True and a message (not an error) when the call holds no speech.

    Raises
    ------
    UnreadableAudioError, EmptyAudioError
        For a missing, unreadable, truncated, zero-length or unsupported file.
    """
    if settings is None:
        settings = TimelineSettings(**kwargs)
    elif kwargs:
        settings = replace(settings, **kwargs)
    plan = {"chunk_s": chunk_s, "grow": False}
    if isinstance(source, np.ndarray):
        x = np.asarray(source, dtype=np.float32)
        x = x[None, :] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[0] > 8:
            raise ParameterError(f"A call array must have shape (n,) or (channels, n), got {np.shape(source)}")
        if x.shape[1] == 0:
            from ..errors import EmptyAudioError

            raise EmptyAudioError(f"{name or 'The call'} holds no samples: record or export it again.")
        rate = int(sr or SAMPLE_RATE)
        analyzer = StreamingAnalyzer(bundle, sr=rate, channels=x.shape[0], roles=roles, settings=settings, name=name or "the call", **plan)
        step = max(1, int(block_seconds * rate))
        total = x.shape[1] / rate
        for i in range(0, x.shape[1], step):
            analyzer.feed(x[:, i : i + step])
            if progress:
                progress(min(total, (i + step) / rate), total)
        analyzer.finish()
        return analyzer.result(source=name or "the call")

    label = name or (Path(source).name if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None) or "the upload")
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = bytes(source)
    info = audio_info(source)
    if info.frames == 0:
        from ..errors import EmptyAudioError

        raise EmptyAudioError(f"{label} holds no audio (0 samples, {info.format} {info.subtype}): record or export it again.")
    check_complete(source)
    analyzer = StreamingAnalyzer(bundle, sr=SAMPLE_RATE, channels=info.channels, roles=roles, settings=settings, name=label, **plan)
    total = info.duration
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    for block in iter_blocks(source, sr=SAMPLE_RATE, block_seconds=block_seconds):
        analyzer.feed(block)
        release_memory()
        if progress:
            progress(min(analyzer.position_s, total), total)
    analyzer.finish()
    expected = info.frames / info.sample_rate
    if expected - analyzer.position_s > max(1.0, 0.01 * expected):
        raise UnreadableAudioError(
            f"{label} is truncated: its header announces {expected:.1f} s but only {analyzer.position_s:.1f} s could be "
            "decoded. Copy or export the recording again."
        )
    return analyzer.result(source=label)


# --- live replay ----------------------------------------------------------------------------------


@dataclass
class ReplayUpdate:
    """One step of a live replay: the position, the windows that just became final, the analyser."""

    position_s: float
    duration_s: float
    new: list[WindowResult]
    analyzer: StreamingAnalyzer
    compute_s: float
    done: bool = False


def replay(
    source: AudioSource,
    *,
    bundle,
    roles: Sequence[str] | None = DEFAULT_ROLES,
    speed: float | None = 1.0,
    packet_s: float = 0.1,
    settings: TimelineSettings | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs,
) -> Iterator[ReplayUpdate]:
    """Play a recorded call into a :class:`StreamingAnalyzer` as if it were happening now.

    Parameters
    ----------
    source : path, bytes or file object
    speed : float or None
        1.0 is real time, 4.0 four times faster; ``None`` (or 0) as fast as the computer goes.
    packet_s : float
        Seconds of audio per packet (20-100 ms is what a phone switch sends).

    Yields
    ------
    ReplayUpdate
        After every packet, and a last one with ``done=True`` after :meth:`StreamingAnalyzer.finish`.
    """
    if speed is not None and speed < 0:
        raise ParameterError(f"speed={speed} must be positive (1.0 is real time) or None for as fast as possible")
    if not 0.005 <= packet_s <= 5.0:
        raise ParameterError(f"packet_s={packet_s} must be between 0.005 and 5 s")
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = bytes(source)
    info = audio_info(source)
    if info.frames == 0:
        from ..errors import EmptyAudioError

        raise EmptyAudioError("The recording holds no audio (0 samples): record or export it again.")
    check_complete(source)
    label = Path(source).name if isinstance(source, (str, os.PathLike)) else "the upload"
    analyzer = StreamingAnalyzer(bundle, sr=SAMPLE_RATE, channels=info.channels, roles=roles, settings=settings, name=label, **kwargs)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    t0 = clock()
    for block in iter_blocks(stream, sr=SAMPLE_RATE, block_seconds=packet_s):
        c0 = time.perf_counter()
        new = analyzer.feed(block)
        compute = time.perf_counter() - c0
        if speed:
            wait = t0 + analyzer.position_s / speed - clock()
            if wait > 0:
                sleep(wait)
        yield ReplayUpdate(analyzer.position_s, info.duration, new, analyzer, compute)
    c0 = time.perf_counter()
    new = analyzer.finish()
    yield ReplayUpdate(analyzer.position_s, info.duration, new, analyzer, time.perf_counter() - c0, done=True)
