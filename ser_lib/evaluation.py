"""Metrics, honestly: weighted accuracy, unweighted (balanced) accuracy and macro-F1, overall and
per corpus, a per-class report, a confusion matrix, and per-file predictions.

WA is plain accuracy (every clip weighs the same); UA is the mean of per-class recalls (every
emotion weighs the same, so the majority class cannot carry it); macro-F1 is the mean F1 over
the emotions present in the truth.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, classification_report, confusion_matrix, f1_score

from .config import EMOTIONS
from .errors import ParameterError
from .io import write_json
from .progress import ProgressCallback


def scored_labels(y_true: Sequence[str]) -> list[str]:
    """The emotions macro averages run over: those present in the truth, in canonical order.

    The one definition of macro-F1 everywhere (headline figures, per-class report, pages): an
    emotion a corpus does not have is not scored (its F1 would be 0 or undefined), although
    predicting it still costs the true emotion's recall.
    """
    seen = set(np.asarray(y_true, dtype=object))
    return [e for e in EMOTIONS if e in seen]


def summary_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict:
    """``{"WA", "UA", "macro_f1", "n"}`` for string labels (macro-F1 over :func:`scored_labels`)."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    if len(y_true) == 0:
        return {"WA": float("nan"), "UA": float("nan"), "macro_f1": float("nan"), "n": 0}
    present = scored_labels(y_true)
    with warnings.catch_warnings():  # a corpus without calm/surprise may still be predicted as such: expected
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        ua = float(balanced_accuracy_score(y_true, y_pred))
    return {
        "WA": float(accuracy_score(y_true, y_pred)),
        "UA": ua,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "n": int(len(y_true)),
    }


#: The four emotions every corpus here labels (cross-corpus figures are scored on these).
FOUR_CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry")


