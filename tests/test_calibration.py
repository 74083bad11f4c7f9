"""Calibration: temperature scaling, expected calibration error, the reliability table, the
"uncertain" threshold rule, the honest cross-fitted protocol, and the card fields a bundle applies."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ser_lib.bundle import ModelBundle
from ser_lib.calibration import (
    MIN_COVERAGE,
    N_BINS,
    apply_temperature,
    calibrate_bundle,
    calibrate_evaluation,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    reliability_table,
    uncalibrated,
)
from ser_lib.cards import validate_card
from ser_lib.cli import main
from ser_lib.config import MODELS_DIR
from ser_lib.errors import BundleError, ParameterError


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n: int = 6000, *, k: int = 4, sharpen: float = 2.0, seed: int = 0):
    """Labels drawn from softmax(z) (so softmax(z) is calibrated), probabilities softmax(sharpen * z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, k))
    truth = _softmax(z)
    y = np.array([rng.choice(k, p=p) for p in truth])
    return _softmax(sharpen * z), y, truth


def test_temperature_softens_or_sharpens_and_keeps_the_ranking():
    p = np.array([[0.7, 0.2, 0.1], [0.05, 0.15, 0.8]])
    assert np.allclose(apply_temperature(p, 1.0), p)
    soft, sharp = apply_temperature(p, 2.0), apply_temperature(p, 0.5)
    assert (soft.max(axis=1) < p.max(axis=1)).all() and (sharp.max(axis=1) > p.max(axis=1)).all()
    assert (soft.argmax(axis=1) == p.argmax(axis=1)).all() and np.allclose(soft.sum(axis=1), 1.0)
    assert np.allclose(apply_temperature(np.array([[1.0, 0.0]]), 2.0).sum(), 1.0)  # exact zeros are floored, not NaN
    with pytest.raises(ParameterError, match="temperature=0"):
        apply_temperature(p, 0.0)


def test_fit_temperature_recovers_a_known_overconfidence():
    probs, y, _ = _overconfident(sharpen=2.0)
    t = fit_temperature(probs, y)
    assert t == pytest.approx(2.0, rel=0.1)
    assert expected_calibration_error(probs, y) > 0.05
    assert expected_calibration_error(apply_temperature(probs, t), y) < 0.02


def test_ece_and_reliability_table_by_hand():
    # confidences 0.9, 0.9 (one right), 0.5 (right), 0.3 (wrong) in three of the 15 bins
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5], [0.3, 0.7]])
    y = np.array([0, 1, 0, 0])
    table = reliability_table(probs, y)
    assert len(table) == N_BINS and table["count"].sum() == 4
    used = table[table["count"] > 0]
    # top probabilities: 0.9, 0.9, 0.5, 0.7 (the last row's top is class 1, wrong)
    assert used["count"].tolist() == [1, 1, 2]
    assert used["confidence"].tolist() == pytest.approx([0.5, 0.7, 0.9])
    assert used["accuracy"].tolist() == pytest.approx([1.0, 0.0, 0.5])
    expected = (1 * 0.5 + 1 * 0.7 + 2 * 0.4) / 4
    assert expected_calibration_error(probs, y) == pytest.approx(expected)
    with pytest.raises(ParameterError, match="class indices"):
        expected_calibration_error(probs, np.array([0, 1, 2, 0]))


def test_threshold_rule_reaches_the_target_or_keeps_80_percent():
    conf = np.linspace(0.99, 0.2, 100)
    # the 50 most confident are right, the rest wrong: 80% accuracy is reached accepting 62 of them
    correct = np.arange(100) < 50
    t = choose_threshold(conf, correct, target_accuracy=0.8, min_coverage=0.5)
    assert t.coverage == pytest.approx(0.62) and t.accepted_accuracy >= 0.8
    assert t.uncertain_below == pytest.approx(conf[61])
    # a target that would leave too few: the threshold stops at MIN_COVERAGE
    t = choose_threshold(conf, correct, target_accuracy=0.95)
    assert t.coverage == pytest.approx(MIN_COVERAGE) and t.uncertain_below == pytest.approx(conf[79])


