"""ser_lib.training: the split protocol, configuration checks, cancelling, the notebook model's scaler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_lib.errors import ParameterError
from ser_lib.training import TrainConfig, split_manifest, train


def manifest(speakers_per_corpus: dict[str, int], clips: int = 8) -> pd.DataFrame:
    rows = []
    emotions = ["neutral", "happy", "sad", "angry"]
    for corpus, n in speakers_per_corpus.items():
        for s in range(n):
            for c in range(clips):
                rows.append(
                    {"path": f"/x/{corpus}_{s}_{c}.wav", "corpus": corpus, "speaker": f"{corpus}_{s}", "emotion": emotions[c % 4]}
                )
    return pd.DataFrame(rows)


def test_speaker_split_holds_out_speakers_in_every_corpus():
    m = manifest({"RAVDESS": 22, "SAVEE": 3, "TESS": 2, "CREMA-D": 30})
    s = split_manifest(m, split="speaker", test_size=0.2, seed=0)
    train_spk = set(m["speaker"].iloc[s.train]) | set(m["speaker"].iloc[s.val])
    test_spk = set(m["speaker"].iloc[s.test])
    assert not train_spk & test_spk
    assert set(m["speaker"].iloc[s.val]).isdisjoint(m["speaker"].iloc[s.train])
    held = m.iloc[s.test].groupby("corpus")["speaker"].nunique().to_dict()
    assert held == {"RAVDESS": 4, "SAVEE": 1, "TESS": 1, "CREMA-D": 6}
    assert len(s.train) + len(s.val) + len(s.test) == len(m)
    assert sorted(test_spk) == s.test_speakers


def test_a_one_speaker_corpus_stays_in_training(caplog):
    m = manifest({"RAVDESS": 5, "SAVEE": 1})
    s = split_manifest(m, split="speaker")
    assert "SAVEE_0" not in set(m["speaker"].iloc[s.test])
    assert "one speaker" in caplog.text


def test_random_split_is_the_notebooks_leaky_protocol():
    m = manifest({"RAVDESS": 4})
    s = split_manifest(m, split="random", test_size=0.25, seed=0)
    assert set(m["speaker"].iloc[s.train]) & set(m["speaker"].iloc[s.test])  # speakers on both sides
    assert len(s.test) == 8 and s.kind == "random"


def test_splits_are_reproducible_and_seeded():
    m = manifest({"CREMA-D": 40})
    a, b = split_manifest(m, seed=3), split_manifest(m, seed=3)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, split_manifest(m, seed=4).test)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model_type": "svm"}, "model_type='svm' is not one of"),
        ({"split": "by_file"}, "split='by_file' is not one of"),
        ({"epochs": 0}, "must be at least 1"),
        ({"test_size": 1.5}, "test_size=1.5 must be between 0 and 1"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        TrainConfig(**kwargs)


def test_training_needs_files_and_two_emotions():
    m = manifest({"RAVDESS": 3})
    with pytest.raises(ParameterError, match="No files to train on"):
        train(m, TrainConfig(corpora=("TESS",)))
    one = m.assign(emotion="sad")
    with pytest.raises(ParameterError, match="at least two emotions"):
        train(one, TrainConfig())


def test_notebook_model_trains_with_a_training_only_scaler_and_can_be_cancelled(tmp_path, monkeypatch, fake_corpus):
    from ser_lib.corpora import find_corpora

    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    root = fake_corpus(corpora=("CREMA-D",), speakers=3, per_emotion=1, extras=False)
    m = find_corpora(root).manifest
    events = []
    result = train(
        m,
        TrainConfig(model_type="notebook_cnn1d", epochs=3, batch_size=4, n_jobs=1),
        progress=events.append,
        should_stop=lambda: any(e.stage == "epoch" for e in events),
    )
    assert result.stopped and len(result.history) == 2  # stopped in the second epoch (Keras records it), not 3
    assert result.evaluation is None  # a cancelled run is not scored as if complete
    stages = [e.stage for e in events]
    assert stages[0] == "featurise" and "epoch" in stages and stages[-1] == "done"
    # the scaler was fitted on the training rows only: recompute it from the training files' features
    from ser_lib.featurize import NotebookExtractor, featurize_files

    train_files = list(m["path"].iloc[result.split.train])
    values, _ = featurize_files(train_files, NotebookExtractor(augment=True), n_jobs=1, progress=False)
    rows = np.concatenate(values)
    np.testing.assert_allclose(result.bundle.card["scaler"]["mean"], rows.mean(axis=0), rtol=1e-4, atol=1e-6)


def test_a_one_epoch_log_mel_cnn_trains_saves_and_serves(tmp_path, monkeypatch, fake_corpus):
    """The log-mel CNN end to end on generated audio: one epoch with telephone copies, held-out
    speakers scored, saved as a bundle whose ONNX network gives the held-out probabilities again."""
    from ser_lib.bundle import ModelBundle
    from ser_lib.corpora import find_corpora
    from ser_lib.frontends import LogMelFrontEnd

    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    root = fake_corpus(corpora=("CREMA-D",), speakers=4, per_emotion=1, extras=False)
    m = find_corpora(root).manifest
    steps = []
    result = train(m, TrainConfig(model_type="logmel_cnn", epochs=1, batch_size=8, n_jobs=1), progress=steps.append)
    assert len(result.history) == 1 and {"loss", "accuracy"} <= set(result.history.columns)
    assert result.evaluation is not None and result.evaluation.overall["n"] == len(result.split.test) > 0
    assert not set(result.split.train_speakers) & set(result.split.test_speakers)
    assert any(s.stage == "featurise" and "telephone" in s.info.get("desc", "") for s in steps)  # augmented training side
    assert result.bundle.card["frontend"] == LogMelFrontEnd().settings()

    folder = result.bundle.save(tmp_path / "logmel", evaluation=result.evaluation.to_json())
    loaded = ModelBundle.load(folder)
    assert loaded.card["model_type"] == "logmel_cnn" and loaded.card["files"]["model.onnx"]
    saved = result.evaluation.predictions
    again = loaded.predict_files(list(saved["path"]))
    p_cols = [f"p_{lab}" for lab in loaded.labels]
    # training scored the cached float16 log-mels with Keras; serving decodes the files again and runs ONNX
    np.testing.assert_allclose(again[p_cols].to_numpy(float), saved[p_cols].to_numpy(float), atol=5e-3)
