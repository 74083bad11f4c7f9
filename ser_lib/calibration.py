"""Calibration: probabilities that mean what they say, and the threshold below which the model is unsure.

A network trained with cross-entropy on acted speech is over-confident on new speakers: among the
held-out clips it gives 90% or more, fewer than 90% are right. **Temperature scaling** (Guo et al.,
"On Calibration of Modern Neural Networks", ICML 2017) fixes that with one number ``T`` fitted on
held-out data: ``p' = softmax(log(p) / T)``. The bundles here output softmax probabilities, so
``log(p)`` serves as the logits (they differ from the network's logits by a constant per clip,
which softmax ignores). ``T > 1`` softens, ``T < 1`` sharpens; the ranking of the emotions, and so
every accuracy figure, is unchanged.

- :func:`apply_temperature`, :func:`fit_temperature` (minimum negative log-likelihood, SciPy).
- :func:`expected_calibration_error` and :func:`reliability_table`: 15 equal-width bins of the
  top probability ("top-label" ECE): per bin the mean confidence, the accuracy and the count;
  ECE is the count-weighted mean gap between the two.
- :func:`choose_threshold`: the confidence below which a prediction is reported as "uncertain"
  (:data:`DECISION_RULE`).
- :func:`calibrate_evaluation`: the honest protocol on a bundle's held-out per-file predictions
  (``evaluation.json``): the held-out speakers are split into two halves (grouped by speaker,
  stratified by corpus); the temperature and the threshold fitted on one half are measured on the other, and
  the other way round; what ships is fitted on all held-out speakers.
- :func:`calibrate_bundle`: that, written into the bundle's card (``calibration`` and ``decision``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ParameterError

logger = logging.getLogger(__name__)

#: Equal-width confidence bins of the expected calibration error and the reliability diagram.
N_BINS = 15
#: Temperatures searched (log-uniformly bounded): beyond these the model is broken, not miscalibrated.
T_MIN, T_MAX = 0.05, 20.0
#: Probabilities are floored here before the logarithm (some bundles give exact zeros).
P_FLOOR = 1e-12
#: The "uncertain" rule's target: the accepted predictions should be right this often ...
TARGET_ACCURACY = 0.8
#: ... while at least this share of the predictions is still accepted (named an emotion).
MIN_COVERAGE = 0.8
DECISION_RULE = (
    "the lowest calibrated confidence t at which the predictions with confidence >= t are right at least "
    f"{TARGET_ACCURACY:.0%} of the time on validation speakers, but never so high that fewer than "
    f"{MIN_COVERAGE:.0%} of them are accepted (then t is the {1 - MIN_COVERAGE:.0%} quantile of the confidences)"
)


# --- temperature ------------------------------------------------------------------------------------


def _as_probabilities(probs: Any) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ParameterError(f"probabilities must have shape (n, n_labels) with n_labels >= 2, got shape={p.shape}")
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise ParameterError("probabilities must be finite and non-negative: the predictions are damaged")
    return p


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (``T > 1``) or sharpened (``T < 1``): ``softmax(log(p) / T)``.

    Parameters
    ----------
    probs : np.ndarray [shape=(n, n_labels) or (n_labels,)]
    temperature : float
        Positive; 1 returns ``probs`` renormalised.

    Returns
    -------
    calibrated : np.ndarray, the shape of ``probs``
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise ParameterError(f"temperature={temperature} must be a positive number (1 changes nothing)")
    p = np.asarray(probs, dtype=float)
    z = np.log(np.maximum(p, P_FLOOR)) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _targets(y_true: Any, n: int, n_labels: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.shape != (n,):
        raise ParameterError(f"y_true must hold one class index per prediction ({n}), got shape={y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= n_labels).any():
        raise ParameterError(f"y_true must be class indices in [0, {n_labels}), got values {np.unique(y)[:10]}")
    return y


def negative_log_likelihood(probs: np.ndarray, y_true: np.ndarray, *, temperature: float = 1.0) -> float:
    """Mean ``-log p'[true class]`` after :func:`apply_temperature`."""
    p = _as_probabilities(probs)
    y = _targets(y_true, len(p), p.shape[1])
    q = apply_temperature(p, temperature)
    return float(-np.mean(np.log(np.maximum(q[np.arange(len(y)), y], P_FLOOR))))


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``y_true`` (bounded search over log T).

    Parameters
    ----------
    probs : np.ndarray [shape=(n, n_labels)]
        Uncalibrated probabilities of held-out clips.
    y_true : np.ndarray [shape=(n,)], int
        Index of each clip's true class.
    """
    from scipy.optimize import minimize_scalar

    p = _as_probabilities(probs)
    y = _targets(y_true, len(p), p.shape[1])
    if len(p) < 10:
        raise ParameterError(f"{len(p)} predictions are too few to fit a temperature: at least 10 are needed")
    res = minimize_scalar(
        lambda log_t: negative_log_likelihood(p, y, temperature=float(np.exp(log_t))),
        bounds=(np.log(T_MIN), np.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(np.exp(res.x))


# --- calibration error ------------------------------------------------------------------------------


def reliability_table(probs: np.ndarray, y_true: np.ndarray, *, n_bins: int = N_BINS) -> pd.DataFrame:
    """Per confidence bin: ``bin_lo``, ``bin_hi``, mean ``confidence``, ``accuracy``, ``count``.

    Bins are ``n_bins`` equal-width intervals of the top probability, ``(lo, hi]`` (the first
    also takes 0). Empty bins have ``count`` 0 and NaN confidence and accuracy.
    """
    p = _as_probabilities(probs)
    y = _targets(y_true, len(p), p.shape[1])
    if n_bins < 1:
        raise ParameterError(f"n_bins={n_bins} must be at least 1 (15 is usual)")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = idx == b
        k = int(m.sum())
        rows.append(
            {
                "bin_lo": float(edges[b]),
                "bin_hi": float(edges[b + 1]),
                "confidence": float(conf[m].mean()) if k else np.nan,
                "accuracy": float(correct[m].mean()) if k else np.nan,
                "count": k,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, *, n_bins: int = N_BINS) -> float:
    """Top-label ECE: ``sum_b (n_b / n) * |accuracy_b - confidence_b|`` over :func:`reliability_table`'s bins."""
    table = reliability_table(probs, y_true, n_bins=n_bins)
    used = table[table["count"] > 0]
    n = used["count"].sum()
    return float((used["count"] * (used["accuracy"] - used["confidence"]).abs()).sum() / n) if n else 0.0


