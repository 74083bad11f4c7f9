"""ser_lib.corpora: file-name parsing, the four loaders, find_corpora, duplicates, skipped files."""

from __future__ import annotations

import logging
import shutil

import pandas as pd
import pytest

from ser_lib.config import EMOTIONS
from ser_lib.corpora import (
    MANIFEST_COLUMNS,
    emotion_counts,
    find_corpora,
    load_ased,
    load_crema_d,
    load_emovo,
    load_ravdess,
    load_savee,
    load_tess,
    load_urdu,
    parse_filename,
    scan_folder,
)
from ser_lib.errors import CorpusError

# --- parsing file names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        (
            "Actor_01/03-01-05-02-01-02-01.wav",
            dict(
                corpus="RAVDESS", speaker="RAVDESS_01", gender="male", emotion="angry", intensity="strong", text_id="statement01"
            ),
        ),
        ("Actor_12/03-01-08-01-02-01-12.flac", dict(speaker="RAVDESS_12", gender="female", emotion="surprise")),
        (
            "YAF_pleasant_surprised/YAF_bite_ps.wav",
            dict(corpus="TESS", speaker="TESS_YAF", emotion="surprise", code="ps", text_id="bite"),
        ),
        ("OAF_neutral/OA_bite_neutral.wav", dict(corpus="TESS", speaker="TESS_OAF", emotion="neutral")),
        ("DC_sa03.wav", dict(corpus="SAVEE", speaker="SAVEE_DC", emotion="sad", code="sa")),
        ("ALL/JE_su03.opus", dict(corpus="SAVEE", speaker="SAVEE_JE", emotion="surprise", code="su")),
        ("JK/a01.wav", dict(corpus="SAVEE", speaker="SAVEE_JK", emotion="angry")),
        (
            "AudioWAV/1001_DFA_ANG_XX.wav",
            dict(corpus="CREMA-D", speaker="CREMA-D_1001", emotion="angry", intensity="unspecified", text_id="DFA"),
        ),
        ("1091_IEO_FEA_HI.wav", dict(emotion="fear", intensity="high")),
        (
            "Angry/SM2_F27_A049.wav",
            dict(corpus="URDU", speaker="URDU_SM2", gender="male", emotion="angry", intensity="natural", text_id="F27"),
        ),
        ("Sad/SF10_F3_S003.opus", dict(corpus="URDU", speaker="URDU_SF10", gender="female", emotion="sad")),
        (
            "05Angry/a5-03-01-02-50.wav",
            dict(corpus="ASED", speaker="ASED_50", gender="male", emotion="angry", text_id="sentence03"),
        ),
        ("04Sad/S4-04-02-01-29.opus", dict(corpus="ASED", speaker="ASED_29", gender="female", emotion="sad")),
        ("02Fearful/f2-01-01-01-07.wav", dict(corpus="ASED", emotion="fear", code="f2")),
        ("f1/rab-f1-b1.wav", dict(corpus="EMOVO", speaker="EMOVO_f1", gender="female", emotion="angry")),
        ("m3/gio-m3-l4.wav", dict(corpus="EMOVO", speaker="EMOVO_m3", gender="male", emotion="happy")),
        ("m3/sor-m3-n5.wav", dict(corpus="EMOVO", emotion="surprise", code="sor")),
    ],
)
def test_parse_filename(path, expected):
    row = parse_filename(path)
    assert row is not None
    assert {k: row[k] for k in expected} == expected


@pytest.mark.parametrize(
    "path",
    [
        "notes.wav",
        "Actor_01/03-02-05-01-01-01-01.wav",
        "Actor_01/03-01-09-01-01-01-01.wav",
        "XY_a01.wav",
        "a01.wav",
        "1001_DFA_XXX_XX.wav",
        "OAF_back_bored.wav",
        # URDU with an unknown emotion letter, ASED whose letter and number disagree, EMOVO's unknown code
        "SM1_F10_X010.wav",
        "h1-01-01-01-01.wav",
        "a5-01-01-03-01.wav",
        "ans-f1-b1.wav",
        "rab-x1-b1.wav",
    ],
)
def test_parse_filename_rejects(path):
    assert parse_filename(path) is None


# --- a fake tree --------------------------------------------------------------------------------


def test_find_corpora_on_fake_tree(fake_corpus, caplog):
    root = fake_corpus()
    with caplog.at_level(logging.WARNING, logger="ser_lib.corpora"):
        scan = find_corpora(root)
    m = scan.manifest
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    assert m["corpus"].value_counts().to_dict() == {"RAVDESS": 8, "TESS": 7, "SAVEE": 7, "CREMA-D": 6}
    assert set(m["emotion"]) == set(EMOTIONS)
    assert m["duration"].between(1.0, 2.0).all()
    # README.txt and .DS_Store are ignored silently; notes.wav is audio-named but matches no corpus
    assert [p.rsplit("/", 1)[-1] for p, _ in scan.skipped] == ["notes.wav"]
    assert "Skipped 1 audio file(s)" in caplog.text and "notes.wav" in caplog.text


