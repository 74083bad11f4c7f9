"""Tests for ser_lib.cli: each command run through ``main([...])`` on fake corpus trees and a tiny
(untrained) seed bundle, plus one tiny end-to-end train -> save -> load -> predict run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_lib.cli import main
from ser_lib.config import EMOTIONS


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tiny_bundle_dir(tmp_path):
    """A saved, untrained notebook_cnn1d bundle (fast to build and to run)."""
    from ser_lib.bundle import ModelBundle
    from ser_lib.frontends import NotebookFrontEnd
    from ser_lib.models import notebook_cnn1d

    bundle = ModelBundle.create(
        notebook_cnn1d(num_classes=8), name="t", model_type="notebook_cnn1d", labels=list(EMOTIONS), frontend=NotebookFrontEnd()
    )
    return bundle.save(tmp_path / "models" / "tiny")


def test_corpora_prints_counts_and_skipped(fake_corpus, capsys):
    root = fake_corpus()
    assert main(["corpora", "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"Corpora under {root}: 28 files" in out
    for corpus in ("RAVDESS", "TESS", "SAVEE", "CREMA-D"):
        assert corpus in out
    assert "Skipped 1 audio file(s):" in out
    assert "notes.wav" in out
    assert "README.txt" not in out and ".DS_Store" not in out


def test_corpora_missing_folder(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert main(["corpora", "--data", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert "does not exist" in captured.err
    assert str(missing) in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_predict_prints_emotion_and_writes_json(tiny_bundle_dir, tmp_path, capsys):
    import soundfile as sf

    from call_audio import speechlike  # a tone is "no speech found" (tests/test_decisions.py): speech-like audio

    clip = tmp_path / "speech.wav"
    sf.write(clip, speechlike(1.5), 16_000)
    out_json = tmp_path / "out" / "pred.json"
    assert main(["predict", str(clip), "--model", str(tiny_bundle_dir), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "model: " in out
    line = next(ln for ln in out.splitlines() if ln.startswith(f"{clip}: "))
    emotion = line.split(": ", 1)[1].split(" ", 1)[0]
    assert emotion in EMOTIONS
    assert "ERROR" not in out

    data = json.loads(out_json.read_text())
    (row,) = data["predictions"]
    assert row["path"] == str(clip)
    assert row["emotion"] == emotion
    probs = [row[f"p_{e}"] for e in EMOTIONS]
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    assert row["confidence"] == pytest.approx(max(probs))
    assert row["error"] == ""


def test_predict_non_audio_file(tmp_path, make_tone, tiny_bundle_dir, capsys):
    bad = tmp_path / "letter.wav"
    bad.write_text("Dear Sir, this is not audio.\n" * 10)
    good = make_tone(seconds=1.0)
    code = main(["predict", str(bad), str(good), "--model", str(tiny_bundle_dir)])
    assert code != 0
    out = capsys.readouterr().out
    assert f"{bad}: ERROR " in out
    good_line = next(ln for ln in out.splitlines() if ln.startswith(f"{good}: "))
    assert "ERROR" not in good_line  # the other file is still predicted


def test_evaluate_writes_json(fake_corpus, tiny_bundle_dir, tmp_path, capsys):
    root = fake_corpus(corpora=("RAVDESS", "TESS"))
    out_json = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(root), "--model", str(tiny_bundle_dir), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "macro_f1" in out
    data = json.loads(out_json.read_text())
    assert {"overall", "per_corpus", "per_class", "confusion"} <= set(data)
    assert set(data["per_corpus"]) == {"RAVDESS", "TESS"}
    for metrics in [data["overall"], *data["per_corpus"].values()]:
        assert {"WA", "UA", "macro_f1", "n"} <= set(metrics)
    assert data["per_corpus"]["RAVDESS"]["n"] == 8
    assert data["per_corpus"]["TESS"]["n"] == 7
    assert data["overall"]["n"] == 15
    assert len(data["predictions"]) == 15
    cm = np.array(data["confusion"]["matrix"])
    assert cm.shape == (len(EMOTIONS), len(EMOTIONS)) and cm.sum() == 15
    assert {r["emotion"] for r in data["per_class"]} <= set(EMOTIONS)


def test_evaluate_json_without_predictions(fake_corpus, tiny_bundle_dir, tmp_path, capsys):
    root = fake_corpus(corpora=("SAVEE",))
    out_json = tmp_path / "eval.json"
    args = ["evaluate", "--data", str(root), "--model", str(tiny_bundle_dir), "--json", str(out_json), "--no-predictions"]
    assert main(args) == 0
    data = json.loads(out_json.read_text())
    assert "predictions" not in data
    assert data["overall"]["n"] == 7


def test_train_save_load_predict(fake_corpus, tmp_path, make_tone, capsys):
    from ser_lib.bundle import ModelBundle

    root = fake_corpus(corpora=("RAVDESS", "SAVEE"), speakers=3)
    out_dir = tmp_path / "m"
    args = ["train", "--data", str(root), "--model-type", "notebook_cnn1d", "--epochs", "1", "--batch-size", "8"]
    args += ["--out", str(out_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"saved {out_dir}" in out
    assert (out_dir / "card.json").is_file()

    bundle = ModelBundle.load(out_dir)
    assert bundle.card["model_type"] == "notebook_cnn1d"
    assert set(bundle.labels) == set(EMOTIONS)  # RAVDESS has all eight
    pred = bundle.predict_files([make_tone(seconds=1.2, freq=180.0, noise=0.02)])
    assert pred["error"].iloc[0] == ""
    assert pred["emotion"].iloc[0] in bundle.labels
    assert pred[[f"p_{lab}" for lab in bundle.labels]].to_numpy().sum() == pytest.approx(1.0, abs=1e-4)


def test_train_refuses_existing_bundle(fake_corpus, tiny_bundle_dir, capsys):
    root = fake_corpus(corpora=("SAVEE",))
    card_before = (tiny_bundle_dir / "card.json").read_text()
    args = ["train", "--data", str(root), "--model-type", "notebook_cnn1d", "--epochs", "1", "--out", str(tiny_bundle_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err
    assert str(tiny_bundle_dir) in err
    assert (tiny_bundle_dir / "card.json").read_text() == card_before  # untouched


@pytest.mark.parametrize(
    "command, purpose",
    [
        ("corpora", "RAVDESS, TESS, SAVEE and CREMA-D"),
        ("train", "Train a model"),
        ("evaluate", "Score a model"),
        ("predict", "Print the emotion"),
    ],
)
def test_subcommand_help(command, purpose, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert f"python -m ser_lib {command}" in out
    assert purpose in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