# --- the uncertain threshold ------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """A confidence threshold and what it does on the data it was measured on."""

    uncertain_below: float
    coverage: float
    accepted_accuracy: float
    overall_accuracy: float

    def as_dict(self) -> dict:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


def threshold_effect(confidence: np.ndarray, correct: np.ndarray, uncertain_below: float) -> Threshold:
    """Coverage (share with confidence >= the threshold) and the accuracy of those accepted."""
    c = np.asarray(confidence, float)
    ok = np.asarray(correct, bool)
    keep = c >= uncertain_below
    acc = float(ok[keep].mean()) if keep.any() else float("nan")
    return Threshold(float(uncertain_below), float(keep.mean()) if len(c) else 0.0, acc, float(ok.mean()) if len(c) else 0.0)


def choose_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    target_accuracy: float = TARGET_ACCURACY,
    min_coverage: float = MIN_COVERAGE,
) -> Threshold:
    """The "uncertain" threshold by :data:`DECISION_RULE`.

    Parameters
    ----------
    confidence : np.ndarray [shape=(n,)]
        Calibrated top probabilities of validation clips.
    correct : np.ndarray [shape=(n,)], bool
        Whether each top emotion was the true one.
    target_accuracy, min_coverage : float
        In (0, 1].
    """
    c = np.asarray(confidence, float)
    ok = np.asarray(correct, bool)
    if c.shape != ok.shape or c.ndim != 1 or len(c) == 0:
        raise ParameterError(f"confidence and correct must be two 1-D arrays of one length, got {c.shape} and {ok.shape}")
    for name, v in (("target_accuracy", target_accuracy), ("min_coverage", min_coverage)):
        if not 0 < v <= 1:
            raise ParameterError(f"{name}={v} must be in (0, 1]")
    order = np.argsort(-c, kind="stable")
    cs, oks = c[order], ok[order]
    acc_top = np.cumsum(oks) / np.arange(1, len(c) + 1)  # accuracy of the k most confident
    # the most predictions (lowest threshold) whose accepted accuracy still reaches the target
    reach = np.flatnonzero(acc_top >= target_accuracy)
    k_target = int(reach[-1]) + 1 if len(reach) else 0
    k_min = int(np.ceil(min_coverage * len(c)))
    k = max(k_target, k_min)
    t = float(cs[k - 1]) if k > 0 else 0.0
    return threshold_effect(c, ok, t)


# --- held-out predictions -> calibration ------------------------------------------------------------


