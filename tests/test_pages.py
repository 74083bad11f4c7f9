"""Every page with ``streamlit.testing.v1.AppTest``: with corpora and a model, without either,
and the key interactions (filters, choosing a file, a one-epoch training run, picking bundles,
predicting uploads, bad uploads). The checks read what a person sees: the Evaluation page's
source line against the bundle's card, the plain-words summary, the Training page's warning for a
split that cannot hold a speaker out, messages that name files (never an object's repr), tables
without empty cells.

Pages are opened the way a user reaches them: ``Home.py`` is the entry point and the test
switches to the page, so links between pages resolve as they do under ``streamlit run``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from ser_lib.config import EMOTIONS
from ser_lib.corpora import find_corpora
from ser_lib.evaluation import evaluate_predictions

ROOT = Path(__file__).resolve().parent.parent
PAGES = (
    "Home.py",
    "pages/1_Datasets.py",
    "pages/2_Augmentation.py",
    "pages/3_Training.py",
    "pages/4_Evaluation.py",
    "pages/5_Predict.py",
)
TIMEOUT = 120


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """A fake tree of the four corpora: 2 speakers each, 2 files per emotion (112 clips)."""
    from conftest import build_fake_corpus

    return build_fake_corpus(tmp_path_factory.mktemp("corpora") / "data", speakers=2, per_emotion=2)


@pytest.fixture(scope="module")
def manifest(corpus_dir) -> pd.DataFrame:
    return find_corpora(corpus_dir).manifest


def _fake_evaluation(manifest: pd.DataFrame, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(len(EMOTIONS)), size=len(manifest))
    preds = manifest[["path", "corpus", "speaker", "emotion"]].copy()
    preds["predicted"] = [EMOTIONS[i] for i in p.argmax(axis=1)]
    preds["confidence"] = p.max(axis=1)
    for i, e in enumerate(EMOTIONS):
        preds[f"p_{e}"] = p[:, i]
    with warnings.catch_warnings():  # random answers predict emotions a corpus lacks
        warnings.simplefilter("ignore", UserWarning)
        return evaluate_predictions(preds, list(EMOTIONS)).to_json()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, manifest) -> Path:
    """``tiny`` and ``other``: untrained notebook CNNs with saved evaluations on the fake tree."""
    from ser_lib.bundle import ModelBundle
    from ser_lib.frontends import NotebookFrontEnd
    from ser_lib.models import notebook_cnn1d

    folder = tmp_path_factory.mktemp("models")
    for seed, name in enumerate(("tiny", "other")):
        ev = _fake_evaluation(manifest, seed)
        metrics = {"protocol": "speaker", "overall": ev["overall"], "per_corpus": ev["per_corpus"]}
        bundle = ModelBundle.create(
            notebook_cnn1d(num_classes=len(EMOTIONS)),
            name=name,
            model_type="notebook_cnn1d",
            labels=list(EMOTIONS),
            frontend=NotebookFrontEnd(),
            metrics=metrics,
        )
        bundle.save(folder / name, evaluation=ev)
    return folder


@pytest.fixture
def with_data(monkeypatch, corpus_dir, models_dir):
    monkeypatch.setenv("SER_DATA_DIR", str(corpus_dir))
    monkeypatch.setenv("SER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SER_MODEL", str(models_dir / "tiny"))
    return corpus_dir, models_dir


@pytest.fixture
def without_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "no-corpora-here"))
    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "no-models-here"))
    monkeypatch.setenv("SER_MODEL", str(tmp_path / "no-models-here" / "default"))
    return tmp_path


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    if page != "Home.py":
        at.switch_page(page)
    return at.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def frame(at: AppTest, has: str) -> pd.DataFrame:
    """The first table showing ``has`` as a column or row label (AppTest keeps keys only for selectable tables)."""
    for df in at.dataframe:
        value = df.value
        if has in value.columns.get_level_values(0) or has in value.index:
            return value
    raise AssertionError(f"No table with a {has!r} column or row among {len(at.dataframe)}")


INTERNALS = ("object at 0x", "UploadedFile(", "BytesIO")


def shown_text(at: AppTest) -> str:
    """Every message, caption and paragraph on the page."""
    return "\n".join(texts(x) for x in (at.error, at.warning, at.info, at.success, at.caption, at.markdown))


def assert_no_internals(at: AppTest) -> None:
    text = shown_text(at)
    for bad in INTERNALS:
        assert bad not in text, text


def no_trouble(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)


def wav_bytes(y: np.ndarray, sr: int = 16_000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt)
    return buf.getvalue()


@pytest.fixture
def clip(synth) -> bytes:
    from call_audio import speechlike  # speech to the voice-activity detector (a plain tone is "no speech found")

    return wav_bytes(speechlike(5.0))


# --- every page loads ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_with_corpora_and_model(with_data, page):
    at = open_page(page)
    no_trouble(at)
    assert at.title, f"{page} has no title"
    # the data-folder setting is in the sidebar of every page, pointing at the fixture tree
    assert at.sidebar.text_input[0].value == str(with_data[0])


@pytest.mark.parametrize("page", PAGES)
def test_page_explains_without_corpora_or_model(without_data, page):
    at = open_page(page)
    assert not at.exception, texts(at.exception)
    explained = texts(at.info)
    if page in ("pages/4_Evaluation.py", "pages/5_Predict.py"):
        assert "No trained model" in explained and "python -m ser_lib train" in explained
    else:
        assert "no-corpora-here" in explained, explained
        sources = [df.value for df in at.dataframe if "official source" in df.value]
        if page != "pages/2_Augmentation.py":  # there the sources sit in a collapsed expander
            assert sources and set(sources[0]["corpus"]) == {"RAVDESS", "TESS", "SAVEE", "CREMA-D", "URDU", "ASED", "EMOVO"}


# --- Home -----------------------------------------------------------------------------------------


def test_home_shows_counts_and_model(with_data, manifest):
    at = open_page("Home.py")
    counts = at.table[0].value
    assert counts.loc["all", "total"] == len(manifest)
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) == {"WA", "UA", "macro-F1"}
    assert all(v.endswith("%") for v in metrics.values())  # the same way of writing a score on every page
    assert all(m.help for m in at.metric)  # each says what it means
    assert "tiny" in texts(at.markdown)
    assert "held-out speakers of its own training run" in texts(at.caption)
    # the links to the other pages are links, not "(page not installed)"
    assert "page not installed" not in texts(at.markdown)
    assert len(at.get("page_link")) == 7


def test_home_says_where_the_shipped_models_figures_come_from(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SER_MODELS_DIR", str(ROOT / "models"))
    monkeypatch.setenv("SER_MODEL", str(ROOT / "models" / "default"))
    at = open_page("Home.py")
    assert not at.exception
    card = json.loads((ROOT / "models" / "default" / "card.json").read_text())
    sibling = card["metrics"]["source"].removeprefix("held-out run ")
    n = len(card["training"]["held_out_run"]["test_speakers"])  # 40: 22 of the four acted corpora, 18 of the others
    assert n == 40 and f"figures of {sibling} (same recipe, {n} held-out speakers), not of default itself" in texts(at.caption)


def test_data_folder_is_remembered_across_pages(with_data, tmp_path, monkeypatch):
    from conftest import build_fake_corpus

    monkeypatch.setenv("SER_DATA_ROOTS", f"{with_data[0]}{os.pathsep}{tmp_path}")  # the operator allows both
    other = build_fake_corpus(tmp_path / "other", corpora=("SAVEE",), extras=False)
    at = open_page("Home.py")
    at.sidebar.text_input[0].set_value(str(other)).run()
    assert at.session_state["shared_data_dir"] == str(other)
    at.switch_page("pages/1_Datasets.py").run()
    no_trouble(at)
    assert at.sidebar.text_input[0].value == str(other)
    assert {m.label: m.value for m in at.metric}["Files"] == "7"


# --- Datasets -------------------------------------------------------------------------------------


def test_datasets_overview(with_data, manifest):
    at = open_page("pages/1_Datasets.py")
    no_trouble(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Files"] == f"{len(manifest):,}"
    assert metrics["Speakers"] == str(manifest["speaker"].nunique())
    # the corpora table: one row per corpus, with what it labels (CREMA-D has no calm nor surprise)
    table = next(d.value for d in at.dataframe if "not labelled" in d.value.columns).set_index("corpus")
    assert sorted(table.index) == sorted(manifest["corpus"].unique())
    assert table.loc["CREMA-D", "not labelled"] == "calm, surprise" and table.loc["RAVDESS", "not labelled"] == "-"
    assert table.loc["SAVEE", "language"] == "English (British)"
    assert table["files"].sum() == len(manifest)
    at.radio(key="datasets_norm").set_value("normalised").run()
    no_trouble(at)
    assert len(at.get("plotly_chart")) == 3


def test_datasets_filter_and_choose_a_file(with_data, manifest):
    at = open_page("pages/1_Datasets.py")
    at.segmented_control(key="datasets_view").set_value("Files").run()
    assert f"{len(manifest)} of {len(manifest)} files" in texts(at.caption)
    at.multiselect(key="datasets_f_corpus").set_value(["SAVEE"])
    at.multiselect(key="datasets_f_emotion").set_value(["angry"]).run()
    expected = manifest[(manifest["corpus"] == "SAVEE") & (manifest["emotion"] == "angry")]
    assert f"{len(expected)} of {len(manifest)} files" in texts(at.caption)
    options = at.selectbox(key="datasets_files_select").options
    assert len(options) == len(expected) and all("_a0" in o for o in options)
    at.selectbox(key="datasets_files_select").set_value(options[-1]).run()
    no_trouble(at)
    assert at.subheader[0].value == options[-1]
    assert len(at.get("audio")) == 1
    assert len(at.get("plotly_chart")) == 3  # waveform, spectrogram, features
    at.segmented_control(key="datasets_features").set_value("model").run()
    no_trouble(at)
    assert len(at.get("plotly_chart")) == 3


def test_datasets_reads_raw_downloads(monkeypatch, raw_sample, tmp_path):
    monkeypatch.setenv("SER_DATA_DIR", str(raw_sample))
    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("SER_MODEL", str(tmp_path / "none"))
    at = open_page("pages/1_Datasets.py")
    at.segmented_control(key="datasets_view").set_value("Files").run()
    at.text_input(key="datasets_f_text").set_value("YAF_germ_angry").run()  # a TESS '.wav' that is AIFF inside
    no_trouble(at)
    assert at.subheader[0].value.endswith("YAF_germ_angry.wav")
    assert len(at.get("audio")) == 1


# --- Augmentation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["noise", "shift", "stretch", "pitch", "telephone"])
def test_augmentation_preview(with_data, name):
    at = open_page("pages/2_Augmentation.py")
    at.selectbox(key="augment_name").set_value(name)
    at.slider(key="augment_strength").set_value(0.8).run()
    no_trouble(at)
    assert len(at.get("audio")) == 2  # before and after
    assert len(at.get("plotly_chart")) == 4
    assert "strength 0.80" in texts(at.markdown)


def test_augmentation_rejects_a_bad_upload(with_data):
    at = open_page("pages/2_Augmentation.py")
    at.segmented_control(key="augment_source").set_value("upload").run()
    at.file_uploader(key="augment_upload").upload("notes.wav", b"not audio at all", "audio/wav").run()
    assert not at.exception
    assert "Could not read notes.wav" in texts(at.error)
    assert_no_internals(at)  # the message names the file as uploaded, not Streamlit's UploadedFile(...)


def test_augmentation_waveforms_share_one_scale(with_data):
    at = open_page("pages/2_Augmentation.py")
    at.selectbox(key="augment_name").set_value("noise")
    at.slider(key="augment_strength").set_value(1.0).run()
    no_trouble(at)
    waves = [json.loads(c.proto.spec)["layout"]["yaxis"]["range"] for c in at.get("plotly_chart")[::2]]
    assert len(waves) == 2 and waves[0] == waves[1]
    assert "share one amplitude scale" in texts(at.caption)


# --- Training -------------------------------------------------------------------------------------


def _wait(at: AppTest, key: str, seconds: float = 240) -> None:
    job = at.session_state[key]
    start = time.monotonic()
    while not job.snapshot().finished:
        assert time.monotonic() - start < seconds, f"{key} did not finish in {seconds} s"
        time.sleep(0.5)
        at.run()  # what the page's polling fragment does in the browser


def train_one_epoch(at: AppTest, name: str) -> AppTest:
    """Train the notebook's model for one epoch without augmentation, saved as ``name``, with the
    other settings as the page holds them; waits for the job and shows its result."""
    at.selectbox(key="training_model").set_value("notebook_cnn1d")
    at.number_input(key="training_epochs").set_value(1)
    at.toggle(key="training_augment").set_value(False)
    at.text_input(key="training_name").set_value(name)
    at.form_submit_button[0].click().run()
    no_trouble(at)
    _wait(at, "training_job")
    at.run()
    no_trouble(at)
    return at


@pytest.mark.slow
def test_training_one_epoch_saves_a_bundle(with_data):
    from ser_lib.bundle import ModelBundle

    models = with_data[1]
    at = train_one_epoch(open_page("pages/3_Training.py"), "one-epoch")
    assert "one-epoch" in texts(at.success)
    bundle = ModelBundle.load(models / "one-epoch")
    assert bundle.card["training"]["epochs_run"] == 1
    assert bundle.card["training"]["split"] == "speaker"
    assert (models / "one-epoch" / "evaluation.json").is_file()
    assert frame(at, "macro_f1").loc["overall", "n"] > 0  # the held-out summary is shown


@pytest.fixture
def one_speaker_each(monkeypatch, tmp_path, models_dir):
    """A data folder where every corpus has one speaker: no split can hold a speaker out."""
    from conftest import build_fake_corpus

    data = build_fake_corpus(tmp_path / "one-speaker", speakers=1, per_emotion=1, extras=False)
    monkeypatch.setenv("SER_DATA_DIR", str(data))
    monkeypatch.setenv("SER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SER_MODEL", str(models_dir / "tiny"))
    return data


def test_training_says_what_the_split_holds_out(with_data):
    at = open_page("pages/3_Training.py")
    no_trouble(at)
    assert not at.warning
    held = texts(at.caption)
    assert "Held out for testing: 4 speakers" in held and "never heard in training" in held
    at.multiselect(key="training_corpora").set_value(["SAVEE"]).run()
    assert "Held out for testing: 1 speaker, " in texts(at.caption)


def test_training_can_leave_one_corpus_out_and_says_so(with_data):
    """Leave one corpus out: the page names the corpus and what it holds out, and the model it trains
    is tested on that corpus only, with the loss masking and the sampling chosen on the page."""
    from ser_lib.bundle import ModelBundle

    models = with_data[1]
    at = open_page("pages/3_Training.py")
    at.radio(key="training_split").set_value("corpus").run()
    no_trouble(at)
    at.selectbox(key="training_holdout").set_value("SAVEE").run()
    held = texts(at.caption)
    assert "Held out for testing: all of SAVEE, " in held and "a corpus never heard in training" in held
    at.toggle(key="training_balance").set_value(False)
    train_one_epoch(at, "no-savee")
    training = ModelBundle.load(models / "no-savee").card["training"]
    cfg = training["config"]
    assert (cfg["split"], cfg["holdout_corpus"], cfg["mask_loss"], cfg["balance"]) == ("corpus", "SAVEE", True, False)
    assert training["test_speakers"] and all(s.startswith("SAVEE_") for s in training["test_speakers"])
    assert not any(s.startswith("SAVEE_") for s in training["train_speakers"])
    assert set(frame(at, "macro_f1").index) == {"SAVEE", "overall"}  # the held-out figures: SAVEE only
    at.multiselect(key="training_corpora").set_value(["SAVEE"]).run()
    assert "needs at least two corpora" in texts(at.warning)


def test_a_split_that_cannot_hold_out_a_speaker_warns_before_training(one_speaker_each):
    at = open_page("pages/3_Training.py")
    assert not at.exception, texts(at.exception)
    warning = texts(at.warning)
    assert "leaves no file for testing" in warning and "without a held-out evaluation" in warning
    assert "RAVDESS has one speaker (RAVDESS_01)" in warning


@pytest.mark.slow
def test_training_without_a_test_set_says_so_on_the_page_and_the_card(one_speaker_each, models_dir):
    from ser_lib.bundle import ModelBundle

    at = open_page("pages/3_Training.py")
    at.multiselect(key="training_corpora").set_value(["SAVEE"]).run()
    at.selectbox(key="training_model").set_value("notebook_cnn1d")
    at.number_input(key="training_epochs").set_value(1)
    at.toggle(key="training_augment").set_value(False)
    at.text_input(key="training_name").set_value("no-test-set")
    at.form_submit_button[0].click().run()
    _wait(at, "training_job")
    at.run()
    no_trouble(at)
    assert "no held-out evaluation" in texts(at.warning)
    card = ModelBundle.load(models_dir / "no-test-set").card
    assert card["training"]["held_out_evaluation"] is False
    assert card["metrics"]["held_out"] is False and "leaves no file for testing" in card["metrics"]["note"]
    shutil.rmtree(models_dir / "no-test-set")


def test_training_refuses_to_overwrite_without_asking(with_data):
    at = open_page("pages/3_Training.py")
    at.text_input(key="training_name").set_value("tiny")  # exists
    at.form_submit_button[0].click().run()
    assert "already holds" in texts(at.error) and "overwrite" in texts(at.error)
    assert "training_job" not in at.session_state


@pytest.mark.slow
def test_training_cancel(with_data):
    at = open_page("pages/3_Training.py")
    at.selectbox(key="training_model").set_value("notebook_cnn1d")
    at.number_input(key="training_epochs").set_value(200)
    at.toggle(key="training_augment").set_value(False)
    at.text_input(key="training_name").set_value("cancelled")
    at.form_submit_button[0].click().run()
    at.session_state["training_job"].cancel()
    _wait(at, "training_job")
    at.run()
    no_trouble(at)
    assert "cancel" in texts(at.warning).lower()
    assert not (with_data[1] / "cancelled").exists()
    (bar,) = at.get("progress")  # the bar stops where the run stopped: never "finished" at 100 %
    assert bar.proto.text.startswith("cancelled") and "finished" not in bar.proto.text and bar.proto.value < 100


# --- Evaluation -----------------------------------------------------------------------------------


def test_evaluation_one_bundle_and_filters(with_data, models_dir):
    saved = json.loads((models_dir / "tiny" / "evaluation.json").read_text())
    at = open_page("pages/4_Evaluation.py")
    no_trouble(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["UA"] == f"{100 * saved['overall']['UA']:.1f}%"
    assert {m.label for m in at.metric if m.help} == {"WA", "UA", "macro-F1", "clips"}  # a tooltip on each
    report = frame(at, "macro avg")
    assert {"macro avg", "weighted avg"} <= set(report.index)
    n = len(saved["predictions"])
    wrong = sum(p["emotion"] != p["predicted"] for p in saved["predictions"])
    at.toggle(key="evaluation_f_wrong").set_value(True).run()
    assert f"{wrong} of {n} files" in texts(at.caption)
    at.multiselect(key="evaluation_f_corpus").set_value(["TESS"]).run()
    tess_wrong = sum(p["emotion"] != p["predicted"] and p["corpus"] == "TESS" for p in saved["predictions"])
    assert f"{tess_wrong} of {n} files" in texts(at.caption)
    at.slider(key="evaluation_f_conf").set_value(0.3).run()
    no_trouble(at)
    low = sum(p["emotion"] != p["predicted"] and p["corpus"] == "TESS" and p["confidence"] <= 0.3 for p in saved["predictions"])
    assert f"{low} of {n} files" in texts(at.caption)


def test_evaluation_opens_with_a_summary_in_plain_words(with_data, models_dir):
    saved = json.loads((models_dir / "tiny" / "evaluation.json").read_text())
    at = open_page("pages/4_Evaluation.py")
    no_trouble(at)
    paragraphs = [m.value for m in at.markdown]
    first = paragraphs.index("#### In plain words")
    summary = paragraphs[first + 1]
    n = len(saved["predictions"])
    assert f"names the right emotion in **{100 * saved['overall']['WA']:.1f}%** of {n:,} clips" in summary
    assert "guessing among 8 emotions would get **12.5%**" in summary
    assert paragraphs[first + 2].startswith("Per corpus (UA): CREMA-D **")
    assert any(p.startswith("**tiny** · figures on held-out speakers of its own training run") for p in paragraphs)


def test_evaluation_says_where_the_shipped_models_figures_come_from(monkeypatch, tmp_path):
    """default was trained on every speaker: its figures are a sibling's held-out run, and the page says so."""
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SER_MODELS_DIR", str(ROOT / "models"))
    monkeypatch.setenv("SER_MODEL", str(ROOT / "models" / "default"))
    card = json.loads((ROOT / "models" / "default" / "card.json").read_text())
    sibling = card["metrics"]["source"].removeprefix("held-out run ")
    run = card["training"]["held_out_run"]
    at = open_page("pages/4_Evaluation.py")
    assert not at.exception, texts(at.exception)
    text = texts(at.markdown)
    assert f"**default** · figures of {sibling} (same recipe, {len(run['test_speakers'])} held-out speakers)" in text
    assert "saved with the model (held-out speakers)" not in text  # the old, wrong label
    assert f"was trained on {len(card['training']['train_speakers'])} speakers with no test set" in text
    assert f"default heard all {len(run['test_speakers'])} of those speakers in training" in text
    assert "**default's recipe** (measured on encoder-head-pitch-heldout" in text
    assert "The notebook's model (notebook-cnn1d-heldout) gets" in text and "on the same speakers" in text
    speakers = next(df.value for df in at.dataframe if "held out (test)" in df.value)
    own = speakers[speakers["run"] == "default"].set_index("corpus")
    theirs = speakers[speakers["run"].str.startswith(sibling)].set_index("corpus")
    assert set(own["held out (test)"]) == {"none"}
    assert theirs.loc["RAVDESS", "held out (test)"] == "4: " + ", ".join(
        s.split("_")[1] for s in run["test_speakers"] if s.startswith("RAVDESS_")
    )
    assert theirs.loc["SAVEE", "trained on"] == "2: DC, JE"