def test_tess_mixed_case_folders_and_ps(fake_corpus):
    m = load_tess(fake_corpus(corpora=("TESS",), speakers=2))
    assert len(m) == 14 and set(m["speaker"]) == {"TESS_OAF", "TESS_YAF"}
    ps = m[m["code"] == "ps"]
    assert set(ps["emotion"]) == {"surprise"} and len(ps) == 2  # exactly one label per file
    assert any("OAF_Pleasant_surprise" in p for p in ps["path"])


def test_savee_flat_and_nested(fake_corpus):
    m = load_savee(fake_corpus(corpora=("SAVEE",), speakers=2, per_emotion=3))
    assert m.groupby("speaker").size().to_dict() == {"SAVEE_DC": 21, "SAVEE_JE": 21}
    assert m.loc[m["code"] == "sa", "emotion"].unique().tolist() == ["sad"]
    assert m.loc[m["code"] == "su", "emotion"].unique().tolist() == ["surprise"]


def test_parameterised_tree_for_training(fake_corpus):
    scan = find_corpora(fake_corpus(speakers=3, per_emotion=2, extras=False), durations=False)
    assert scan.skipped == []
    speakers = scan.manifest.groupby("corpus")["speaker"].nunique().to_dict()
    assert speakers == {"RAVDESS": 3, "TESS": 2, "SAVEE": 3, "CREMA-D": 3}
    assert len(scan.manifest) == 3 * 8 * 2 + 2 * 7 * 2 + 3 * 7 * 2 + 3 * 6 * 2
    assert scan.manifest["duration"].isna().all()


def test_duplicates_dropped(fake_corpus, tmp_path):
    root = fake_corpus(corpora=("RAVDESS", "SAVEE"), extras=False)
    wav = next((root / "ravdess" / "Actor_01").glob("*.wav"))
    shutil.copy(wav, wav.with_suffix(".flac"))  # a converted copy beside the download
    savee = root / "savee" / "DC_a01.wav"
    (root / "converted").mkdir()
    shutil.copy(savee, root / "converted" / "DC_a01.opus")  # a small side folder with one copy
    scan = scan_folder(root)
    m = scan.manifest
    assert m["corpus"].value_counts().to_dict() == {"RAVDESS": 8, "SAVEE": 7}
    kept = {p.rsplit("/", 1)[-1] for p in m["path"]}
    dropped = {p.rsplit("/", 1)[-1]: why for p, why in scan.skipped}
    assert (wav.name in kept) != (wav.with_suffix(".flac").name in kept)  # one copy of the recording
    assert set(dropped) == {"DC_a01.opus", ({wav.name, wav.with_suffix(".flac").name} - kept).pop()}
    assert all(why.startswith("duplicate of ") for why in dropped.values())
    # the copy in the folder holding the whole corpus wins over a side folder
    assert str(savee) in set(m["path"])


