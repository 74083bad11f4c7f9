"""The pages' non-UI helpers: ser_lib.app.dataset_view, ser_lib.app.model_view and ser_lib.app.jobs."""

from __future__ import annotations

import io
import json
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_lib.app import dataset_view as dv
from ser_lib.app import model_view as mv
from ser_lib.app.jobs import BackgroundJob
from ser_lib.bundle import Prediction
from ser_lib.config import EMOTIONS
from ser_lib.errors import BundleError, ParameterError, SERError


@pytest.fixture
def manifest() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": [
                "/d/ravdess/Actor_01/a.wav",
                "/d/ravdess/Actor_02/b.wav",
                "/d/tess/OAF_sad/OAF_back_sad.wav",
                "/elsewhere/c.wav",
            ],
            "corpus": ["RAVDESS", "RAVDESS", "TESS", "SAVEE"],
            "speaker": ["RAVDESS_01", "RAVDESS_02", "TESS_OAF", "SAVEE_DC"],
            "gender": ["male", "female", "female", "male"],
            "emotion": ["angry", "sad", "sad", "happy"],
            "intensity": ["normal"] * 4,
            "text_id": ["s1", "s2", "back", "h01"],
            "duration": [1.0, 2.0, np.nan, 4.0],
        }
    )


# --- dataset_view ----------------------------------------------------------------------------------


def test_filter_manifest(manifest):
    assert len(dv.filter_manifest(manifest)) == 4
    assert list(dv.filter_manifest(manifest, corpora=["RAVDESS"], emotions=["sad"])["speaker"]) == ["RAVDESS_02"]
    assert list(dv.filter_manifest(manifest, genders=["female"], text="oaf_")["corpus"]) == ["TESS"]
    assert len(dv.filter_manifest(manifest, min_duration=1.5, max_duration=3.0)) == 1


def test_file_table_paths_relative_to_the_folder(manifest):
    table = dv.file_table(manifest, "/d")
    assert list(table["file"]) == ["ravdess/Actor_01/a.wav", "ravdess/Actor_02/b.wav", "tess/OAF_sad/OAF_back_sad.wav", "c.wav"]
    assert list(table.columns) == [*dv.FILE_TABLE_COLUMNS, "path"]


def test_counts_long_shares(manifest):
    from ser_lib.corpora import emotion_counts

    long = dv.counts_long(emotion_counts(manifest))
    assert set(long["corpus"]) == {"RAVDESS", "TESS", "SAVEE", "all corpora"}
    assert np.allclose(long.groupby("corpus")["share"].sum(), 1.0)
    assert long.query("corpus == 'all corpora' and emotion == 'sad'")["files"].item() == 2


def test_duration_summaries_ignore_unknown_durations(manifest):
    stats = dv.duration_stats(manifest)
    assert stats.loc["all corpora", "files"] == 3
    assert stats.loc["all corpora", "hours"] == pytest.approx(7.0 / 3600)
    hist = dv.duration_histogram(manifest, bins=4)
    assert hist["files"].sum() == 3
    people = dv.speaker_summary(manifest)
    assert people.set_index("speaker").loc["SAVEE_DC", "minutes"] == pytest.approx(4.0 / 60)


def test_waveform_frame_envelope():
    y = np.sin(np.linspace(0, 100, 48_000)).astype(np.float32)
    frame = dv.waveform_frame(y, sr=16_000, points=300)
    assert 290 <= len(frame) <= 300
    assert frame["time"].iloc[-1] < 3.0
    assert (frame["max"] >= frame["min"]).all() and frame["max"].max() == pytest.approx(y.max())
    with pytest.raises(ParameterError, match="points=1"):
        dv.waveform_frame(y, sr=16_000, points=1)


def test_spectrogram_frame_shape_and_scale():
    y = np.random.default_rng(0).standard_normal(16_000 * 20).astype(np.float32) * 0.1
    frame = dv.spectrogram_frame(y, sr=16_000, n_bins=100, max_frames=400)
    assert frame.shape[0] == 100 and frame.shape[1] <= 401
    assert frame.index[0] == pytest.approx(50.0) and frame.index[-1] == pytest.approx(8000.0)
    assert frame.to_numpy().max() <= 0.0 and frame.to_numpy().min() >= -80.0


