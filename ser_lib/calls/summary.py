"""The summary of a call: per party and overall, per quarter, the trend and the worst moments.

- :func:`summarize`: everything below for every party and for the whole call, plus the message
  saying why nothing could be judged when that is so.
- :func:`worst_moments`: the most negative segments, with the second to listen to.
- Per party: speaking time and share, the share of judged time per emotion, the dominant emotion
  and the mean sentiment, the same per quarter of the call, and the trend between the first and
  last quarter with speech (:data:`~ser_lib.calls.settings.TREND_STEP`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .settings import TREND_STEP, WORST_BELOW, TimelineSettings
from .smoothing import sentiment_weights


def _party_summary(
    segments: pd.DataFrame, windows: pd.DataFrame, speech: pd.DataFrame, *, duration_s: float, labels: Sequence[str]
) -> dict:
    """One party's (or the whole call's) figures: speech, shares, quarters and trend."""
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
        quarters.append(
            {"quarter": q + 1, "start_s": round(a, 2), "end_s": round(b, 2), **_share_summary(clipped, labels=labels)}
        )
    out["quarters"] = quarters
    out["trend"] = _trend(quarters, windows)
    return out


def _clip_segments(segments: pd.DataFrame, a: float, b: float) -> pd.DataFrame:
    """The segments overlapping ``[a, b)``, cut to it."""
    if segments.empty:
        return segments
    s = segments[(segments["end_s"] > a) & (segments["start_s"] < b)].copy()
    s["start_s"] = s["start_s"].clip(lower=a)
    s["end_s"] = s["end_s"].clip(upper=b)
    return s


def _share_summary(segments: pd.DataFrame, *, labels: Sequence[str]) -> dict:
    """Judged seconds, dominant emotion, mean sentiment and share per emotion of ``segments``."""
    if segments is None or segments.empty:
        return {
            "judged_s": 0.0,
            "dominant": None,
            "mean_sentiment": None,
            "mean_valence": None,
            "mean_arousal": None,
            "uncertain_share": 0.0,
            "shares": {lab: 0.0 for lab in labels},
        }
    d = (segments["end_s"] - segments["start_s"]).to_numpy(float)
    total = float(d.sum())
    by = pd.Series(d, index=segments["emotion"].to_numpy()).groupby(level=0).sum()
    shares = {lab: round(float(by.get(lab, 0.0)) / total, 4) if total > 0 else 0.0 for lab in labels}
    dominant = max(labels, key=lambda lab: shares[lab]) if total > 0 else None
    def weighted(column: str) -> float | None:
        if column not in segments or total <= 0:
            return None
        return round(float((segments[column].to_numpy(float) * d).sum() / total), 4)

    unsure = segments["uncertain"].to_numpy(bool) if "uncertain" in segments else np.zeros(len(d), bool)
    return {
        "judged_s": round(total, 2),
        "dominant": dominant,
        "mean_sentiment": weighted("sentiment"),
        "mean_valence": weighted("valence"),
        "mean_arousal": weighted("arousal"),
        "uncertain_share": round(float(d[unsure].sum()) / total, 4) if total > 0 else 0.0,
        "shares": shares,
    }


def _trend(quarters: list[dict], windows: pd.DataFrame) -> dict:
    """First and last quarter with speech, their change and direction, and the per-minute slope."""
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
                "uncertain": bool(getattr(r, "uncertain", False)),
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
        ``speech_s``, ``talk_share``, ``judged_s``, ``dominant``, ``mean_sentiment``,
        ``mean_valence``, ``mean_arousal``, ``uncertain_share`` (fraction of judged time in
        "uncertain" segments), ``shares`` (fraction of judged time per emotion), ``quarters`` (the same four times) and ``trend``
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
        "sentiment_weights": {lab: float(w) for lab, w in zip(labels, sentiment_weights(labels), strict=True)},
    }
