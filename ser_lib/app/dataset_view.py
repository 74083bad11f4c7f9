"""What the Datasets and Augmentation pages show, computed without Streamlit.

Everything here takes a manifest or a signal and returns a small :class:`pandas.DataFrame`
ready for a plot builder in :mod:`ser_lib.plots` or a table: filtered file lists, speaker and
duration summaries, and waveforms and spectrograms reduced to what a browser can draw quickly
(a few thousand points, a few hundred spectrogram columns) however long the clip is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import EMOTIONS
from ..errors import ParameterError

#: Columns of the file table on the Datasets page, in display order.
FILE_TABLE_COLUMNS: tuple[str, ...] = ("file", "corpus", "speaker", "gender", "emotion", "intensity", "text_id", "duration")

#: Names of the notebook's 162 features, in the order :func:`ser_lib.features.notebook_features` returns them.
NOTEBOOK_FEATURE_NAMES: tuple[str, ...] = (
    ("zcr",)
    + tuple(f"chroma_{i + 1}" for i in range(12))
    + tuple(f"mfcc_{i + 1}" for i in range(20))
    + ("rms",)
    + tuple(f"mel_{i + 1}" for i in range(128))
)


def _group(name: str) -> str:
    return name.split("_", 1)[0]


# --- manifests ---------------------------------------------------------------------------------


def file_table(manifest: pd.DataFrame, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The manifest with a short ``file`` column (relative to ``root``) first, ``path`` kept last.

    Returns
    -------
    table : pd.DataFrame with :data:`FILE_TABLE_COLUMNS` and ``path``
    """
    table = manifest.copy()
    if root is not None:
        prefix = str(Path(root)).rstrip(os.sep) + os.sep
        table["file"] = [p[len(prefix):] if p.startswith(prefix) else os.path.basename(p) for p in table["path"]]
    else:
        table["file"] = [os.path.basename(p) for p in table["path"]]
    cols = [c for c in FILE_TABLE_COLUMNS if c in table] + ["path"]
    return table[cols].reset_index(drop=True)


def filter_manifest(
    manifest: pd.DataFrame,
    *,
    corpora: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
    genders: Iterable[str] | None = None,
    speakers: Iterable[str] | None = None,
    text: str = "",
    min_duration: float | None = None,
    max_duration: float | None = None,
) -> pd.DataFrame:
    """Rows of ``manifest`` matching every filter given (an empty or ``None`` filter keeps all).

    ``text`` matches case-insensitively anywhere in the path.
    """
    keep = pd.Series(True, index=manifest.index)
    for column, wanted in (("corpus", corpora), ("emotion", emotions), ("gender", genders), ("speaker", speakers)):
        if wanted:
            keep &= manifest[column].isin(list(wanted))
    if text:
        keep &= manifest["path"].str.contains(text, case=False, regex=False)
    if "duration" in manifest:
        if min_duration is not None:
            keep &= manifest["duration"] >= min_duration
        if max_duration is not None:
            keep &= manifest["duration"] <= max_duration
    return manifest[keep]