def test_one_loader_per_corpus(fake_corpus):
    root = fake_corpus()
    assert set(load_ravdess(root)["corpus"]) == {"RAVDESS"}
    assert set(load_crema_d(root)["emotion"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad"}
    with pytest.raises(CorpusError, match=r"No SAVEE files under .*: expected DC_a01\.wav"):
        load_savee(root / "ravdess")


def test_crema_genders_from_demographics(fake_corpus):
    root = fake_corpus(corpora=("CREMA-D",), speakers=2)
    (root / "crema-d" / "VideoDemographics.csv").write_text("ActorID,Age,Sex\n1001,51,Male\n1002,21,Female\n")
    m = load_crema_d(root)
    assert m.groupby("speaker")["gender"].first().to_dict() == {"CREMA-D_1001": "male", "CREMA-D_1002": "female"}


def test_emotion_counts_table(fake_corpus):
    table = emotion_counts(find_corpora(fake_corpus(), durations=False).manifest)
    assert list(table.columns) == [*EMOTIONS, "total"]
    assert table.loc["all", "total"] == 28
    assert table.loc["CREMA-D", "calm"] == 0 and table.loc["RAVDESS", "calm"] == 1
    assert list(emotion_counts(pd.DataFrame(columns=list(MANIFEST_COLUMNS))).columns) == [*EMOTIONS, "total"]


# --- error paths --------------------------------------------------------------------------------


def test_missing_data_folder(tmp_path):
    with pytest.raises(CorpusError, match=r"Data folder .*nowhere does not exist.*SER_DATA_DIR"):
        find_corpora(tmp_path / "nowhere")


def test_file_instead_of_data_folder(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(CorpusError, match=r"is a file, not a folder"):
        find_corpora(tmp_path / "x.txt")


def test_folder_without_corpus_lists_expected_layouts(tmp_path, make_tone):
    make_tone(name="my_recording.wav")
    with pytest.raises(CorpusError, match=r"No corpus files under .*1 unrecognised") as info:
        find_corpora(tmp_path)
    for layout in (
        "Actor_NN/03-01-05-01-02-01-12.wav",
        "OAF_angry/OAF_back_angry.wav",
        "DC_a01.wav",
        "AudioWAV/1001_DFA_ANG_XX.wav",
    ):
        assert layout in str(info.value)


def test_data_dir_from_environment(fake_corpus, monkeypatch):
    monkeypatch.setenv("SER_DATA_DIR", str(fake_corpus(corpora=("SAVEE",))))
    assert len(find_corpora(durations=False).manifest) == 7


# --- the original downloads (raw-sample) --------------------------------------------------------


@pytest.fixture(scope="module")
def raw_scan(raw_sample):
    return find_corpora(raw_sample)


def test_raw_sample_counts(raw_scan):
    assert raw_scan.manifest["corpus"].value_counts().to_dict() == {"RAVDESS": 17, "SAVEE": 14, "TESS": 18, "CREMA-D": 82}
    assert raw_scan.skipped == []
    assert raw_scan.manifest["duration"].gt(1.0).all()  # AIFF-in-.wav and 96 kHz headers read too


def test_raw_sample_quirks(raw_scan):
    m = raw_scan.manifest.set_index(raw_scan.manifest["path"].str.rsplit("/", n=1).str[-1])
    assert m.loc["OA_bite_neutral.wav", "speaker"] == "TESS_OAF"
    assert m.loc["OAF_back_ps.wav", "emotion"] == "surprise"
    assert m.loc["YAF_back_ps.wav", "emotion"] == "surprise"
    assert m.loc["DC_sa01.wav", "emotion"] == "sad" and m.loc["DC_su02.wav", "emotion"] == "surprise"
    assert m.loc["03-01-02-01-01-02-01.wav", "emotion"] == "calm"
    assert set(m.loc[m["corpus"] == "TESS", "speaker"]) == {"TESS_OAF", "TESS_YAF"}


def test_new_corpora_on_a_fake_tree(tmp_path):
    """URDU, ASED and EMOVO found anywhere by file name; ASED's per-file gender settled per speaker."""
    import numpy as np
    import soundfile as sf

    y = 0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)
    names = [
        "urdu/Angry/SM1_F10_A010.wav",
        "urdu/Neutral/SF2_F1_N001.wav",
        "ased/05Angry/a5-01-01-01-21.wav",
        "ased/04Sad/s4-01-01-01-21.wav",
        "ased/03Happy/h3-01-01-02-21.wav",
        "ased/01Neutral/n1-02-01-02-07.wav",
        "emovo/f2/neu-f2-b1.wav",
        "emovo/m1/pau-m1-d2.wav",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / name, y, 16000)
    urdu, ased, emovo = load_urdu(tmp_path), load_ased(tmp_path), load_emovo(tmp_path)
    assert list(urdu["emotion"]) == ["neutral", "angry"] and set(urdu["gender"]) == {"female", "male"}
    assert set(ased["speaker"]) == {"ASED_07", "ASED_21"}
    genders = ased.groupby("speaker")["gender"].agg(set).to_dict()
    assert genders == {"ASED_07": {"male"}, "ASED_21": {"female"}}  # 2 of 3 files say female
    assert sorted(emovo["emotion"]) == ["fear", "neutral"]
    assert find_corpora(tmp_path).manifest["corpus"].value_counts().to_dict() == {"ASED": 4, "URDU": 2, "EMOVO": 2}
    with pytest.raises(CorpusError, match=r"No URDU files under .*SM1_F10_A010"):
        load_urdu(tmp_path / "emovo")


def test_shared_new_corpora(shared_corpora):
    """The three added corpora as shipped: counts, speakers and the emotions each labels."""
    from ser_lib.corpora import CORPUS_EMOTIONS

    m = find_corpora(shared_corpora, durations=False).manifest
    counts = m["corpus"].value_counts().to_dict()
    assert {k: counts.get(k) for k in ("URDU", "ASED", "EMOVO")} == {"URDU": 190, "ASED": 2474, "EMOVO": 588}
    speakers = m.groupby("corpus")["speaker"].nunique().to_dict()
    assert (speakers["URDU"], speakers["ASED"], speakers["EMOVO"]) == (19, 65, 6)
    for corpus, emotions in CORPUS_EMOTIONS.items():
        assert set(m.loc[m["corpus"] == corpus, "emotion"]) == set(emotions), corpus
    assert m.loc[m["corpus"] == "ASED"].groupby("speaker")["gender"].nunique().max() == 1