def test_evaluation_plays_the_chosen_clip(with_data):
    at = open_page("pages/4_Evaluation.py")
    options = at.selectbox(key="evaluation_files_select").options
    at.selectbox(key="evaluation_files_select").set_value(options[3]).run()
    no_trouble(at)
    assert len(at.get("audio")) == 1
    assert Path(options[3]).name in texts(at.markdown)


def test_evaluation_compares_two_bundles(with_data, models_dir):
    at = open_page("pages/4_Evaluation.py")
    at.multiselect(key="evaluation_bundles").set_value([str(models_dir / "tiny"), str(models_dir / "other")]).run()
    no_trouble(at)
    table = frame(at, "Δ")
    assert {"tiny", "other", "Δ"} <= set(table.columns.get_level_values(0))
    assert len([m for m in at.metric if m.label == "UA"]) == 2
    assert "Δ is the second model minus the first, in percentage points" in texts(at.caption)
    assert any(m.value.startswith("On UA, **other** is **") for m in at.markdown)


def test_evaluation_works_from_saved_results_without_corpora(monkeypatch, tmp_path, models_dir):
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("SER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SER_MODEL", str(models_dir / "tiny"))
    at = open_page("pages/4_Evaluation.py")
    assert not at.exception
    assert {m.label for m in at.metric} >= {"WA", "UA", "macro-F1"}
    assert frame(at, "macro_f1").loc["overall", "n"] > 0


