"""Multi-corpus training: the loss masked to each corpus's emotions, balanced sampling, leave one corpus out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_lib.errors import ParameterError
from ser_lib.training import TrainConfig, label_masks, sampling_weights, split_manifest, train


def _loss(y_true, y_pred, smoothing=0.0) -> np.ndarray:
    from ser_lib.models import MaskedCrossEntropy

    loss = MaskedCrossEntropy(smoothing, reduction=None)
    return np.asarray(loss(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32)))


def test_masked_loss_ignores_the_emotions_a_corpus_does_not_label():
    # three emotions; the corpus labels the first two only; the truth is the first
    y = [[1, 0, 0, 1, 1, 0]] * 2
    p = [[0.6, 0.2, 0.2], [0.3, 0.1, 0.6]]  # same ratio 3:1 between the labelled two, any mass on the third
    out = _loss(y, p)
    np.testing.assert_allclose(out, [-np.log(0.75)] * 2, rtol=1e-5)
    # with every emotion labelled it is the plain cross-entropy, smoothing included
    full = _loss([[1, 0, 0, 1, 1, 1]], [[0.6, 0.2, 0.2]], smoothing=0.3)
    target = np.array([0.8, 0.1, 0.1])
    np.testing.assert_allclose(full, [-(target * np.log([0.6, 0.2, 0.2])).sum()], rtol=1e-5)
    # smoothing goes to the labelled emotions only
    part = _loss([[1, 0, 0, 1, 1, 0]], [[0.6, 0.2, 0.2]], smoothing=0.2)
    np.testing.assert_allclose(part, [-(0.9 * np.log(0.75) + 0.1 * np.log(0.25))], rtol=1e-5)


def test_label_masks_follow_each_corpus():
    labels = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    m = label_masks(["RAVDESS", "URDU", "CREMA-D", "MyCalls"], labels)
    assert m[0].all() and m[3].all()  # RAVDESS labels all eight; an unknown corpus is taken to label all
    assert [lab for lab, on in zip(labels, m[1], strict=True) if on] == ["neutral", "happy", "sad", "angry"]
    assert not m[2][labels.index("calm")] and not m[2][labels.index("surprise")] and m[2][labels.index("disgust")]


def test_sampling_weights_balance_corpora_and_speakers():
    corpora = ["BIG"] * 900 + ["SMALL"] * 100
    speakers = ["B1"] * 800 + ["B2"] * 100 + ["S1"] * 50 + ["S2"] * 50
    w = sampling_weights(corpora, speakers)
    assert w.sum() == pytest.approx(1.0)
    share_small = w[900:].sum()
    assert share_small == pytest.approx(100**0.5 / (100**0.5 + 900**0.5))  # 0.25 instead of 0.10
    # within BIG, speaker B1 (800 clips) gets sqrt(800) : sqrt(100), not 8 : 1
    assert w[:800].sum() / w[800:900].sum() == pytest.approx(800**0.5 / 100**0.5)
    # clips of one speaker are equally likely
    assert np.ptp(w[:800]) == 0


def _manifest() -> pd.DataFrame:
    rows = []
    for corpus, n in {"A": 4, "B": 5, "C": 3}.items():
        for s in range(n):
            for c in range(4):
                rows.append({"path": f"/x/{corpus}{s}{c}.wav", "corpus": corpus, "speaker": f"{corpus}_{s}", "emotion": "sad"})
    return pd.DataFrame(rows)


def test_leave_one_corpus_out_split():
    m = _manifest()
    s = split_manifest(m, split="corpus", holdout="B", seed=0)
    assert set(m["corpus"].iloc[s.test]) == {"B"} and len(s.test) == 20
    assert set(m["corpus"].iloc[s.train]) == {"A", "C"}
    assert set(m["corpus"].iloc[s.val]) == {"A", "C"}  # validation speakers from the training corpora
    assert not set(m["speaker"].iloc[s.val]) & set(m["speaker"].iloc[s.train])
    assert s.kind == "corpus" and "B held out whole" in s.notes[0]
    with pytest.raises(ParameterError, match=r"holdout corpus 'D' is not in the data: expected one of \['A', 'B', 'C'\]"):
        split_manifest(m, split="corpus", holdout="D")
    with pytest.raises(ParameterError, match="needs holdout_corpus"):
        TrainConfig(split="corpus")


def test_encoder_head_trains_masked_and_balanced_across_corpora(tmp_path, monkeypatch, fake_corpus):
    """A real (tiny) encoder-head run over two corpora, one without calm and surprise."""
    from ser_lib.corpora import find_corpora

    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    root = fake_corpus(corpora=("RAVDESS", "CREMA-D"), speakers=3, per_emotion=1, extras=False, seconds=(0.8, 1.0))
    m = find_corpora(root).manifest
    result = train(
        m,
        TrainConfig(
            model_type="encoder_head", epochs=1, batch_size=8, n_jobs=1, encoder_views=("telephone",), telephone_eval=False
        ),
    )
    training = result.bundle.card["training"]
    assert training["loss_masking"]["CREMA-D"] == ["neutral", "happy", "sad", "angry", "fear", "disgust"]
    assert training["loss_masking"]["RAVDESS"] == result.bundle.labels
    assert training["sampling"].startswith("balanced")
    assert {"loss", "accuracy"} <= set(result.history.columns)
    assert np.isfinite(result.history["loss"]).all()
    assert set(result.evaluation.per_corpus) == {"RAVDESS", "CREMA-D"}


def test_leave_one_corpus_out_training_tests_on_that_corpus_only(tmp_path, monkeypatch, fake_corpus):
    from ser_lib.corpora import find_corpora

    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    root = fake_corpus(corpora=("SAVEE", "CREMA-D"), speakers=3, per_emotion=1, extras=False)
    m = find_corpora(root).manifest
    result = train(
        m, TrainConfig(model_type="notebook_cnn1d", epochs=1, batch_size=8, n_jobs=1, holdout_corpus="SAVEE", split="corpus")
    )
    assert set(result.evaluation.per_corpus) == {"SAVEE"}
    assert result.bundle.card["training"]["corpora"] == ["CREMA-D", "SAVEE"]
    assert set(m["corpus"].iloc[result.split.train]) == {"CREMA-D"}
    # the notebook model is masked too: CREMA-D has no surprise, which SAVEE (held out) has
    assert "surprise" not in result.bundle.card["training"]["loss_masking"]["CREMA-D"]