def _predictions(seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    labels = ["neutral", "happy", "sad", "angry"]
    probs, y, _ = _overconfident(n=4000, k=4, sharpen=2.5, seed=seed)
    rows = pd.DataFrame(probs, columns=[f"p_{lab}" for lab in labels])
    rows["emotion"] = [labels[i] for i in y]
    rows["speaker"] = [f"{'AB'[i % 2]}_{i % 10}" for i in range(len(y))]
    rows["corpus"] = [f"corpus{'AB'[i % 2]}" for i in range(len(y))]
    return rows, labels


def test_cross_fitted_protocol_keeps_speakers_apart():
    preds, labels = _predictions()
    report = calibrate_evaluation(preds, labels)
    assert len(report.folds) == 2
    for f in report.folds:
        assert f["fit_speakers"] + f["test_speakers"] == 10  # no speaker on both sides
        assert f["ece_after"] < f["ece_before"]
    assert report.applied and report.temperature == pytest.approx(2.5, rel=0.15)
    assert report.ece_after < 0.03 < report.ece_before
    card = report.calibration_card()
    assert card["method"] == "temperature" and card["n"] == 4000 and card["cross_fitted"]["ece_after"] < 0.05
    decision = report.decision_card()
    assert 0 < decision["uncertain_below"] < 1 and decision["coverage"] >= MIN_COVERAGE - 1e-9


def test_a_temperature_that_does_not_help_is_not_shipped():
    labels = ["neutral", "happy", "sad", "angry"]
    _, y, truth = _overconfident(n=4000, k=4, sharpen=1.0)  # already calibrated
    preds = pd.DataFrame(truth, columns=[f"p_{lab}" for lab in labels])
    preds["emotion"] = [labels[i] for i in y]
    preds["speaker"] = [f"s{i % 6}" for i in range(len(y))]
    report = calibrate_evaluation(preds, labels)
    if report.cross_fitted_ece_after >= report.cross_fitted_ece_before:
        assert report.temperature == 1.0 and not report.applied
    else:
        assert report.temperature == pytest.approx(1.0, abs=0.1)


def test_uncalibrated_undoes_a_temperature():
    preds, labels = _predictions()
    cols = [f"p_{lab}" for lab in labels]
    cal = preds.copy()
    cal[cols] = apply_temperature(preds[cols].to_numpy(), 1.7)
    assert np.allclose(uncalibrated(cal, labels, 1.7)[cols].to_numpy(), preds[cols].to_numpy(), atol=1e-9)


def test_shipped_default_is_calibrated_under_five_percent():
    """The combined default (two heads) is calibrated as it comes: the fitted temperature did not lower
    the error on the other half of the speakers, so none is applied; the error stays under 5%."""
    card = json.loads((MODELS_DIR / "default" / "card.json").read_text())
    cal, decision = card["calibration"], card["decision"]
    assert cal["method"] == "temperature" and cal["ece_after"] <= cal["ece_before"]
    assert cal["ece_after"] < 0.05 and cal["cross_fitted"]["ece_after"] < 0.05
    assert cal["applied"] == (cal["temperature"] != 1.0)
    assert "held-out speakers" in cal["fitted_on"] and cal["n"] == 3636 and cal["n_speakers"] == 40
    assert 0 < decision["uncertain_below"] < 1 and decision["rule"]


def test_the_four_corpus_model_needed_its_temperature():
    card = json.loads((MODELS_DIR / "four-corpus" / "card.json").read_text())
    cal = card["calibration"]
    assert cal["applied"] and cal["temperature"] > 1.0
    assert cal["ece_after"] < 0.05 < cal["ece_before"] and cal["cross_fitted"]["ece_after"] < 0.05 and cal["n"] == 3064


@pytest.fixture
def default_copy(tmp_path):
    """The four-corpus model (over-confident before calibration: a temperature above 1 helps it)."""
    folder = tmp_path / "four-corpus"
    shutil.copytree(MODELS_DIR / "four-corpus", folder)
    return folder


def test_calibrate_writes_the_card_and_the_bundle_applies_it(default_copy):
    card = json.loads((default_copy / "card.json").read_text())
    for key in ("calibration", "decision"):
        card.pop(key)
    (default_copy / "card.json").write_text(json.dumps(card))
    plain = ModelBundle.load(default_copy)  # a card without calibration loads unchanged
    assert plain.temperature == 1.0 and plain.uncertain_below == 0.0

    report = calibrate_bundle(default_copy)
    bundle = ModelBundle.load(default_copy)  # the model files' hashes still match the card
    assert bundle.temperature == pytest.approx(report.temperature, abs=1e-6) and bundle.temperature > 1
    assert bundle.uncertain_below == pytest.approx(report.threshold.uncertain_below, abs=1e-4)
    frames = [np.random.default_rng(0).normal(size=(150, 512)).astype(np.float32)]
    raw = bundle.probabilities_from_features(frames)  # the network's own, as ONNX computes them
    assert np.allclose(bundle.probabilities(frames), apply_temperature(raw, bundle.temperature))
    assert not np.allclose(bundle.probabilities(frames), raw)


def test_cli_calibrate_dry_run_prints_and_leaves_the_card(default_copy, capsys):
    before = (default_copy / "card.json").read_bytes()
    assert main(["calibrate", str(default_copy), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ECE 0.0573 -> 0.0216" in out and "fold 1" in out and "fold 2" in out and "'uncertain' below" in out
    assert (default_copy / "card.json").read_bytes() == before


def test_cli_calibrate_without_evaluation_says_how_to_get_one(default_copy, capsys):
    (default_copy / "evaluation.json").unlink()
    assert main(["calibrate", str(default_copy)]) == 2
    assert "has no evaluation.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("calibration", {"method": "platt", "temperature": 1.2}, "calibration method 'platt'"),
        ("calibration", {"method": "temperature", "temperature": -1}, "temperature=-1"),
        ("calibration", {"method": "temperature", "temperature": "hot"}, "temperature='hot'"),
        ("calibration", {"method": "temperature", "temperature": 1.1, "ece_after": 3}, "ece_after=3"),
        ("calibration", [1.2], "wrong type"),
        ("decision", {"uncertain_below": 1.5}, "uncertain_below=1.5"),
    ],
)
def test_damaged_calibration_fields_are_refused(field, value, message):
    card = json.loads((MODELS_DIR / "default" / "card.json").read_text())
    card[field] = value
    with pytest.raises(BundleError, match=message):
        validate_card(card)