def test_evaluation_runs_on_the_data_folder(with_data, models_dir):
    at = open_page("pages/4_Evaluation.py")
    at.multiselect(key="evaluation_corpora").set_value(["SAVEE"])
    at.button(key="evaluation_run_tiny").click().run()
    job = at.session_state["evaluation_jobs"][str(models_dir / "tiny")]
    job.join(240)
    at.run()
    no_trouble(at)
    assert "evaluated now on the data folder (2 speakers)" in texts(at.markdown)
    assert {m.label: m.value for m in at.metric}["clips"] == "28"
    # and back to the figures saved with the model
    at.segmented_control(key="evaluation_show_tiny").set_value("saved with the model").run()
    no_trouble(at)
    saved = json.loads((models_dir / "tiny" / "evaluation.json").read_text())
    assert {m.label: m.value for m in at.metric}["clips"] == f"{len(saved['predictions']):,}"
    assert "held-out speakers of its own training run" in texts(at.markdown)


def test_evaluation_shows_benchmarks(with_data, monkeypatch, tmp_path):
    rows = [
        {"model": m, "protocol": "speaker", "condition": c, "corpus": k, "WA": 0.5, "UA": 0.4, "macro_f1": 0.3}
        for m in ("notebook_cnn1d", "encoder_head")
        for c in ("clean", "telephone")
        for k in ("RAVDESS", "overall")
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(rows))
    monkeypatch.setattr("ser_lib.app.model_view.BENCHMARK_RESULTS", path)
    at = open_page("pages/4_Evaluation.py")
    no_trouble(at)
    assert len(frame(at, "condition")) == len(rows)