def test_feature_frame_checks_its_input():
    frame = dv.feature_frame(np.zeros((162, 1)), kind="notebook162")
    assert frame.groupby("group").size().to_dict() == {"chroma": 12, "mel": 128, "mfcc": 20, "rms": 1, "zcr": 1}
    with pytest.raises(ParameterError, match="162 features, got shape=\\(40,\\)"):
        dv.feature_frame(np.zeros(40), kind="notebook162")
    with pytest.raises(ParameterError, match="\\[time, dim\\] matrix"):
        dv.feature_frame(np.zeros(40), kind="logmel")


def test_augmentation_preview_is_reproducible(synth):
    y = synth.voice(1.0, sr=16_000, f0=150.0)
    a = dv.augmentation_preview(y, sr=16_000, name="noise", strength=0.5, seed=3)
    b = dv.augmentation_preview(y, sr=16_000, name="noise", strength=0.5, seed=3)
    assert np.array_equal(a.after, b.after) and np.array_equal(a.before, y)
    assert np.std(a.after - y) > 0.01
    slow = dv.augmentation_preview(y, sr=16_000, name="stretch", strength=1.0)
    assert len(slow.after) > 1.5 * len(y)
    assert np.abs(dv.augmentation_preview(y * 3, sr=16_000, name="shift", strength=0.2).after).max() <= 1.0
    with pytest.raises(ParameterError, match="Unknown augmentation 'reverb'"):
        dv.augmentation_preview(y, sr=16_000, name="reverb", strength=0.5)


# --- model_view ------------------------------------------------------------------------------------


def _card(name: str, ua: float | None = 0.5) -> dict:
    metrics = {"protocol": "speaker", "overall": {"WA": 0.6, "UA": ua, "macro_f1": 0.45, "n": 100}} if ua is not None else {}
    return {
        "card_version": 1,
        "name": name,
        "model_type": "notebook_cnn1d",
        "labels": list(EMOTIONS),
        "sample_rate": 22050,
        "frontend": {"kind": "notebook162", "sample_rate": 22050, "offset": 0.6, "duration": 2.5},
        "files": {},
        "created": "2026-01-01T00:00:00+00:00",
        "training": {"corpora": ["RAVDESS", "TESS"], "split": "speaker"},
        "metrics": metrics,
    }


@pytest.fixture
def model_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "models"
    for name in ("zeta", "default", "alpha"):
        (folder / name).mkdir(parents=True)
        (folder / name / "card.json").write_text(json.dumps(_card(name)))
    monkeypatch.setenv("SER_MODELS_DIR", str(folder))
    monkeypatch.setenv("SER_MODEL", str(folder / "default"))
    return folder


def test_find_bundles_lists_the_active_one_first(model_folder, tmp_path, monkeypatch):
    assert [b.name for b in mv.find_bundles()] == ["default", "alpha", "zeta"]
    outside = tmp_path / "shipped"
    outside.mkdir()
    (outside / "card.json").write_text(json.dumps(_card("shipped")))
    monkeypatch.setenv("SER_MODEL", str(outside))
    names = [b.name for b in mv.find_bundles()]
    assert names[0] == "shipped" and len(names) == 4


def test_summarise_bundle_reads_the_card_only(model_folder):
    info = mv.find_bundles()[0]
    s = mv.summarise_bundle(info)
    assert s.metrics == {"WA": 0.6, "UA": 0.5, "macro_f1": 0.45, "n": 100}
    assert s.description == "default (notebook 1D CNN on 162 features, speaker-independent UA 0.50)"
    assert s.corpora == ["RAVDESS", "TESS"] and not s.has_evaluation


def test_saved_evaluation(tmp_path):
    assert mv.load_saved_evaluation(tmp_path) is None
    (tmp_path / "evaluation.json").write_text("{not json")
    with pytest.raises(BundleError, match="is not a readable evaluation"):
        mv.load_saved_evaluation(tmp_path)