def four_class_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Rescore per-file predictions on four classes: angry, happy, neutral (calm folded in), sad.

    Keeps the files whose true emotion is one of them (calm counted as neutral); the predicted
    emotion is the largest of ``p_angry``, ``p_happy``, ``p_neutral + p_calm`` and ``p_sad`` (the
    other probabilities dropped). This is how models trained on different emotion sets are
    compared on a corpus none of them saw (leave one corpus out).

    Parameters
    ----------
    predictions : pd.DataFrame
        Columns ``emotion`` and ``p_<emotion>`` (at least ``p_neutral``, ``p_happy``, ``p_sad``,
        ``p_angry``), plus whatever else (corpus, speaker), as in :attr:`EvaluationResult.predictions`.

    Returns
    -------
    pd.DataFrame
        The kept rows with ``emotion`` and ``predicted`` among :data:`FOUR_CLASSES`.
    """
    missing = [f"p_{e}" for e in FOUR_CLASSES if f"p_{e}" not in predictions]
    if missing:
        raise ParameterError(f"Four-class scoring needs the columns {missing}: pass per-file predictions with probabilities.")
    df = predictions.copy()
    df["emotion"] = df["emotion"].replace({"calm": "neutral"})
    df = df[df["emotion"].isin(FOUR_CLASSES)].reset_index(drop=True)
    p = np.stack([df[f"p_{e}"].to_numpy(float) for e in FOUR_CLASSES], axis=1)
    if "p_calm" in df:
        p[:, 0] += df["p_calm"].to_numpy(float)
    df["predicted"] = np.asarray(FOUR_CLASSES, dtype=object)[p.argmax(axis=1)] if len(df) else []
    return df


def four_class_metrics(predictions: pd.DataFrame) -> dict:
    """:func:`summary_metrics` on :func:`four_class_predictions`, overall and ``per_corpus``."""
    df = four_class_predictions(predictions)
    out = summary_metrics(df["emotion"], df["predicted"])
    if "corpus" in df:
        out["per_corpus"] = {c: summary_metrics(g["emotion"], g["predicted"]) for c, g in df.groupby("corpus", sort=True)}
    return out


@dataclass
class EvaluationResult:
    """Everything a report shows. ``predictions`` has one row per file: path, corpus, speaker,
    emotion (the truth), predicted, confidence, correct, and a ``p_<label>`` column per label."""

    labels: list[str]
    predictions: pd.DataFrame
    overall: dict = field(default_factory=dict)
    per_corpus: dict = field(default_factory=dict)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    meta: dict = field(default_factory=dict)

    def summary_table(self) -> pd.DataFrame:
        """WA, UA, macro-F1 and n: one row per corpus, then ``overall``."""
        rows = {**self.per_corpus, "overall": self.overall}
        return pd.DataFrame(rows).T[["WA", "UA", "macro_f1", "n"]]

    def confusion_normalised(self) -> pd.DataFrame:
        """Confusion matrix with each true-emotion row summing to 1."""
        sums = self.confusion.sum(axis=1).replace(0, np.nan)
        return self.confusion.div(sums, axis=0).fillna(0.0)

    def to_json(self, *, include_predictions: bool = True) -> dict:
        """A JSON-serialisable dict (the CLI's ``--json`` and the bundle's ``evaluation.json``)."""
        out = {
            "labels": self.labels,
            "overall": self.overall,
            "per_corpus": self.per_corpus,
            "per_class": self.per_class.reset_index().rename(columns={"index": "emotion"}).to_dict(orient="records"),
            "confusion": {"labels": list(self.confusion.index), "matrix": self.confusion.values.tolist()},
            "meta": self.meta,
        }
        if include_predictions:
            preds = self.predictions.copy()
            out["predictions"] = json.loads(preds.to_json(orient="records"))
        return out

    @classmethod
    def from_json(cls, data: dict) -> EvaluationResult:
        """Rebuild a result saved by :meth:`to_json` (the Evaluation page with no corpora on disk)."""
        labels = list(data["labels"])
        conf_labels = data["confusion"]["labels"]
        confusion = pd.DataFrame(data["confusion"]["matrix"], index=conf_labels, columns=conf_labels)
        per_class = pd.DataFrame(data.get("per_class", []))
        if not per_class.empty:
            per_class = per_class.set_index("emotion")
        preds = pd.DataFrame(data.get("predictions", []))
        return cls(labels, preds, data["overall"], data["per_corpus"], per_class, confusion, data.get("meta", {}))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        write_json(path, self.to_json())
        return path


def evaluate_predictions(predictions: pd.DataFrame, labels: Sequence[str], *, meta: dict | None = None) -> EvaluationResult:
    """Metrics from a per-file table with ``emotion`` (truth), ``predicted`` and ``corpus`` columns."""
    for col in ("emotion", "predicted"):
        if col not in predictions:
            raise ParameterError(f"The predictions table needs a {col!r} column; it has {list(predictions.columns)}")
    df = predictions.copy()
    if "corpus" not in df:
        df["corpus"] = "all"
    df["correct"] = df["emotion"] == df["predicted"]
    overall = summary_metrics(df["emotion"], df["predicted"])
    per_corpus = {c: summary_metrics(g["emotion"], g["predicted"]) for c, g in df.groupby("corpus", sort=True)}
    per_class = class_report(df["emotion"], df["predicted"]).drop(index=["macro avg", "weighted avg"], errors="ignore")
    cm_labels = [e for e in EMOTIONS if e in set(labels) | set(df["emotion"])]
    cm = confusion_matrix(df["emotion"], df["predicted"], labels=cm_labels)
    confusion = pd.DataFrame(cm, index=cm_labels, columns=cm_labels)
    return EvaluationResult(list(labels), df, overall, per_corpus, per_class, confusion, meta or {})


def class_report(y_true: Sequence[str], y_pred: Sequence[str]) -> pd.DataFrame:
    """scikit-learn's ``classification_report`` as a table: precision, recall, f1 and support per
    emotion of :func:`scored_labels`, then ``macro avg`` (its f1 is :func:`summary_metrics`'s
    ``macro_f1``) and ``weighted avg``."""
    labels = scored_labels(y_true)
    if not labels:
        return pd.DataFrame(columns=["precision", "recall", "f1", "support"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        rep = classification_report(list(y_true), list(y_pred), labels=labels, output_dict=True, zero_division=0)
    rows = {k: rep[k] for k in [*labels, "macro avg", "weighted avg"]}
    table = pd.DataFrame(rows).T.rename(columns={"f1-score": "f1"})[["precision", "recall", "f1", "support"]]
    table["support"] = table["support"].astype(int)
    return table


def evaluate_bundle(
    bundle,
    manifest: pd.DataFrame,
    *,
    progress: ProgressCallback | None = None,
    meta: dict | None = None,
) -> EvaluationResult:
    """Score ``bundle`` on every file of ``manifest`` (all of it treated as test data).

    ``progress`` receives stage ``"predict"`` steps, in files.
    """
    if manifest.empty:
        raise ParameterError("The manifest is empty: there is nothing to evaluate.")
    table = bundle.predict_files(list(manifest["path"]), progress=progress)
    keep = [c for c in ("path", "corpus", "speaker", "emotion") if c in manifest]
    df = manifest[keep].reset_index(drop=True).copy()
    df["predicted"] = table["emotion"].values
    df["confidence"] = table["confidence"].values
    for lab in bundle.labels:
        df[f"p_{lab}"] = table[f"p_{lab}"].values
    failed = table["error"].fillna("").astype(bool).values
    failures = zip(table["path"][failed], table["error"][failed], strict=True)
    info = {"model": bundle.name, "failed_files": [[p, e] for p, e in failures]}
    return evaluate_predictions(df[~failed].reset_index(drop=True), bundle.labels, meta={**info, **(meta or {})})