def test_evaluation_shows_figures_beyond_the_training_corpora(monkeypatch, tmp_path, models_dir, corpus_dir):
    """Cross-corpus figures from the cards: the table and the chart's bars are the cards' numbers."""
    import shutil

    from ser_lib.cards import read_card
    from ser_lib.io import atomic_write_text, dumps_json

    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    rows = {
        "tiny": [("CREMA-D", "held-out speakers", 0.83), ("URDU", "corpus unseen", 0.36)],
        "other": [("CREMA-D", "held-out speakers", 0.80), ("URDU", "corpus left out", 0.52)],
    }
    for name, entries in rows.items():
        card = read_card(folder / name)
        card["metrics"]["cross_corpus"] = {
            "rows": [{"corpus": c, "protocol": p, "UA": ua, "WA": ua, "macro_f1": ua, "n": 100} for c, p, ua in entries]
        }
        atomic_write_text(folder / name / "card.json", dumps_json(card))
    monkeypatch.setenv("SER_DATA_DIR", str(corpus_dir))
    monkeypatch.setenv("SER_MODELS_DIR", str(folder))
    monkeypatch.setenv("SER_MODEL", str(folder / "tiny"))
    at = open_page("pages/4_Evaluation.py")
    no_trouble(at)
    assert "Beyond the training corpora (four classes)" in texts(at.subheader)
    table = next(d.value for d in at.dataframe if "protocol" in d.value.columns and "condition" not in d.value.columns)
    got = {(r.model, r.corpus, r.protocol): r.UA for r in table.itertuples()}
    assert got == {
        ("tiny", "CREMA-D", "held-out speakers"): 83.0,
        ("other", "CREMA-D", "held-out speakers"): 80.0,
        ("other", "URDU", "corpus left out"): 52.0,
        ("tiny", "URDU", "corpus unseen"): 36.0,
    }
    chart = next(c for c in at.get("plotly_chart") if "UA per corpus" in c.proto.spec)
    import base64

    def values(v):  # plotly's JSON packs numeric arrays as base64 ``bdata``
        if isinstance(v, dict) and "bdata" in v:
            return tuple(np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float).round(4))
        return tuple(v)

    bars = [t for t in json.loads(chart.proto.spec)["data"] if t["type"] == "bar"]
    assert sorted((t["name"], tuple(t["x"]), values(t["y"])) for t in bars) == [
        ("other", ("CREMA-D",), (0.8,)),
        ("other", ("URDU",), (0.52,)),
        ("tiny", ("CREMA-D",), (0.83,)),
        ("tiny", ("URDU",), (0.36,)),
    ]