@dataclass
class CalibrationReport:
    """What :func:`calibrate_evaluation` found: the shipped temperature and threshold, and the cross-fitted check."""

    temperature: float
    fitted_temperature: float
    ece_before: float
    ece_after: float
    n: int
    n_speakers: int
    threshold: Threshold
    folds: list[dict] = field(default_factory=list)
    reliability_before: pd.DataFrame | None = None
    reliability_after: pd.DataFrame | None = None
    fitted_on: str = ""

    @property
    def applied(self) -> bool:
        """Whether the fitted temperature is shipped: only if it lowered the ECE on speakers it was not fitted on."""
        return self.temperature != 1.0

    @property
    def cross_fitted_ece_before(self) -> float:
        return float(np.mean([f["ece_before"] for f in self.folds])) if self.folds else float("nan")

    @property
    def cross_fitted_ece_after(self) -> float:
        return float(np.mean([f["ece_after"] for f in self.folds])) if self.folds else float("nan")

    def calibration_card(self) -> dict:
        """The card's ``calibration`` field."""
        return {
            "method": "temperature",
            "temperature": round(self.temperature, 6),
            "applied": self.applied,
            "fitted_temperature": round(self.fitted_temperature, 6),
            "fitted_on": self.fitted_on,
            "n": self.n,
            "n_speakers": self.n_speakers,
            "n_bins": N_BINS,
            "ece_before": round(self.ece_before, 4),
            "ece_after": round(self.ece_after, 4),
            "cross_fitted": {
                "protocol": (
                    "2-fold StratifiedGroupKFold (grouped by speaker, stratified by corpus): fitted on one half of the "
                    "held-out speakers, measured on the other"
                ),
                "ece_before": round(self.cross_fitted_ece_before, 4),
                "ece_after": round(self.cross_fitted_ece_after, 4),
                "folds": self.folds,
            },
        }

    def decision_card(self) -> dict:
        """The card's ``decision`` field."""
        held = [f["threshold"] for f in self.folds]
        return {
            "uncertain_below": round(self.threshold.uncertain_below, 4),
            "chosen_on": self.fitted_on,
            "rule": DECISION_RULE,
            "target_accuracy": TARGET_ACCURACY,
            "min_coverage": MIN_COVERAGE,
            **{k: v for k, v in self.threshold.as_dict().items() if k != "uncertain_below"},
            "cross_fitted": held,
        }


