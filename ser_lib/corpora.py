"""Corpus loaders: one per corpus, all returning one manifest schema.

Corpora are recognised by their file-name patterns, not by folder names, so users may unpack
them anywhere (``AudioWAV/``, ``ALL/``, ``audio_speech_actors_01-24/``, ...) in any audio format
(``.wav`` as downloaded, ``.opus``, ``.flac``, ``.ogg``, ``.mp3``). Loaders never download or write.

The manifest is a :class:`pandas.DataFrame` with the columns in :data:`MANIFEST_COLUMNS`.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import soundfile as sf

from .config import AUDIO_EXTENSIONS, EMOTIONS, data_dir
from .errors import CorpusError

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "corpus",
    "speaker",
    "gender",
    "emotion",
    "code",
    "intensity",
    "text_id",
    "duration",
)

#: The four acted English corpora the product began with (the four-corpus recipe trains on these).
ACTED_ENGLISH: tuple[str, ...] = ("RAVDESS", "SAVEE", "TESS", "CREMA-D")
#: Natural and non-English speech, added for multi-corpus and cross-lingual training.
OTHER_CORPORA: tuple[str, ...] = ("URDU", "ASED", "EMOVO")
#: Every corpus recognised by file name.
CORPORA: tuple[str, ...] = ACTED_ENGLISH + OTHER_CORPORA

#: What a user should have, per corpus: shown in errors and in the README.
EXPECTED_LAYOUTS: dict[str, str] = {
    "RAVDESS": "Actor_NN/03-01-05-01-02-01-12.wav (audio-only speech files, 03-01-EE-II-SS-RR-AA)",
    "TESS": "OAF_angry/OAF_back_angry.wav (SPEAKER_word_emotion)",
    "SAVEE": "DC_a01.wav (SPEAKER_codeNN), or DC/a01.wav",
    "CREMA-D": "AudioWAV/1001_DFA_ANG_XX.wav (actor_sentence_EMOTION_level)",
    "URDU": "Angry/SM1_F10_A010.wav (speaker S+M/F+id, file number, emotion letter A/H/N/S + number)",
    "ASED": "05Angry/a5-03-01-02-50.wav (emotion letter+number n1 f2 h3 s4 a5, sentence, repetition, gender, speaker)",
    "EMOVO": "f1/rab-f1-b1.wav (neu gio tri rab pau dis sor, speaker f1-f3 m1-m3, sentence)",
}

SOURCES: dict[str, str] = {
    "RAVDESS": "https://zenodo.org/records/1188976 (Audio_Speech_Actors_01-24.zip)",
    "TESS": "https://doi.org/10.5683/SP2/E8H2MF (University of Toronto Dataverse)",
    "SAVEE": "http://kahlan.eps.surrey.ac.uk/savee/ (registration, research use)",
    "CREMA-D": "https://github.com/CheyneyComputerScience/CREMA-D (AudioWAV folder)",
    "URDU": "https://github.com/siddiquelatif/URDU-Dataset (research use only)",
    "ASED": "https://github.com/Ethio2021/ASED_V1 (Amharic; no licence stated: research use)",
    "EMOVO": "http://voice.fub.it/activities/corpora/emovo/index.html (research use)",
}

#: Language, kind of speech and licence of each corpus (shown on the Datasets page and in the README).
CORPUS_INFO: dict[str, dict[str, str]] = {
    "RAVDESS": {"language": "English (North American)", "speech": "acted", "licence": "CC BY-NC-SA 4.0"},
    "SAVEE": {"language": "English (British)", "speech": "acted", "licence": "research use"},
    "TESS": {"language": "English (Canadian)", "speech": "acted", "licence": "CC BY-NC-ND 4.0"},
    "CREMA-D": {"language": "English (American)", "speech": "acted", "licence": "ODbL / DbCL"},
    "URDU": {"language": "Urdu", "speech": "natural (talk shows)", "licence": "research use only"},
    "ASED": {"language": "Amharic", "speech": "acted at home, judged by listeners", "licence": "none stated: research use"},
    "EMOVO": {"language": "Italian", "speech": "acted", "licence": "research use"},
}

#: The emotions each corpus labels: a corpus says nothing about the others (training masks its loss
#: to these, so a corpus without calm does not teach that calm never happens).
CORPUS_EMOTIONS: dict[str, tuple[str, ...]] = {
    "RAVDESS": ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"),
    "SAVEE": ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"),
    "TESS": ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"),
    "CREMA-D": ("neutral", "happy", "sad", "angry", "fear", "disgust"),
    "URDU": ("neutral", "happy", "sad", "angry"),
    "ASED": ("neutral", "happy", "sad", "angry", "fear"),
    "EMOVO": ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"),
}

_RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_TESS_RE = re.compile(r"^(OAF|YAF|OA|YA)_([A-Za-z]+)_(angry|disgust|fear|happy|neutral|sad|ps)$", re.IGNORECASE)
_SAVEE_RE = re.compile(r"^(DC|JE|JK|KL)_(a|d|f|h|n|sa|su)(\d{2})$")
_SAVEE_BARE_RE = re.compile(r"^(a|d|f|h|n|sa|su)(\d{2})$")
_CREMA_RE = re.compile(r"^(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX|X)$")
_URDU_RE = re.compile(r"^S([MF])(\d+)_F(\d+)_([AHNS])(\d+)$", re.IGNORECASE)
# ASED: one file in the download has an upper-case emotion letter (S4-04-02-01-29).
_ASED_RE = re.compile(r"^([nfhsa])([1-5])-(\d{2})-(\d{2})-(0[12])-(\d{2,3})$", re.IGNORECASE)
_EMOVO_RE = re.compile(r"^(neu|gio|tri|rab|pau|dis|sor)-([fm][1-3])-([a-z]\d)$", re.IGNORECASE)

_RAVDESS_EMOTIONS = {f"{i + 1:02d}": e for i, e in enumerate(EMOTIONS)}
_TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "ps": "surprise",
}
_SAVEE_EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}
_CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_URDU_EMOTIONS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
_ASED_EMOTIONS = {"n1": "neutral", "f2": "fear", "h3": "happy", "s4": "sad", "a5": "angry"}
_EMOVO_EMOTIONS = {
    "neu": "neutral",
    "gio": "happy",
    "tri": "sad",
    "rab": "angry",
    "pau": "fear",
    "dis": "disgust",
    "sor": "surprise",
}
_CREMA_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified", "X": "unspecified"}


@dataclass
class CorpusScan:
    """What :func:`find_corpora` found: the manifest, and the audio files it had to skip."""

    manifest: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None

    def counts(self) -> pd.DataFrame:
        """Files per corpus (rows) and emotion (columns), with totals."""
        return emotion_counts(self.manifest)


def emotion_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Files per corpus (rows) and emotion (columns, in canonical order), with totals."""
    if manifest.empty:
        return pd.DataFrame(columns=[*EMOTIONS, "total"])
    table = pd.crosstab(manifest["corpus"], manifest["emotion"])
    table = table.reindex(columns=[e for e in EMOTIONS], fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["all"] = table.sum(axis=0)
    return table


# --- parsers: file stem (+ parent folder) -> manifest row without path/duration, or None ---------


def _parse_ravdess(stem: str, parent: str) -> dict | None:
    m = _RAVDESS_RE.match(stem)
    if not m:
        return None
    modality, channel, emo, intensity, statement, repetition, actor = m.groups()
    if modality not in ("01", "02", "03") or channel != "01" or emo not in _RAVDESS_EMOTIONS:
        return None
    return {
        "corpus": "RAVDESS",
        "speaker": f"RAVDESS_{actor}",
        "gender": "male" if int(actor) % 2 else "female",
        "emotion": _RAVDESS_EMOTIONS[emo],
        "code": emo,
        "intensity": "normal" if intensity == "01" else "strong",
        "text_id": f"statement{statement}",
    }


def _parse_tess(stem: str, parent: str) -> dict | None:
    m = _TESS_RE.match(stem)
    if not m:
        return None
    speaker, word, emo = m.groups()
    speaker = speaker.upper()
    speaker = {"OA": "OAF", "YA": "YAF"}.get(speaker, speaker)  # the real download has OA_bite_neutral
    return {
        "corpus": "TESS",
        "speaker": f"TESS_{speaker}",
        "gender": "female",
        "emotion": _TESS_EMOTIONS[emo.lower()],
        "code": emo.lower(),
        "intensity": "normal",
        "text_id": word.lower(),
    }


def _parse_savee(stem: str, parent: str) -> dict | None:
    m = _SAVEE_RE.match(stem)
    if m:
        speaker, code, num = m.groups()
    else:
        m = _SAVEE_BARE_RE.match(stem)
        if not m or parent.upper() not in ("DC", "JE", "JK", "KL"):
            return None
        (code, num), speaker = m.groups(), parent.upper()
    return {
        "corpus": "SAVEE",
        "speaker": f"SAVEE_{speaker}",
        "gender": "male",
        "emotion": _SAVEE_EMOTIONS[code],
        "code": code,
        "intensity": "normal",
        "text_id": f"{code}{num}",
    }


def _parse_crema(stem: str, parent: str) -> dict | None:
    m = _CREMA_RE.match(stem)
    if not m:
        return None
    actor, sentence, emo, level = m.groups()
    return {
        "corpus": "CREMA-D",
        "speaker": f"CREMA-D_{actor}",
        "gender": "unknown",
        "emotion": _CREMA_EMOTIONS[emo],
        "code": emo,
        "intensity": _CREMA_LEVELS[level],
        "text_id": sentence,
    }


def _parse_urdu(stem: str, parent: str) -> dict | None:
    m = _URDU_RE.match(stem)
    if not m:
        return None
    sex, speaker, number, emo, _ = m.groups()
    return {
        "corpus": "URDU",
        "speaker": f"URDU_S{sex.upper()}{int(speaker)}",
        "gender": "male" if sex.upper() == "M" else "female",
        "emotion": _URDU_EMOTIONS[emo.upper()],
        "code": emo.upper(),
        "intensity": "natural",
        "text_id": f"F{number}",
    }


def _parse_ased(stem: str, parent: str) -> dict | None:
    m = _ASED_RE.match(stem)
    if not m:
        return None
    letter, number, sentence, repetition, gender, speaker = m.groups()
    code = letter.lower() + number
    if code not in _ASED_EMOTIONS:  # the letter and the number disagree (h1): no label to trust
        return None
    return {
        "corpus": "ASED",
        "speaker": f"ASED_{int(speaker):02d}",
        "gender": "female" if gender == "01" else "male",
        "emotion": _ASED_EMOTIONS[code],
        "code": code,
        "intensity": "normal",
        "text_id": f"sentence{sentence}",
    }


def _parse_emovo(stem: str, parent: str) -> dict | None:
    m = _EMOVO_RE.match(stem)
    if not m:
        return None
    emo, speaker, sentence = (g.lower() for g in m.groups())
    return {
        "corpus": "EMOVO",
        "speaker": f"EMOVO_{speaker}",
        "gender": "female" if speaker[0] == "f" else "male",
        "emotion": _EMOVO_EMOTIONS[emo],
        "code": emo,
        "intensity": "normal",
        "text_id": sentence,
    }


_PARSERS: dict[str, Callable[[str, str], dict | None]] = {
    "RAVDESS": _parse_ravdess,
    "TESS": _parse_tess,
    "SAVEE": _parse_savee,
    "CREMA-D": _parse_crema,
    "URDU": _parse_urdu,
    "ASED": _parse_ased,
    "EMOVO": _parse_emovo,
}


def parse_filename(path: str | os.PathLike) -> dict | None:
    """The manifest fields encoded in a corpus file's name, or ``None`` if no corpus matches."""
    p = Path(path)
    for parser in _PARSERS.values():
        row = parser(p.stem, p.parent.name)
        if row is not None:
            return row
    return None


def _is_audio(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def _crema_genders(root: Path) -> dict[str, str]:
    """CREMA-D actor sexes from ``VideoDemographics.csv`` when the user has it beside the audio."""
    genders: dict[str, str] = {}
    for csv_path in root.rglob("VideoDemographics.csv"):
        try:
            with open(csv_path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    actor, sex = row.get("ActorID", ""), row.get("Sex", "")
                    if actor and sex:
                        genders[f"CREMA-D_{actor}"] = sex.strip().lower()
        except (OSError, csv.Error) as exc:
            logger.warning("Could not read %s: %s", csv_path, exc)
    return genders


def _majority_gender(manifest: pd.DataFrame, corpus: str) -> pd.DataFrame:
    """One gender per speaker: ASED's file names carry it per file, and a few files of some speakers
    disagree with the rest of their files (speaker 21: 57 female, 1 male); the majority wins."""
    rows = manifest["corpus"] == corpus
    if not rows.any():
        return manifest
    majority = manifest[rows].groupby("speaker")["gender"].agg(lambda g: g.value_counts().index[0])
    fixed = manifest.loc[rows, "speaker"].map(majority)
    changed = int((fixed != manifest.loc[rows, "gender"]).sum())
    if changed:
        logger.info("%s: %d file(s) whose gender field disagrees with their speaker's other files", corpus, changed)
        manifest.loc[rows, "gender"] = fixed
    return manifest


def _duration(path: str) -> float:
    try:
        info = sf.info(path)
        return info.frames / info.samplerate if info.samplerate else float("nan")
    except (sf.LibsndfileError, RuntimeError):
        return float("nan")


def scan_folder(root: str | os.PathLike, *, corpora: tuple[str, ...] = CORPORA, durations: bool = True) -> CorpusScan:
    """Walk ``root`` once and parse every audio file against the corpora's name patterns.

    Non-audio files (README, ``.DS_Store``, CSV) are ignored; audio files whose name matches no
    corpus are returned in ``skipped`` and logged as one warning that lists them.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise CorpusError(
            f"Data folder {root} does not exist: create it and unpack the corpora into it, "
            "or point SER_DATA_DIR (or --data) at the folder that holds them."
        )
    if not root.is_dir():
        raise CorpusError(f"Data folder {root} is a file, not a folder.")
    parsers = {name: _PARSERS[name] for name in corpora}
    rows, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not _is_audio(name):
                continue
            path = os.path.join(dirpath, name)
            stem, parent = Path(name).stem, os.path.basename(dirpath)
            for parser in parsers.values():
                row = parser(stem, parent)
                if row is not None:
                    row["path"] = path
                    rows.append(row)
                    break
            else:
                skipped.append((path, "file name matches no corpus pattern"))
    if skipped:
        listed = ", ".join(p for p, _ in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        logger.warning("Skipped %d audio file(s) whose names match no corpus: %s", len(skipped), listed)
    rows, duplicates = _drop_duplicates(rows, root)
    skipped.extend(duplicates)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    if not manifest.empty:
        genders = _crema_genders(root) if (manifest["corpus"] == "CREMA-D").any() else {}
        if genders:
            manifest["gender"] = manifest["speaker"].map(genders).fillna(manifest["gender"])
        manifest = _majority_gender(manifest, "ASED")
        if durations:
            manifest["duration"] = [_duration(p) for p in manifest["path"]]
        manifest = manifest.sort_values(["corpus", "speaker", "path"], kind="stable").reset_index(drop=True)
    manifest["duration"] = manifest["duration"].astype(float)
    return CorpusScan(manifest=manifest, skipped=skipped, root=root)


def _drop_duplicates(rows: list[dict], root: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """Keep one file per recording (corpus + speaker + name) when a folder holds several copies.

    Users often keep both the original download and a converted copy; the copy from the top-level
    folder holding more files of the corpus wins, so a small sample folder never replaces the set.
    """

    def top(path: str) -> str:
        rel = os.path.relpath(path, root)
        return rel.split(os.sep, 1)[0] if os.sep in rel else ""

    size: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["corpus"], top(row["path"]))
        size[key] = size.get(key, 0) + 1
    order = sorted(rows, key=lambda r: (-size[(r["corpus"], top(r["path"]))], r["path"]))
    kept: dict[tuple[str, str, str], dict] = {}
    duplicates: list[tuple[str, str]] = []
    for row in order:
        key = (row["corpus"], row["speaker"], Path(row["path"]).stem.lower())
        if key in kept:
            duplicates.append((row["path"], f"duplicate of {kept[key]['path']}"))
        else:
            kept[key] = row
    return list(kept.values()), duplicates


def _expected() -> str:
    return "; ".join(f"{c}: {layout}" for c, layout in EXPECTED_LAYOUTS.items())


def find_corpora(root: str | os.PathLike | None = None, *, durations: bool = True) -> CorpusScan:
    """Find every corpus under ``root`` (default ``$SER_DATA_DIR``, then ``data/``).

    Raises
    ------
    CorpusError
        If the folder is missing or holds no recognisable corpus file; the message lists the
        layouts that were expected.
    """
    folder = data_dir(root)
    scan = scan_folder(folder, durations=durations)
    if scan.manifest.empty:
        raise CorpusError(
            f"No corpus files under {folder} ({len(scan.skipped)} unrecognised audio file(s)). "
            f"Expected file names like: {_expected()}."
        )
    return scan


def _load_one(corpus: str, root: str | os.PathLike, durations: bool) -> pd.DataFrame:
    scan = scan_folder(root, corpora=(corpus,), durations=durations)
    if scan.manifest.empty:
        raise CorpusError(f"No {corpus} files under {root}: expected {EXPECTED_LAYOUTS[corpus]}.")
    return scan.manifest


def load_ravdess(root: str | os.PathLike, *, durations: bool = True) -> pd.DataFrame:
    """Manifest of the RAVDESS speech files under ``root`` (``Actor_NN/03-01-EE-II-SS-RR-AA.*``)."""
    return _load_one("RAVDESS", root, durations)


def load_tess(root: str | os.PathLike, *, durations: bool = True) -> pd.DataFrame:
    """Manifest of the TESS files under ``root`` (``OAF_angry/OAF_back_angry.*``; ``ps`` = surprise)."""
    return _load_one("TESS", root, durations)


def load_savee(root: str | os.PathLike, *, durations: bool = True) -> pd.DataFrame:
    """Manifest of the SAVEE files under ``root`` (``DC_a01.*``; ``sa`` = sad, ``su`` = surprise)."""
    return _load_one("SAVEE", root, durations)


def load_crema_d(root: str | os.PathLike, *, durations: bool = True) -> pd.DataFrame:
    """Manifest of the CREMA-D files under ``root`` (``1001_DFA_ANG_XX.*``; no calm or surprise)."""
    return _load_one("CREMA-D", root, durations)


def load_urdu(root: str | os.PathLike, *, durations: bool = True) -> pd.DataFrame:
    """Manifest of the URDU-Dataset files under ``root`` (``Angry/SM1_F10_A010.*``; 4 emotions, natural speech)."""
    return _load_one("URDU", root, durations)


def load_ased(root: str | os.PathLike, *, durations: bool = True) -> pd.DataFrame:
    """Manifest of the ASED v1 (Amharic) files under ``root`` (``05Angry/a5-03-01-02-50.*``; 5 emotions)."""
    return _load_one("ASED", root, durations)


def load_emovo(root: str | os.PathLike, *, durations: bool = True) -> pd.DataFrame:
    """Manifest of the EMOVO (Italian) files under ``root`` (``f1/rab-f1-b1.*``; 7 emotions, no calm)."""
    return _load_one("EMOVO", root, durations)