def test_bundle_folder_for_protects_existing_bundles(model_folder, monkeypatch):
    monkeypatch.delenv("SER_ALLOW_DEFAULT_OVERWRITE", raising=False)
    assert mv.bundle_folder_for("new-model") == model_folder / "new-model"
    with pytest.raises(BundleError, match="shipped default model"):
        mv.bundle_folder_for("default")
    (model_folder / "taken").mkdir()
    (model_folder / "taken" / "card.json").write_text("{}")
    with pytest.raises(BundleError, match="already holds a bundle: .*tick 'overwrite'"):
        mv.bundle_folder_for("taken")
    with pytest.raises(BundleError, match="replacing it from the dashboard is switched off"):
        mv.bundle_folder_for("default", overwrite=True)  # unless whoever runs the dashboard allows it
    monkeypatch.setenv("SER_ALLOW_DEFAULT_OVERWRITE", "1")
    assert mv.bundle_folder_for("default", overwrite=True) == model_folder / "default"
    for bad in ("", "../escape", "a b", "-x"):
        with pytest.raises(ParameterError, match="is not usable"):
            mv.bundle_folder_for(bad)


@pytest.fixture
def predictions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": ["/x/a.wav", "/x/b.wav", "/x/c.wav", "/x/d.wav"],
            "corpus": ["TESS", "TESS", "SAVEE", "SAVEE"],
            "emotion": ["sad", "sad", "angry", "happy"],
            "predicted": ["sad", "happy", "angry", "angry"],
            "confidence": [0.9, 0.4, 0.8, 0.3],
            "correct": [True, False, True, False],
        }
    )


def test_filter_predictions(predictions):
    assert list(mv.filter_predictions(predictions, misclassified_only=True)["path"]) == ["/x/b.wav", "/x/d.wav"]
    unsure_savee_angry = mv.filter_predictions(predictions, corpora=["SAVEE"], predicted=["angry"], max_confidence=0.5)
    assert list(unsure_savee_angry["path"]) == ["/x/d.wav"]
    assert len(mv.filter_predictions(predictions, true=["sad"])) == 2


def test_resolve_clip_finds_the_file_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_DATA_ROOTS", str(tmp_path))  # saved predictions play only audio under the data roots
    here = tmp_path / "TESS" / "OAF_back_sad.opus"
    here.parent.mkdir()
    here.write_bytes(b"x")
    local = pd.DataFrame({"path": [str(here)]})
    assert mv.resolve_clip(str(here)) == str(here)
    assert mv.resolve_clip("/far/away/OAF_back_sad.wav", local) == str(here)
    assert mv.resolve_clip("/far/away/OAF_bite_sad.wav", local) is None


def test_load_benchmarks(tmp_path):
    assert mv.load_benchmarks(tmp_path / "absent.json") is None
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"model": "seed", "corpus": "TESS", "UA": 0.5}]))
    table = mv.load_benchmarks(path)
    assert list(table.columns) == list(mv.BENCHMARK_COLUMNS) and table.loc[0, "UA"] == 0.5
    path.write_text(json.dumps([{"model": "seed"}]))
    with pytest.raises(ParameterError, match="rows lack \\['corpus', 'UA'\\]"):
        mv.load_benchmarks(path)


def test_class_report_adds_averages():
    from ser_lib.evaluation import evaluate_predictions

    df = pd.DataFrame({"emotion": ["sad", "sad", "happy", "happy"], "predicted": ["sad", "happy", "happy", "happy"]})
    report = mv.class_report(evaluate_predictions(df, ["sad", "happy"]))
    assert report.loc["macro avg", "recall"] == pytest.approx(0.75)
    assert report.loc["weighted avg", "support"] == 4


class FakeBundle:
    """Stands in for a ModelBundle: judges every clip 'calm' (no TensorFlow needed)."""

    labels = list(EMOTIONS)

    def predict(self, y, *, sr):
        probs = {e: (0.65 if e == "calm" else 0.05) for e in EMOTIONS}
        return Prediction("calm", 0.65, probs)

    def predict_source(self, source):  # a real bundle's front end decodes and checks the clip the same way
        from ser_lib.audio import load_audio

        return self.predict(load_audio(source, sr=16_000), sr=16_000)