def predictions_arrays(predictions: pd.DataFrame, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(probs, y_true, speakers, corpora)`` of per-file predictions (``p_<label>``, ``emotion``, ``speaker``,
    and ``corpus`` if there is one: else every clip counts as one corpus).

    Clips whose true emotion is not one of ``labels`` are left out (a bundle cannot name them).
    """
    need = ["emotion", "speaker", *[f"p_{lab}" for lab in labels]]
    missing = [c for c in need if c not in predictions]
    if missing:
        raise ParameterError(
            f"The held-out predictions lack columns {missing}: expected per-file predictions from evaluation.json"
        )
    df = predictions[predictions["emotion"].isin(labels)]
    df = df.dropna(subset=[f"p_{lab}" for lab in labels])
    probs = df[[f"p_{lab}" for lab in labels]].to_numpy(float)
    index = {lab: i for i, lab in enumerate(labels)}
    y = df["emotion"].map(index).to_numpy(int)
    corpora = df["corpus"].astype(str).to_numpy() if "corpus" in df else np.zeros(len(df), dtype=str)
    return probs, y, df["speaker"].astype(str).to_numpy(), corpora


def calibrate_evaluation(
    predictions: pd.DataFrame,
    labels: list[str],
    *,
    fitted_on: str = "held-out speakers",
    target_accuracy: float = TARGET_ACCURACY,
    min_coverage: float = MIN_COVERAGE,
) -> CalibrationReport:
    """Temperature and "uncertain" threshold from held-out per-file predictions, checked across speakers.

    The held-out speakers are split into two halves (``StratifiedGroupKFold(n_splits=2)``: grouped by
    speaker, so no speaker is on both sides, and stratified by corpus, so each half holds speakers of
    every corpus that has two; plain ``GroupKFold`` put one corpus's 1,400-clip speaker and two others
    alone on one side). For each half, the temperature and threshold are fitted on the other half and measured here (ECE
    before and after, coverage and accepted accuracy). The returned temperature and threshold are
    fitted on every held-out speaker; if the cross-fitted temperatures did not lower the ECE on the
    other half on average, the temperature is 1 (no change) and ``fitted_temperature`` says what
    the fit gave.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    probs, y, speakers, corpora = predictions_arrays(predictions, labels)
    n_speakers = len(set(speakers))
    if n_speakers < 2:
        raise ParameterError(
            f"The held-out predictions come from {n_speakers} speaker(s): calibration needs at least 2 to be checked "
            "on speakers it was not fitted on."
        )
    folds = []
    for i, (fit, test) in enumerate(StratifiedGroupKFold(n_splits=2).split(probs, corpora, groups=speakers)):
        t = fit_temperature(probs[fit], y[fit])
        fit_cal = apply_temperature(probs[fit], t)
        thr = choose_threshold(
            fit_cal.max(axis=1), fit_cal.argmax(axis=1) == y[fit], target_accuracy=target_accuracy, min_coverage=min_coverage
        )
        test_cal = apply_temperature(probs[test], t)
        effect = threshold_effect(test_cal.max(axis=1), test_cal.argmax(axis=1) == y[test], thr.uncertain_below)
        folds.append(
            {
                "fold": i + 1,
                "fit_speakers": len(set(speakers[fit])),
                "test_speakers": len(set(speakers[test])),
                "n_test": len(test),
                "temperature": round(t, 4),
                "ece_before": round(expected_calibration_error(probs[test], y[test]), 4),
                "ece_after": round(expected_calibration_error(test_cal, y[test]), 4),
                "threshold": effect.as_dict(),
            }
        )
    fitted = fit_temperature(probs, y)
    before = float(np.mean([f["ece_before"] for f in folds]))
    after = float(np.mean([f["ece_after"] for f in folds]))
    t = fitted if after < before else 1.0  # a temperature that did not help on unseen speakers is not shipped
    cal = apply_temperature(probs, t)
    conf, correct = cal.max(axis=1), cal.argmax(axis=1) == y
    threshold = choose_threshold(conf, correct, target_accuracy=target_accuracy, min_coverage=min_coverage)
    return CalibrationReport(
        temperature=t,
        fitted_temperature=fitted,
        ece_before=expected_calibration_error(probs, y),
        ece_after=expected_calibration_error(cal, y),
        n=len(y),
        n_speakers=n_speakers,
        threshold=threshold,
        folds=folds,
        reliability_before=reliability_table(probs, y),
        reliability_after=reliability_table(cal, y),
        fitted_on=fitted_on,
    )


def uncalibrated(predictions: pd.DataFrame, labels: list[str], temperature: float | None) -> pd.DataFrame:
    """Predictions whose ``p_<label>`` were calibrated with ``temperature``, returned as the model gave them.

    ``softmax(log p / T)`` is undone by ``p' ** T`` renormalised (exactly, up to the floor).
    """
    if not temperature or temperature == 1.0:
        return predictions
    cols = [f"p_{lab}" for lab in labels]
    out = predictions.copy()
    raw = np.maximum(out[cols].to_numpy(float), P_FLOOR) ** float(temperature)
    out[cols] = raw / raw.sum(axis=1, keepdims=True)
    return out


def calibrate_bundle(folder: str | os.PathLike, *, write: bool = True) -> CalibrationReport:
    """Fit the calibration of the bundle in ``folder`` from its ``evaluation.json`` and record it in its card.

    The card gets ``calibration`` (method, temperature, fitted_on, n, ECE before and after, the
    cross-fitted folds) and ``decision`` (``uncertain_below``, how it was chosen). The model files
    are not touched, so their hashes in the card stay valid. An evaluation written by a calibrated
    bundle (its ``meta.temperature``) is first returned to the model's own probabilities.

    Raises
    ------
    BundleError
        When the folder holds no readable card.
    ParameterError
        When it has no ``evaluation.json`` with per-file predictions from at least two speakers.
    """
    import json

    from .cards import CARD_FILE, EVALUATION_FILE, read_card
    from .io import atomic_write_text, dumps_json

    path = Path(folder)
    card = read_card(path)
    ev_path = path / EVALUATION_FILE
    if not ev_path.is_file():
        raise ParameterError(
            f"{path} has no {EVALUATION_FILE}: calibration is fitted on held-out speakers' predictions. "
            f"Train with a speaker split (`python -m ser_lib train --split speaker`) or copy them with --metrics-from."
        )
    try:
        ev = json.loads(ev_path.read_text())
        predictions = pd.DataFrame(ev["predictions"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ParameterError(f"{ev_path} holds no per-file predictions ({type(exc).__name__}: {exc})") from exc
    labels = list(card["labels"])
    predictions = uncalibrated(predictions, labels, (ev.get("meta") or {}).get("temperature"))
    source = (card.get("metrics") or {}).get("source")
    run = source.removeprefix("held-out run ") if isinstance(source, str) and source.startswith("held-out run ") else path.name
    n_spk = predictions["speaker"].nunique() if "speaker" in predictions else 0
    fitted_on = f"held-out speakers of run {run} ({n_spk} speakers, {EVALUATION_FILE})"
    report = calibrate_evaluation(predictions, labels, fitted_on=fitted_on)
    if write:
        card["calibration"] = report.calibration_card()
        card["decision"] = report.decision_card()
        atomic_write_text(path / CARD_FILE, dumps_json(card))
        logger.info("calibrated %s: T=%.3f, ECE %.3f -> %.3f", path, report.temperature, report.ece_before, report.ece_after)
    return report