# --- Predict --------------------------------------------------------------------------------------


def test_predict_one_upload(with_data, clip):
    at = open_page("pages/5_Predict.py")
    at.file_uploader(key="predict_uploads").upload("voice.wav", clip, "audio/wav").run()
    no_trouble(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Emotion"] in EMOTIONS
    assert metrics["Length"] == "5.0 s"
    assert "tiny" in texts(at.caption)  # which model answered
    assert len(at.get("plotly_chart")) == 3  # probabilities, valence/arousal, waveform


def test_predict_recording(with_data, clip):
    at = open_page("pages/5_Predict.py")
    at.audio_input(key="predict_recording").upload("rec.wav", clip).run()
    no_trouble(at)
    assert {m.label: m.value for m in at.metric}["Emotion"] in EMOTIONS


def test_predict_several_files_give_a_table(with_data, clip, synth):
    from call_audio import speechlike
    from ser_lib.audio import resample

    other = wav_bytes(resample(speechlike(2.0, style="angry"), orig_sr=16_000, target_sr=22_050), sr=22_050, fmt="FLAC")
    at = open_page("pages/5_Predict.py")
    at.file_uploader(key="predict_uploads").set_value([("a.wav", clip, "audio/wav"), ("b.flac", other, "audio/flac")]).run()
    no_trouble(at)
    table = frame(at, "confidence")
    assert list(table["file"]) == ["a.wav", "b.flac"]
    assert list(table.columns[:4]) == ["file", "emotion", "confidence", "seconds"]
    assert table["emotion"].isin(EMOTIONS).all()
    assert np.allclose(table[[f"p_{e}" for e in EMOTIONS]].sum(axis=1), 1.0, atol=1e-4)
    assert at.get("download_button")
    assert "2 of 2 files judged." in texts(at.caption)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("notes.wav", b"these are my notes, not audio\n" * 20, "Could not read notes.wav"),
        ("empty.wav", b"", "empty"),
        ("blip.wav", wav_bytes(np.full(800, 0.3, np.float32)), "lasts 0.050 s"),
        ("corrupt.wav", b"RIFF\xff\xff\xff\x7fWAVEfmt " + bytes(range(256)) * 4, "corrupt.wav"),
        ("huge.wav", b"RIFF" + bytes(26 * 1024 * 1024), "MB limit"),
    ],
)
def test_predict_bad_uploads_get_a_clear_error(with_data, clip, name, data, message):
    at = open_page("pages/5_Predict.py")
    at.file_uploader(key="predict_uploads").set_value([(name, data, "audio/wav"), ("good.wav", clip, "audio/wav")]).run()
    assert not at.exception, texts(at.exception)
    assert message in texts(at.error), texts(at.error)
    assert_no_internals(at)
    # the good clip is still judged; the table shows judged clips only, so no cell is empty ("None")
    table = frame(at, "confidence")
    assert list(table["file"]) == ["good.wav"] and table.iloc[0]["emotion"] in EMOTIONS
    assert not table.isna().any().any()
    assert "1 of 2 files judged; 1 could not be (the messages above say why)." in texts(at.caption)


def test_predict_points_long_clips_to_the_call_timeline(with_data):
    long = wav_bytes(0.1 * np.sin(np.arange(8_000 * 61) / 8.0).astype(np.float32), sr=8_000)
    at = open_page("pages/5_Predict.py")
    at.file_uploader(key="predict_uploads").upload("call.wav", long, "audio/wav").run()
    assert not at.exception and not at.error
    assert "Call timeline" in texts(at.warning) and "61 s" in texts(at.warning)