def _wav(y, sr=16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


def test_predict_upload_turns_bad_clips_into_messages(synth):
    good = mv.predict_upload(FakeBundle(), _wav(synth.voice(2.0, sr=16_000, f0=140.0)), name="ok.wav")
    assert good.ok and good.prediction.emotion == "calm" and good.seconds == pytest.approx(2.0)
    cases = {
        "empty.wav": (b"", "empty"),
        "text.wav": (b"hello" * 50, "Could not read text.wav"),
        "big.wav": (bytes(2 * 1024 * 1024), "over the 1 MB limit"),
    }
    for name, (data, message) in cases.items():
        r = mv.predict_upload(FakeBundle(), data, name=name, max_mb=1)
        assert not r.ok and message in r.error and not r.too_long
    silent = mv.predict_upload(FakeBundle(), _wav(np.zeros(16_000, np.float32)), name="silent.wav")  # no speech, not an error
    assert silent.no_speech and not silent.error and silent.prediction.verdict == "no speech found"
    assert silent.prediction.message.startswith("No speech found in silent.wav: silent.wav is silent")
    long = mv.predict_upload(FakeBundle(), _wav(np.full(16_000 * 3, 0.1, np.float32)), name="call.wav", max_seconds=2)
    assert long.too_long and "Call timeline" in long.error


def test_results_table(synth):
    ok = mv.predict_upload(FakeBundle(), _wav(synth.voice(1.0, sr=16_000, f0=140.0)), name="a.wav")
    bad = mv.predict_upload(FakeBundle(), b"", name="b.wav")
    table = mv.results_table([ok, bad])  # every file, for the CSV: the error right after the figures, not after p_*
    assert list(table["file"]) == ["a.wav", "b.wav"]
    assert list(table.columns[:5]) == ["file", "emotion", "confidence", "seconds", "error"]
    assert table.loc[0, "p_calm"] == 0.65 and table.loc[0, "error"] == ""
    assert pd.isna(table.loc[1, "confidence"]) and "empty" in table.loc[1, "error"] and table.loc[1, "emotion"] == ""
    shown = mv.judged_table([ok, bad])  # what the page shows: judged clips only, no empty cell
    assert list(shown["file"]) == ["a.wav"] and "error" not in shown
    assert not shown.isna().any().any()


def test_named_source_prints_as_the_file_name():
    src = mv.named_source(b"abc", "my call.wav")
    assert src.read() == b"abc" and src.name == "my call.wav" and repr(src) == "'my call.wav'"
    with pytest.raises(SERError) as caught:
        from ser_lib.audio import load_audio

        load_audio(mv.named_source(b"text, not audio" * 40, "notes.wav"))
    assert "notes.wav" in str(caught.value) and "object at 0x" not in str(caught.value)


# --- the Training page's split ---------------------------------------------------------------------


def test_split_preview_says_what_is_held_out(fake_corpus):
    from ser_lib.corpora import find_corpora

    m = find_corpora(fake_corpus(speakers=2, extras=False)).manifest
    ok = mv.split_preview(m, split="speaker")
    assert ok.held_out and ok.warning is None
    assert ok.text.startswith("Held out for testing: 4 speakers, ") and "never heard in training" in ok.text
    assert "No validation set" in ok.text  # two speakers a corpus: one tested, one trained, none to spare
    one = mv.split_preview(m, split="speaker", corpora=["SAVEE"])
    assert one.held_out and one.text.startswith("Held out for testing: 1 speaker, 7 clips (SAVEE 1)")


def test_a_split_that_cannot_hold_out_a_speaker_warns(fake_corpus):
    from ser_lib.corpora import find_corpora
    from ser_lib.training import NoTestSetWarning, split_manifest

    m = find_corpora(fake_corpus(speakers=1, extras=False)).manifest
    with pytest.warns(NoTestSetWarning, match="leaves no file for testing: CREMA-D has one speaker"):
        s = split_manifest(m, split="speaker")
    assert not s.held_out and len(s.test) == 0 and len(s.notes) == 4
    preview = mv.split_preview(m, split="speaker")
    assert not preview.held_out and "without a held-out evaluation" in preview.warning
    assert "RAVDESS has one speaker (RAVDESS_01)" in preview.warning
    mixed = mv.split_preview(m, split="speaker", corpora=None)
    assert mixed.notes == s.notes


# --- evaluation_view --------------------------------------------------------------------------------


def _info(name: str, card: dict):
    from ser_lib.bundle import BundleInfo

    return BundleInfo(name, Path("/nowhere") / name, card)


FINAL = {
    "model_type": "encoder_head",
    "training": {
        "split": "none",
        "train_speakers": ["RAVDESS_01", "RAVDESS_02", "SAVEE_DC", "SAVEE_JK"],
        "test_speakers": [],
        "config": {"epochs": 24, "split": "none", "seed": 0},
        "held_out_run": {
            "split": "speaker",
            "train_speakers": ["RAVDESS_01", "SAVEE_DC"],
            "test_speakers": ["RAVDESS_02", "SAVEE_JK"],
            "config": {"epochs": 30, "split": "speaker", "seed": 0},
        },
    },
    "metrics": {
        "protocol": "speaker",
        "overall": {"WA": 0.7, "UA": 0.72, "macro_f1": 0.71, "n": 40},
        "source": "held-out run sib",
    },
}


def test_evaluation_source_of_a_model_trained_on_everyone_names_the_run_its_figures_come_from():
    from ser_lib.app import evaluation_view as ev

    src = ev.evaluation_source(_info("final", FINAL))
    assert src.label == "figures of sib (same recipe, 2 held-out speakers), not of final itself"
    assert not src.own and src.from_bundle == "sib" and src.heard == ["RAVDESS_02", "SAVEE_JK"]
    assert "**final** was trained on 4 speakers with no test set" in src.detail
    assert "final heard all 2 of those speakers in training" in src.detail
    assert "Settings that differ: epochs 30 there, 24 here." in src.detail
    table = ev.speaker_table(_info("final", FINAL))
    assert list(table["run"]) == ["final", "final", "sib (where the figures come from)", "sib (where the figures come from)"]
    assert table.iloc[0].to_dict() == {"run": "final", "corpus": "RAVDESS", "trained on": "2: 01, 02", "held out (test)": "none"}
    assert table.iloc[3].to_dict()["held out (test)"] == "1: JK"


def test_evaluation_source_of_other_protocols():
    from ser_lib.app import evaluation_view as ev

    own = {"training": {"split": "speaker", "train_speakers": ["A_1", "A_2"], "test_speakers": ["A_3"]}, "metrics": {}}
    label = ev.evaluation_source(_info("m", own)).label
    assert label == "figures on held-out speakers of its own training run (1 speaker never heard in training)"
    rnd = {"training": {"split": "random", "test_speakers": ["A_1"]}, "metrics": {}}
    assert "optimistic" in ev.evaluation_source(_info("r", rnd)).warning
    none = {"training": {"split": "none"}, "metrics": {"held_out": False}}
    assert ev.evaluation_source(_info("n", none)).label == "no held-out figures"
    preds = pd.DataFrame({"speaker": ["A_1", "A_3", "B_9"]})
    fresh = ev.fresh_source(_info("m", own), preds)
    assert fresh.label == "figures evaluated now on the data folder (3 speakers); m heard 1 of them in training"
    assert "trained on 1 of the 3 speakers" in fresh.warning


def test_plain_summary_of_the_figures(predictions):
    from ser_lib.app import evaluation_view as ev
    from ser_lib.evaluation import evaluate_predictions, summary_metrics

    predictions = predictions.assign(speaker=["TESS_OAF", "TESS_OAF", "SAVEE_JK", "SAVEE_JK"])
    with warnings.catch_warnings():  # four clips: not every emotion is predicted
        warnings.simplefilter("ignore", UserWarning)
        res = evaluate_predictions(predictions, list(EMOTIONS))
    own = ev.EvaluationSource("own", "", test_speakers=sorted(predictions["speaker"].unique()))
    ref = ev.Reference("notebook-cnn1d-heldout", 0.30, True)
    lines = ev.plain_summary(res, own, name="m", reference=ref)
    o = res.overall
    assert lines[0].startswith(f"**m** names the right emotion in **{100 * o['WA']:.1f}%** of {len(predictions)} clips")
    assert "guessing among 8 emotions would get **12.5%**" in lines[0]
    diff = 100 * (o["UA"] - 0.30)
    assert lines[-1] == (
        f"The notebook's model (notebook-cnn1d-heldout) gets **30.0%** UA on the same speakers: "
        f"{abs(diff):.1f} points {'lower' if diff >= 0 else 'higher'}."
    )
    # figures on more speakers than the notebook's (other corpora too): compared on its speakers only
    sub = ev.Reference("notebook-cnn1d-heldout", 0.30, False, ("SAVEE_JK",))
    line = ev.plain_summary(res, own, name="m", reference=sub)[-1]
    jk = predictions[predictions["speaker"] == "SAVEE_JK"]
    ua_jk = summary_metrics(jk["emotion"], jk["predicted"])["UA"]
    diff = 100 * (ua_jk - 0.30)
    assert line == (
        "The notebook's model (notebook-cnn1d-heldout) gets **30.0%** UA on the same speakers (the 1 of these it held "
        f"out): {abs(diff):.1f} points {'lower' if diff >= 0 else 'higher'} than the **{100 * ua_jk:.1f}%** "
        "measured here on them."
    )
    sibling = ev.plain_summary(res, ev.evaluation_source(_info("final", FINAL)), name="final")
    assert sibling[0].startswith("**final's recipe** (measured on sib, trained without these speakers)")


def test_scores_are_written_one_way_and_comparisons_coloured():
    from ser_lib.app import evaluation_view as ev

    assert ev.score(0.71611) == "71.6%" and ev.score(None) == "n/a"
    table = pd.DataFrame({"WA": [0.5], "UA": [0.71611], "macro_f1": [0.4], "n": [12.0]}, index=["overall"])
    assert ev.percent_table(table).iloc[0].tolist() == [50.0, 71.6, 40.0, 12]
    delta = pd.DataFrame({"WA": [0.05], "UA": [-0.11611], "macro_f1": [0.0]}, index=["overall"])
    both = pd.concat({"a": table, "b": table.assign(UA=0.6, WA=0.55), "Δ": delta}, axis=1)
    html = ev.comparison_styler(both).to_html()
    assert "+5.0 pts" in html and "-11.6 pts" in html and "71.6%" in html
    assert "#1A7F37" in html and "#CF222E" in html  # green where better, red where worse


def test_benchmark_rows_use_the_bundles_names():
    from ser_lib.app import evaluation_view as ev

    rows = pd.DataFrame({"model": ["encoder_head_pitch", "seed_cnn1d", "linear_probe", "mystery"], "UA": [0.7, 0.4, 0.6, 0.1]})
    named = ev.benchmark_with_bundle_names(rows, ["encoder-head-pitch-heldout", "notebook-cnn1d-heldout"])
    assert list(named["model"]) == ["encoder-head-pitch-heldout", "notebook-cnn1d-heldout", "linear probe (no bundle)", "mystery"]
    assert list(named["benchmark"]) == list(rows["model"])
    assert ev.eta_text(None) == "" and ev.eta_text(12) == "about 10 s left" and ev.eta_text(600) == "about 10 min left"


# --- jobs ---------------------------------------------------------------------------------------


def test_job_reports_progress_and_result():
    def target(report, should_stop):
        for e in range(1, 4):
            report({"stage": "epoch", "epoch": e, "epochs": 3, "loss": 1.0 / e, "accuracy": 0.2 * e})
        return "model"

    job = BackgroundJob(target).start()
    assert job.join(10)
    snap = job.snapshot()
    assert snap.state == "done" and snap.result == "model" and snap.fraction == 1.0
    assert list(snap.epochs["epoch"]) == [1, 2, 3] and "stage" not in snap.epochs
    with pytest.raises(ParameterError, match="already started"):
        job.start()


def test_job_cancel_is_seen_by_the_target():
    reported = threading.Event()

    def target(report, should_stop):
        while not should_stop():
            report({"stage": "epoch", "epoch": 1, "epochs": 10})
            reported.set()
            time.sleep(0.01)  # the job's own pace: one epoch per 10 ms until cancelled
        return "partial"

    job = BackgroundJob(target).start()
    assert reported.wait(10), "the job never reported progress"
    assert not job.snapshot().finished and 0.4 < job.snapshot().fraction < 0.5
    job.cancel()
    assert job.join(10)
    assert job.snapshot().state == "cancelled" and job.snapshot().result == "partial"


def test_a_cancelled_job_never_reads_finished():
    def target(report, should_stop):
        for e in range(1, 100):
            report({"stage": "epoch", "epoch": e, "epochs": 100, "accuracy": 0.5})
            if should_stop():
                report({"stage": "done", "done": 1, "total": 1})  # training reports "done" even when stopped
                return "partial"
            time.sleep(0.01)
        return "never"

    job = BackgroundJob(target).start()
    time.sleep(0.05)
    job.cancel()
    assert job.join(10)
    snap = job.snapshot()
    assert snap.state == "cancelled" and snap.fraction < 1.0
    assert snap.message.startswith("cancelled (epoch ") and "finished" not in snap.message


def test_a_job_says_what_it_does_before_its_first_event_and_estimates_the_time_left():
    gate = threading.Event()
    seen = threading.Event()

    def target(report, should_stop):
        gate.wait(10)
        for i in range(0, 5):
            report({"stage": "predict", "done": i, "total": 10})
            time.sleep(0.05)
        seen.set()
        gate.clear()
        gate.wait(10)
        return "ok"

    job = BackgroundJob(target, starting="starting: loading TensorFlow and the encoder").start()
    assert job.snapshot().message == "starting: loading TensorFlow and the encoder" and job.snapshot().eta_s is None
    gate.set()
    assert seen.wait(10)
    snap = job.snapshot()
    assert snap.message == "evaluated 4/10 files" and 0.1 < snap.eta_s < 2.0  # about 0.05 s a file, 6 files left
    gate.set()
    assert job.join(10)


def test_job_cancelled_by_its_target_has_no_result():
    from ser_lib.app.jobs import JobCancelled

    def target(report, should_stop):
        for i in range(10_000):
            report({"stage": "featurise", "done": i, "total": 10_000})
            if should_stop():
                raise JobCancelled("stopped while featurising")
            time.sleep(0.001)
        return "never"

    job = BackgroundJob(target).start()
    job.cancel()
    assert job.join(10)
    snap = job.snapshot()
    assert snap.state == "cancelled" and snap.result is None and snap.error is None
    assert snap.stage == "featurise" and snap.fraction < 0.4


def test_job_failures_become_messages(caplog):
    def user_error(report, should_stop):
        raise SERError("No files to train on")

    def bug(report, should_stop):
        raise KeyError("oops")

    a = BackgroundJob(user_error).start()
    b = BackgroundJob(bug).start()
    a.join(10), b.join(10)
    assert a.snapshot().state == "failed" and a.snapshot().error == "No files to train on"
    assert b.snapshot().state == "failed" and "Unexpected error (KeyError" in b.snapshot().error
    assert "Traceback" in caplog.text


@pytest.mark.slow
def test_training_survives_streamlits_keras_session_resets(tmp_path):
    """Streamlit calls keras.backend.clear_session() after every script run; a training job
    must not be broken by it (a thread-based one failed with duplicate layer names)."""
    import keras

    from conftest import build_fake_corpus
    from ser_lib.app.jobs import training_job
    from ser_lib.bundle import ModelBundle
    from ser_lib.corpora import find_corpora
    from ser_lib.training import TrainConfig

    data = build_fake_corpus(tmp_path / "data", speakers=2, per_emotion=1, corpora=("RAVDESS", "SAVEE"), extras=False)
    manifest = find_corpora(data).manifest
    config = TrainConfig(model_type="notebook_cnn1d", epochs=2, batch_size=8, augment=False)
    job = training_job(manifest, config, save_to=tmp_path / "models" / "m").start()
    done = threading.Event()

    def reset_sessions():  # what every Streamlit rerun does
        while not done.is_set():
            keras.backend.clear_session()
            time.sleep(0.005)

    resetter = threading.Thread(target=reset_sessions, daemon=True)
    resetter.start()
    try:
        assert job.join(300)
    finally:
        done.set()
    snap = job.snapshot()
    assert snap.state == "done", snap.error
    assert list(snap.epochs["epoch"]) == [1, 2]
    assert snap.result.saved_to == str(tmp_path / "models" / "m")
    assert ModelBundle.load(tmp_path / "models" / "m").card["training"]["epochs_run"] == 2


def test_keep_partial_moves_a_cancelled_runs_bundle(tmp_path):
    from ser_lib.app.jobs import TrainingOutcome, keep_partial

    partial = tmp_path / "tmp" / "mine"
    partial.mkdir(parents=True)
    (partial / "card.json").write_text("{}")
    outcome = TrainingOutcome(None, pd.DataFrame(), 1.0, True, "speaker", [], partial=str(partial))
    target = keep_partial(outcome, tmp_path / "models" / "mine")
    assert (target / "card.json").is_file() and not partial.exists()
    assert outcome.saved_to == str(target) and outcome.partial is None
    with pytest.raises(ParameterError, match="no partial model"):
        keep_partial(outcome, tmp_path / "models" / "other")