def counts_long(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`ser_lib.corpora.emotion_counts`' wide table as rows (corpus, emotion, files, share).

    The ``all`` row becomes corpus ``"all corpora"``; ``share`` is the emotion's fraction of its corpus.
    """
    if counts.empty:
        return pd.DataFrame(columns=["corpus", "emotion", "files", "share"])
    wide = counts.drop(columns=["total"], errors="ignore").rename(index={"all": "all corpora"})
    long = wide.reset_index(names="corpus").melt(id_vars="corpus", var_name="emotion", value_name="files")
    totals = long.groupby("corpus")["files"].transform("sum").replace(0, np.nan)
    long["share"] = (long["files"] / totals).fillna(0.0)
    order = {e: i for i, e in enumerate(EMOTIONS)}
    long["_o"] = long["emotion"].map(order)
    return long.sort_values(["corpus", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def speaker_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per speaker: corpus, speaker, gender, files, minutes of audio."""
    if manifest.empty:
        return pd.DataFrame(columns=["corpus", "speaker", "gender", "files", "minutes"])
    agg = {"files": ("path", "size")}
    if "duration" in manifest:
        agg["minutes"] = ("duration", lambda d: float(np.nansum(d)) / 60.0)
    out = manifest.groupby(["corpus", "speaker", "gender"], sort=True).agg(**agg).reset_index()
    return out


def corpus_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per corpus found: language, kind of speech, files, speakers, hours, the emotions it labels, licence.

    The emotions a corpus does not label are the ones training masks out for its clips (so a corpus
    without calm does not teach that calm never happens).
    """
    from ..corpora import CORPUS_EMOTIONS, CORPUS_INFO

    rows = []
    for corpus, g in manifest.groupby("corpus", sort=True):
        info = CORPUS_INFO.get(corpus, {})
        labelled = CORPUS_EMOTIONS.get(corpus, tuple(e for e in EMOTIONS if e in set(g["emotion"])))
        rows.append(
            {
                "corpus": corpus,
                "language": info.get("language", ""),
                "speech": info.get("speech", ""),
                "files": int(len(g)),
                "speakers": int(g["speaker"].nunique()),
                "hours": float(g["duration"].sum() / 3600) if "duration" in g else float("nan"),
                "emotions labelled": ", ".join(labelled),
                "not labelled": ", ".join(e for e in EMOTIONS if e not in labelled) or "-",
                "licence": info.get("licence", ""),
            }
        )
    return pd.DataFrame(rows)


def speakers_by_gender(manifest: pd.DataFrame) -> pd.DataFrame:
    """Speakers per corpus and gender: rows (corpus, gender, speakers, files)."""
    if manifest.empty:
        return pd.DataFrame(columns=["corpus", "gender", "speakers", "files"])
    return (
        manifest.groupby(["corpus", "gender"], sort=True)
        .agg(speakers=("speaker", "nunique"), files=("path", "size"))
        .reset_index()
    )


def duration_stats(manifest: pd.DataFrame) -> pd.DataFrame:
    """Per corpus and overall: files, hours, mean, min and max seconds (NaN durations ignored)."""
    cols = ["files", "hours", "mean_s", "min_s", "max_s"]
    if manifest.empty or "duration" not in manifest:
        return pd.DataFrame(columns=cols)

    def stats(d: pd.Series) -> dict:
        d = d.dropna()
        return {
            "files": int(len(d)),
            "hours": float(d.sum() / 3600.0),
            "mean_s": float(d.mean()) if len(d) else np.nan,
            "min_s": float(d.min()) if len(d) else np.nan,
            "max_s": float(d.max()) if len(d) else np.nan,
        }

    rows = {corpus: stats(g["duration"]) for corpus, g in manifest.groupby("corpus", sort=True)}
    rows["all corpora"] = stats(manifest["duration"])
    return pd.DataFrame(rows).T[cols]


def duration_histogram(manifest: pd.DataFrame, *, bins: int = 60, max_seconds: float | None = None) -> pd.DataFrame:
    """Clip durations binned per corpus: rows (corpus, start, end, files).

    Binning here keeps the browser's work constant: 11,000 clips become ``bins`` bars per corpus.
    ``max_seconds`` (default: the 99.5th percentile) folds longer clips into the last bin.
    """
    if manifest.empty or "duration" not in manifest:
        return pd.DataFrame(columns=["corpus", "start", "end", "files"])
    d = manifest["duration"].to_numpy(dtype=float)
    finite = np.isfinite(d)
    if not finite.any():
        return pd.DataFrame(columns=["corpus", "start", "end", "files"])
    top = float(max_seconds if max_seconds is not None else np.nanpercentile(d[finite], 99.5))
    lo = float(np.nanmin(d[finite]))
    top = max(top, lo + 1e-3)
    edges = np.linspace(min(lo, top), top, bins + 1)
    rows = []
    for corpus, g in manifest.groupby("corpus", sort=True):
        x = g["duration"].to_numpy(dtype=float)
        x = np.clip(x[np.isfinite(x)], edges[0], edges[-1])
        counts, _ = np.histogram(x, bins=edges)
        rows.append(pd.DataFrame({"corpus": corpus, "start": edges[:-1], "end": edges[1:], "files": counts}))
    return pd.concat(rows, ignore_index=True)


# --- one clip ------------------------------------------------------------------------------------


def waveform_frame(y: np.ndarray, *, sr: int, points: int = 1500) -> pd.DataFrame:
    """A min/max envelope of ``y`` [shape=(n,)] at about ``points`` time steps.

    Returns
    -------
    frame : pd.DataFrame with columns ``time`` (s), ``min``, ``max``
        Drawing the envelope instead of every sample keeps a 60 s clip as light as a 1 s one,
        and peaks stay visible (plain decimation would drop them).
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if y.size == 0:
        return pd.DataFrame(columns=["time", "min", "max"])
    if points < 2:
        raise ParameterError(f"waveform_frame points={points} must be at least 2")
    step = max(1, int(np.ceil(len(y) / points)))
    n = int(np.ceil(len(y) / step)) * step
    padded = np.pad(y, (0, n - len(y)), mode="edge").reshape(-1, step)
    return pd.DataFrame(
        {
            "time": np.arange(padded.shape[0]) * step / sr,
            "min": padded.min(axis=1),
            "max": padded.max(axis=1),
        }
    )


def spectrogram_frame(
    y: np.ndarray,
    *,
    sr: int,
    n_fft: int = 512,
    n_bins: int = 160,
    fmin: float = 50.0,
    max_frames: int = 400,
    top_db: float = 80.0,
) -> pd.DataFrame:
    """A log-frequency spectrogram of ``y`` in dB, small enough to draw.

    The STFT's linear bins are interpolated onto ``n_bins`` log-spaced frequencies from ``fmin``
    to Nyquist, and the hop is chosen so there are at most ``max_frames`` columns.

    Returns
    -------
    frame : pd.DataFrame [shape=(n_bins, t)]
        Index: frequency in Hz (ascending, log-spaced); columns: time in seconds; values: dB
        relative to the clip's peak, floored at ``-top_db``.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if y.size == 0:
        return pd.DataFrame()
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    hop = max(n_fft // 4, int(np.ceil(len(y) / max_frames)))
    spec = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True))
    db = librosa.amplitude_to_db(spec, ref=np.max, top_db=top_db)
    lin = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fmin = max(fmin, lin[1])
    freqs = np.geomspace(fmin, sr / 2, n_bins)
    # each log bin takes the linear bin at or just below it, interpolated with its neighbour
    pos = np.interp(freqs, lin, np.arange(len(lin)))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(lin) - 1)
    w = (pos - lo)[:, None]
    logspec = (1 - w) * db[lo] + w * db[hi]
    times = librosa.frames_to_time(np.arange(db.shape[1]), sr=sr, hop_length=hop)
    return pd.DataFrame(logspec.astype(np.float32), index=pd.Index(freqs, name="frequency"), columns=np.round(times, 4))


def feature_frame(x: np.ndarray, *, kind: str) -> pd.DataFrame:
    """What a model's input layer sees, as a table.

    Parameters
    ----------
    x : np.ndarray
        ``[shape=(162,) or (162, 1)]`` for the notebook front end (``kind="notebook162"``), or a
        matrix ``[shape=(t, d)]`` for log-mel (``"logmel"``) and encoder frames (``"encoder"``).

    Returns
    -------
    frame : pd.DataFrame
        ``notebook162``: columns ``feature``, ``group`` (zcr, chroma, mfcc, rms, mel), ``index``,
        ``value``. Otherwise the matrix transposed: index = feature dimension, columns = frame.
    """
    x = np.asarray(x, dtype=np.float32)
    if kind in ("notebook162", "seed162"):
        v = x.reshape(-1)
        if v.size != len(NOTEBOOK_FEATURE_NAMES):
            raise ParameterError(f"The notebook front end has {len(NOTEBOOK_FEATURE_NAMES)} features, got shape={x.shape}")
        names = list(NOTEBOOK_FEATURE_NAMES)
        groups = [_group(n) for n in names]
        index = [int(n.rsplit("_", 1)[1]) if "_" in n else 1 for n in names]
        return pd.DataFrame({"feature": names, "group": groups, "index": index, "value": v})
    if x.ndim != 2:
        raise ParameterError(f"{kind} features must be a [time, dim] matrix, got shape={x.shape}")
    return pd.DataFrame(x.T, index=pd.RangeIndex(x.shape[1], name="dimension"), columns=pd.RangeIndex(x.shape[0], name="frame"))


def shared_peak(*signals: np.ndarray) -> float:
    """The largest absolute sample over ``signals``: one amplitude scale for waveforms drawn side by side."""
    peaks = [float(np.max(np.abs(np.asarray(y, dtype=np.float32)))) for y in signals if np.size(y)]
    return max([*peaks, 1e-3])


@dataclass
class AugmentationPreview:
    """A clip before and after one augmentation, at one sample rate."""

    before: np.ndarray
    after: np.ndarray
    sr: int
    name: str
    strength: float
    description: str


def augmentation_preview(y: np.ndarray, *, sr: int, name: str, strength: float, seed: int = 0) -> AugmentationPreview:
    """Apply augmentation ``name`` at ``strength`` in [0, 1] to ``y``, reproducibly (``seed``).

    Raises
    ------
    ParameterError
        For an unknown name or a strength outside [0, 1] (from :func:`ser_lib.augment.make_augmentation`).
    """
    from ..augment import make_augmentation

    aug = make_augmentation(name, strength)
    after = aug(np.asarray(y, dtype=np.float32), sr, rng=np.random.default_rng(seed))
    peak = float(np.max(np.abs(after))) if after.size else 0.0
    if peak > 1.0:  # keep the player from clipping; the shape of the signal is unchanged
        after = after / peak
    return AugmentationPreview(np.asarray(y, dtype=np.float32), after.astype(np.float32), sr, name, strength, repr(aug))
