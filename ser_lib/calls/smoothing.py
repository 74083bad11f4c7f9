"""Sentiment, smoothing and segments: from scored windows to stretches of one emotion.

- :func:`sentiment` / :func:`sentiment_weights`: ``sum(p[e] * SENTIMENT_WEIGHTS[e])`` over the
  emotions (:data:`ser_lib.config.SENTIMENT_WEIGHTS`), in [-1, 1].
- :func:`smooth_probabilities`: the per-class median over each window and its neighbours, so one
  stray window cannot flip a segment (the engine applies the same median as windows arrive).
- :func:`segments_from_windows`: each window owns the time nearest its centre; neighbours with the
  same emotion are joined, and runs shorter than ``min_segment_s`` merged into a neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..affect import coordinates
from ..config import SENTIMENT_WEIGHTS
from .result import SEGMENT_COLUMNS


def sentiment_weights(labels: Sequence[str]) -> np.ndarray:
    """The sentiment weight of each label [shape=(n_labels,)] (0 for a label without one)."""
    return np.array([SENTIMENT_WEIGHTS.get(lab, 0.0) for lab in labels], dtype=float)


def sentiment(probabilities: np.ndarray, *, labels: Sequence[str]) -> np.ndarray:
    """Sentiment in [-1, 1] of probabilities [shape=(..., n_labels)]: positive minus negative emotions."""
    return np.asarray(probabilities, float) @ sentiment_weights(labels)


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
    """The smoothed probabilities of window ``j``: the per-class median over ``raw[j - radius : j + radius + 1]``,
    renormalised (``raw[j]`` itself if the median is all zero). Shared with the streaming engine."""
    lo, hi = max(0, j - radius), min(len(raw), j + radius + 1)
    m = np.median(np.asarray(raw[lo:hi], float), axis=0)
    s = m.sum()
    return m / s if s > 0 else np.asarray(raw[j], float)


def segments_from_windows(
    windows: pd.DataFrame,
    speech: pd.DataFrame,
    *,
    labels: Sequence[str],
    min_segment_s: float = 1.5,
    uncertain_below: float = 0.0,
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
        ``windows`` (how many), ``uncertain`` (confidence below ``uncertain_below``), ``valence``
        and ``arousal`` (:mod:`ser_lib.affect`), and ``p_<label>`` (time-weighted mean of the
        smoothed windows).
    """
    cols = [*SEGMENT_COLUMNS, *[f"p_{lab}" for lab in labels]]
    if windows is None or windows.empty:
        return pd.DataFrame(columns=cols)
    pcols = [f"p_{lab}" for lab in labels]
    weights = sentiment_weights(labels)
    va = coordinates(labels)
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
                "uncertain": bool(mean[k] < uncertain_below),
                "valence": float(mean @ va[:, 0]),
                "arousal": float(mean @ va[:, 1]),
            }
            row.update({c: float(v) for c, v in zip(pcols, mean, strict=True)})
            rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=cols)
    return out.sort_values(["start_s", "channel"], kind="stable").reset_index(drop=True)
