"""Tests for ser_lib.evaluation: WA / UA / macro-F1 by hand, per-corpus and per-class tables,
the confusion matrix, the JSON round trip, and scoring a (tiny, untrained) bundle on a fake tree."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ser_lib.config import EMOTIONS
from ser_lib.errors import ParameterError
from ser_lib.evaluation import EvaluationResult, evaluate_bundle, evaluate_predictions, summary_metrics

# Truth: 4 angry, 2 sad. Predictions: 3 angry right, 1 angry -> happy (a class not in the truth),
# 1 sad right, 1 sad -> angry.
Y_TRUE = ["angry", "angry", "angry", "angry", "sad", "sad"]
Y_PRED = ["angry", "angry", "angry", "happy", "sad", "angry"]


def test_summary_metrics_by_hand():
    m = summary_metrics(Y_TRUE, Y_PRED)
    # WA: 4 of 6 clips right.
    assert m["WA"] == pytest.approx(4 / 6)
    # UA: recall angry 3/4, sad 1/2 -> mean 0.625 (happy has no true clips, so no recall).
    assert m["UA"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    # macro-F1 over the emotions in the truth only: angry P=3/4 R=3/4 F1=3/4; sad P=1 R=1/2 F1=2/3.
    assert m["macro_f1"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert m["n"] == 6
    # the three really differ here, so a mix-up between them would show
    assert len({round(m["WA"], 6), round(m["UA"], 6), round(m["macro_f1"], 6)}) == 3


def test_summary_metrics_perfect_and_all_wrong():
    assert summary_metrics(["sad", "happy"], ["sad", "happy"]) == {"WA": 1.0, "UA": 1.0, "macro_f1": 1.0, "n": 2}
    m = summary_metrics(["sad", "happy"], ["happy", "sad"])
    assert (m["WA"], m["UA"], m["macro_f1"]) == (0.0, 0.0, 0.0)


def test_summary_metrics_empty_gives_nan():
    m = summary_metrics([], [])
    assert m["n"] == 0
    assert all(math.isnan(m[k]) for k in ("WA", "UA", "macro_f1"))


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": [f"/x/{i}.wav" for i in range(8)],
            "corpus": ["RAVDESS"] * 6 + ["TESS"] * 2,
            "speaker": ["R01"] * 6 + ["OAF"] * 2,
            "emotion": Y_TRUE + ["neutral", "neutral"],
            "predicted": Y_PRED + ["neutral", "sad"],
        }
    )


def test_evaluate_predictions_breakdown():
    res = evaluate_predictions(_table(), list(EMOTIONS), meta={"model": "hand"})
    assert res.overall["n"] == 8
    assert res.overall["WA"] == pytest.approx(5 / 8)
    assert set(res.per_corpus) == {"RAVDESS", "TESS"}
    assert res.per_corpus["RAVDESS"] == pytest.approx(summary_metrics(Y_TRUE, Y_PRED))
    assert res.per_corpus["TESS"]["n"] == 2
    assert res.per_corpus["TESS"]["WA"] == pytest.approx(0.5)
    assert res.meta == {"model": "hand"}
    assert list(res.predictions["correct"]) == [True, True, True, False, True, False, True, False]

    table = res.summary_table()
    assert list(table.index) == ["RAVDESS", "TESS", "overall"]
    assert list(table.columns) == ["WA", "UA", "macro_f1", "n"]

    # per-class: the emotions in the truth, in canonical order (happy is only predicted: no row,
    # but its false alarms still cost the true emotions' recall and show in the confusion matrix)
    pc = res.per_class
    assert list(pc.index) == ["neutral", "sad", "angry"]
    assert pc.loc["angry", "precision"] == pytest.approx(3 / 4)
    assert pc.loc["angry", "recall"] == pytest.approx(3 / 4)
    assert pc.loc["sad", "precision"] == pytest.approx(1 / 2)  # one sad right, one neutral called sad
    assert pc.loc["sad", "recall"] == pytest.approx(1 / 2)
    assert pc.loc["neutral", "recall"] == pytest.approx(1 / 2)
    assert res.confusion.loc["neutral", "happy"] + res.confusion.loc["angry", "happy"] >= 1
    # one macro-F1 everywhere: the report's macro average is the headline figure
    from ser_lib.evaluation import class_report

    report = class_report(res.predictions["emotion"], res.predictions["predicted"])
    assert report.loc["macro avg", "f1"] == pytest.approx(res.overall["macro_f1"])

    # confusion: every label, rows = truth, columns = prediction
    cm = res.confusion
    assert list(cm.index) == list(EMOTIONS) and list(cm.columns) == list(EMOTIONS)
    assert cm.loc["angry", "angry"] == 3
    assert cm.loc["angry", "happy"] == 1
    assert cm.loc["sad", "angry"] == 1  # truth sad, predicted angry: row sad
    assert cm.loc["angry", "sad"] == 0
    assert cm.loc["neutral", "sad"] == 1
    assert int(cm.values.sum()) == 8
    assert cm.sum(axis=1).to_dict() == {e: {"angry": 4, "sad": 2, "neutral": 2}.get(e, 0) for e in EMOTIONS}

    norm = res.confusion_normalised()
    row_sums = norm.sum(axis=1)
    for e in EMOTIONS:
        assert row_sums[e] == pytest.approx(1.0 if e in {"angry", "sad", "neutral"} else 0.0)
    assert norm.loc["angry", "happy"] == pytest.approx(0.25)


def test_evaluate_predictions_without_corpus_column():
    df = _table().drop(columns=["corpus"])
    res = evaluate_predictions(df, list(EMOTIONS))
    assert list(res.per_corpus) == ["all"]
    assert res.per_corpus["all"] == pytest.approx(res.overall)


def test_evaluate_predictions_needs_predicted_column():
    with pytest.raises(ParameterError, match="'predicted' column"):
        evaluate_predictions(_table().drop(columns=["predicted"]), list(EMOTIONS))


def test_json_round_trip(tmp_path):
    res = evaluate_predictions(_table(), list(EMOTIONS), meta={"model": "hand", "failed_files": []})
    path = res.save(tmp_path / "evaluation.json")
    back = EvaluationResult.from_json(json.loads(path.read_text()))
    assert back.labels == list(EMOTIONS)
    assert back.overall == pytest.approx(res.overall)
    assert back.per_corpus.keys() == res.per_corpus.keys()
    for c in res.per_corpus:
        assert back.per_corpus[c] == pytest.approx(res.per_corpus[c])
    pd.testing.assert_frame_equal(back.confusion, res.confusion, check_dtype=False)
    pd.testing.assert_frame_equal(back.per_class, res.per_class, check_dtype=False, check_names=False)
    pd.testing.assert_frame_equal(back.predictions, res.predictions.reset_index(drop=True), check_dtype=False)
    assert back.meta == {"model": "hand", "failed_files": []}
    np.testing.assert_allclose(back.summary_table().astype(float).values, res.summary_table().astype(float).values)

    slim = res.to_json(include_predictions=False)
    assert "predictions" not in slim
    assert EvaluationResult.from_json(slim).predictions.empty


@pytest.fixture
def tiny_bundle():
    from ser_lib.bundle import ModelBundle
    from ser_lib.frontends import NotebookFrontEnd
    from ser_lib.models import notebook_cnn1d

    return ModelBundle.create(
        notebook_cnn1d(num_classes=8), name="t", model_type="notebook_cnn1d", labels=list(EMOTIONS), frontend=NotebookFrontEnd()
    )


def test_evaluate_bundle_reports_failed_file(fake_corpus, tiny_bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    from ser_lib.corpora import find_corpora

    root = fake_corpus(corpora=("RAVDESS", "SAVEE"))
    manifest = find_corpora(root).manifest
    assert len(manifest) == 15
    broken = sorted(manifest["path"])[3]
    with open(broken, "wb") as fh:  # the file goes bad after the scan
        fh.write(b"RIFF\x00\x00garbage, not a wave file" * 8)

    calls = []

    def progress(step):
        calls.append((step.stage, step.done, step.total))

    res = evaluate_bundle(tiny_bundle, manifest, progress=progress, meta={"data": "fake"})
    assert calls[-1] == ("predict", 15, 15)
    assert res.overall["n"] == 14
    assert sum(v["n"] for v in res.per_corpus.values()) == 14
    assert str(broken) not in set(res.predictions["path"])
    failed = res.meta["failed_files"]
    assert [p for p, _ in failed] == [str(broken)]
    assert failed[0][1]  # with its reason
    assert res.meta["model"] == "t" and res.meta["data"] == "fake"
    probs = res.predictions[[f"p_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert set(res.predictions["predicted"]) <= set(EMOTIONS)


def test_evaluate_bundle_empty_manifest(tiny_bundle):
    empty = pd.DataFrame(columns=["path", "corpus", "speaker", "emotion"])
    with pytest.raises(ParameterError, match="manifest is empty"):
        evaluate_bundle(tiny_bundle, empty)
