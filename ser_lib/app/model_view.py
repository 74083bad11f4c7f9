"""What the Home, Evaluation, Predict and Training pages show about models, without Streamlit.

- Bundle summaries read from ``card.json`` / ``evaluation.json`` only, so a page can describe a
  model (and show its saved evaluation) without loading TensorFlow.
- :func:`predict_upload`: one uploaded or recorded clip, checked and judged, every failure turned
  into a message for the user.
- Filters for the per-file predictions table, the benchmark table, bundle names for saving.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..affect import valence_arousal
from ..audio import audio_info, load_audio, validate_audio
from ..bundle import CARD_FILE, EVALUATION_FILE, ONNX_FILE, BundleInfo, ModelBundle, Prediction, list_bundles, read_card
from ..config import DEFAULT_MODEL_NAME, EMOTIONS, MAX_CLIP_SECONDS, MODELS_DIR, PROJECT_ROOT, SAMPLE_RATE, default_model_path
from ..errors import BundleError, ParameterError, SERError, SilentAudioError
from ..io import check_bundle_target, holds_bundle
from .access import is_readable_path, may_replace_default

#: Largest upload the Predict page decodes, in megabytes (``.streamlit/config.toml`` allows more
#: for the call-timeline page; this is the per-clip limit).
MAX_UPLOAD_MB: int = 25
#: Formats the Predict page offers (libsndfile decodes all of them).
UPLOAD_TYPES: tuple[str, ...] = ("wav", "flac", "ogg", "opus", "mp3")
#: The benchmark table written by ``benchmarks/``: rows {model, protocol, condition, corpus, WA, UA, macro_f1}.
BENCHMARK_RESULTS: Path = PROJECT_ROOT / "benchmarks" / "results.json"
BENCHMARK_COLUMNS: tuple[str, ...] = ("model", "protocol", "condition", "corpus", "WA", "UA", "macro_f1")

if TYPE_CHECKING:  # scikit-learn (behind evaluation) costs most of a second to import: only when needed
    from ..evaluation import EvaluationResult

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def models_dir() -> Path:
    """Where bundles are listed and saved: ``$SER_MODELS_DIR`` or ``models/``."""
    env = os.environ.get("SER_MODELS_DIR")
    return Path(env).expanduser() if env else MODELS_DIR


def find_bundles(folder: str | os.PathLike | None = None) -> list[BundleInfo]:
    """Bundles under ``folder`` (default :func:`models_dir`), the active one (``$SER_MODEL``) first.

    The active bundle is added when it lives outside the folder; the same folder is never listed twice.
    """
    found = list_bundles(folder or models_dir())
    active = default_model_path()
    if (active / CARD_FILE).is_file() and not any(_same(b.path, active) for b in found):
        try:
            found.append(BundleInfo(active.name, active, read_card(active)))
        except BundleError:
            pass
    found.sort(key=lambda b: (not _same(b.path, active), b.name))
    return found


def _same(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def is_active(info: BundleInfo) -> bool:
    """Whether ``info`` is the bundle used when none is named (``$SER_MODEL`` or ``models/default``)."""
    return _same(info.path, default_model_path())


def model_mtime(path: str | os.PathLike) -> float:
    """Modification time of a bundle's ``model.onnx`` (0.0 when absent): the model cache key."""
    p = Path(path) / ONNX_FILE
    return p.stat().st_mtime if p.is_file() else 0.0


def describe_card(card: dict) -> str:
    """:meth:`ModelBundle.describe` from a card alone (no Keras)."""
    try:
        return ModelBundle(None, card).describe()
    except (SERError, KeyError, TypeError):
        return f"{card.get('name', 'model')} ({card.get('model_type', 'unknown type')})"


@dataclass
class BundleSummary:
    """Headline facts of a bundle, from its files."""

    name: str
    path: Path
    description: str
    model_type: str
    created: str
    labels: list[str]
    corpora: list[str]
    protocol: str | None
    metrics: dict = field(default_factory=dict)  # {"WA", "UA", "macro_f1", "n"} held-out, or {}
    has_evaluation: bool = False


def summarise_bundle(info: BundleInfo) -> BundleSummary:
    """What Home and Evaluation say about a bundle, read from ``card.json`` (and ``evaluation.json``)."""
    card = info.card
    metrics = (card.get("metrics") or {}).get("overall") or {}
    training = card.get("training") or {}
    return BundleSummary(
        name=info.name,
        path=info.path,
        description=describe_card(card),
        model_type=str(card.get("model_type", "?")),
        created=str(card.get("created", "")),
        labels=list(card.get("labels", [])),
        corpora=list(training.get("corpora", [])),
        protocol=(card.get("metrics") or {}).get("protocol") or training.get("split"),
        metrics={k: metrics[k] for k in ("WA", "UA", "macro_f1", "n") if k in metrics},
        has_evaluation=(Path(info.path) / EVALUATION_FILE).is_file(),
    )


def load_saved_evaluation(path: str | os.PathLike) -> EvaluationResult | None:
    """The evaluation saved in bundle folder ``path`` (``evaluation.json``), or ``None`` if there is none.

    Raises
    ------
    BundleError
        If the file exists but cannot be read as an evaluation.
    """
    file = Path(path) / EVALUATION_FILE
    if not file.is_file():
        return None
    from ..evaluation import EvaluationResult

    try:
        return EvaluationResult.from_json(json.loads(file.read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{file} is not a readable evaluation ({exc}): re-run the evaluation and save it again.") from exc


def comparison_table(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    """WA, UA and macro-F1 per corpus (rows) for each named result (column groups), side by side.

    With two results a ``Δ`` group (second minus first) is added.
    """
    parts = {}
    for name, res in results.items():
        parts[name] = res.summary_table()[["WA", "UA", "macro_f1", "n"]].astype(float)
    table = pd.concat(parts, axis=1)
    if len(results) == 2:
        a, b = list(results)
        delta = parts[b][["WA", "UA", "macro_f1"]] - parts[a][["WA", "UA", "macro_f1"]]
        table = pd.concat([table, pd.concat({"Δ": delta}, axis=1)], axis=1)
    return table


def class_report(result: EvaluationResult) -> pd.DataFrame:
    """The per-class report (precision, recall, F1, support) with macro and weighted averages
    (:func:`ser_lib.evaluation.class_report`: its macro F1 is the headline macro-F1)."""
    preds = result.predictions
    if preds.empty or "emotion" not in preds or "predicted" not in preds:
        pc = result.per_class.copy()
        return pc if not pc.empty else pd.DataFrame(columns=["precision", "recall", "f1", "support"])
    from ..evaluation import class_report as evaluation_class_report

    return evaluation_class_report(preds["emotion"], preds["predicted"])


def filter_predictions(
    predictions: pd.DataFrame,
    *,
    corpora: Iterable[str] | None = None,
    true: Iterable[str] | None = None,
    predicted: Iterable[str] | None = None,
    misclassified_only: bool = False,
    max_confidence: float | None = None,
) -> pd.DataFrame:
    """Rows of a per-file predictions table matching every filter (empty filters keep all).

    ``max_confidence`` keeps the low-confidence rows (confidence at or below it).
    """
    if predictions.empty:
        return predictions
    keep = pd.Series(True, index=predictions.index)
    for column, wanted in (("corpus", corpora), ("emotion", true), ("predicted", predicted)):
        if wanted and column in predictions:
            keep &= predictions[column].isin(list(wanted))
    if misclassified_only:
        correct = predictions["correct"] if "correct" in predictions else predictions["emotion"] == predictions["predicted"]
        keep &= ~correct.astype(bool)
    if max_confidence is not None and "confidence" in predictions:
        keep &= predictions["confidence"] <= max_confidence
    return predictions[keep]


def with_file_names(predictions: pd.DataFrame) -> pd.DataFrame:
    """The predictions with a short ``file`` column (the file's name) first, for display."""
    out = predictions.reset_index(drop=True)
    names = out["path"].map(lambda p: Path(str(p)).name) if "path" in out else pd.Series([], dtype=str)
    return out.assign(file=names)[["file", *[c for c in out.columns if c != "file"]]]


def resolve_clip(path: str, manifest: pd.DataFrame | None = None) -> str | None:
    """A playable path for a file named in saved predictions, or ``None``.

    Saved evaluations name files where the model was evaluated; if that path does not exist
    here, the file with the same name in the current data folder's ``manifest`` is used.
    """
    if path and Path(path).is_file() and is_readable_path(path):  # only audio the operator lets visitors reach
        return path
    if manifest is None or manifest.empty or not path:
        return None
    stem = Path(path).stem
    names = manifest["path"].map(lambda p: Path(p).stem)
    hits = manifest["path"][names == stem]
    return str(hits.iloc[0]) if len(hits) else None


def load_benchmarks(path: str | os.PathLike | None = None) -> pd.DataFrame | None:
    """``benchmarks/results.json`` as a table, or ``None`` when the file is absent.

    Raises
    ------
    ParameterError
        When the file exists but is not a list of rows with the expected columns.
    """
    file = Path(path) if path else BENCHMARK_RESULTS
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{file} is not valid JSON ({exc}).") from exc
    rows = data.get("rows", data) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ParameterError(f"{file} must hold a list of rows {list(BENCHMARK_COLUMNS)}, got {type(rows).__name__}")
    table = pd.DataFrame(rows)
    missing = [c for c in ("model", "corpus", "UA") if c not in table]
    if missing:
        raise ParameterError(f"{file} rows lack {missing}: expected columns {list(BENCHMARK_COLUMNS)}")
    for col in BENCHMARK_COLUMNS:
        if col not in table:
            table[col] = np.nan if col in ("WA", "UA", "macro_f1") else ""
    return table[list(BENCHMARK_COLUMNS) + [c for c in table if c not in BENCHMARK_COLUMNS]]


def bundle_folder_for(name: str, *, folder: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """The folder a new bundle called ``name`` is saved to, after checking the name.

    Raises
    ------
    ParameterError
        If the name is not a plain folder name.
    BundleError
        If the folder already holds a bundle and ``overwrite`` is False (the shipped ``default``
        is only replaced with ``overwrite=True``).
    """
    name = (name or "").strip()
    if not _NAME_RE.match(name):
        raise ParameterError(
            f"Model name {name!r} is not usable: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    target = Path(folder or models_dir()) / name
    if name == DEFAULT_MODEL_NAME and holds_bundle(target) and overwrite and not may_replace_default():
        raise BundleError(
            f"{target} is the shipped default model, and replacing it from the dashboard is switched off: choose another "
            "name (and make it the active model with SER_MODEL), retrain it with the command line, or ask whoever runs "
            "the dashboard to allow it (SER_ALLOW_DEFAULT_OVERWRITE=1)."
        )
    if name == DEFAULT_MODEL_NAME and holds_bundle(target) and not overwrite:
        raise BundleError(
            f"{target} already holds the shipped default model: choose another name, or tick 'overwrite' to replace it."
        )
    return check_bundle_target(target, overwrite=overwrite, hint="tick 'overwrite'")


# --- one uploaded clip ------------------------------------------------------------------------------


@dataclass
class ClipResult:
    """One uploaded clip's outcome: a prediction, or the reason there is none."""

    name: str
    y: np.ndarray | None = None
    sr: int = SAMPLE_RATE
    seconds: float = 0.0
    prediction: Prediction | None = None
    error: str | None = None
    too_long: bool = False

    @property
    def ok(self) -> bool:
        return self.prediction is not None

    @property
    def no_speech(self) -> bool:
        """Decoded, but no speech in it (the prediction's message says why)."""
        return self.prediction is not None and self.prediction.no_speech


class NamedBytes(io.BytesIO):
    """Uploaded bytes that carry the file's name and print as it.

    libsndfile's error messages show the file object's repr; a plain ``BytesIO`` (or Streamlit's
    ``UploadedFile``) would put ``<_io.BytesIO object at 0x...>`` or ``UploadedFile(...)`` in front
    of the user. Every page hands uploads to the library through :func:`named_source`.
    """

    name: str = "upload"

    def __repr__(self) -> str:
        return repr(self.name)


def named_source(data: bytes, name: str) -> NamedBytes:
    """``data`` as a file object named ``name`` (the name the user gave the file)."""
    buf = NamedBytes(bytes(data))
    buf.name = str(name or "upload")
    return buf


def predict_upload(
    bundle: ModelBundle,
    data: bytes,
    *,
    name: str = "upload",
    max_seconds: float = MAX_CLIP_SECONDS,
    max_mb: float = MAX_UPLOAD_MB,
) -> ClipResult:
    """Decode, check and judge one uploaded clip; never raises for a bad clip.

    Empty, corrupt, non-audio, silent, too short, too large and too long uploads come back with
    ``error`` set to a message for the user (``too_long`` marks clips to analyse as a call).
    """
    if not data:
        return ClipResult(name, error=f"{name} is empty (0 bytes): record or export it again.")
    if len(data) > max_mb * 1024 * 1024:
        return ClipResult(name, error=f"{name} is {len(data) / 2**20:.1f} MB, over the {max_mb:.0f} MB limit for one clip.")

    def source() -> io.BytesIO:
        return named_source(data, name)  # error messages name the upload

    try:
        info = audio_info(source())
        if info.duration > max_seconds:
            return ClipResult(
                name,
                seconds=info.duration,
                too_long=True,
                error=(
                    f"{name} lasts {info.duration:.0f} s, longer than the {max_seconds:.0f} s a single clip may last. "
                    "Open it on the Call timeline page, which follows the emotion through a long recording."
                ),
            )
        y = load_audio(source(), sr=SAMPLE_RATE, validate=False)  # for the page's player and waveform
        validate_audio(y, sr=SAMPLE_RATE, name=name)
        prediction = bundle.predict_source(source())  # decoded by the model's own front end, as in training
    except SilentAudioError as exc:  # digital silence: no speech found, and nothing for the model to judge
        silent = Prediction("", float("nan"), {}, no_speech=True, message=f"No speech found in {name}: {exc}")
        return ClipResult(name, y=y, sr=SAMPLE_RATE, seconds=len(y) / SAMPLE_RATE, prediction=silent)
    except SERError as exc:
        return ClipResult(name, error=str(exc))
    return ClipResult(name, y=y, sr=SAMPLE_RATE, seconds=len(y) / SAMPLE_RATE, prediction=prediction)


def results_table(results: list[ClipResult], labels: Iterable[str] = EMOTIONS) -> pd.DataFrame:
    """Every clip, for the CSV download: file, emotion, confidence, seconds, error, most_likely, valence,
    arousal, ``p_<label>``.

    ``emotion`` is what the product says: the emotion, "uncertain" or "no speech found" (then
    ``most_likely`` names the most probable emotion all the same). The error sits next to the file
    (not after eight probability columns); a clip that could not be judged has an empty emotion and
    NaN figures.
    """
    labels = list(labels)
    rows = []
    for r in results:
        row = {"file": r.name, "emotion": "", "confidence": np.nan, "seconds": round(r.seconds, 2) if r.seconds else np.nan}
        if r.prediction is not None:
            p = r.prediction
            valence, arousal = p.valence, p.arousal
            if p.probabilities and not (np.isfinite(valence) and np.isfinite(arousal)):
                valence, arousal = valence_arousal(p.probabilities)
            row.update(emotion=p.verdict, confidence=p.confidence, most_likely=p.emotion, valence=valence, arousal=arousal)
            row.update({f"p_{k}": p.probabilities.get(k, np.nan) for k in labels})
        row["error"] = r.error or ""
        rows.append(row)
    cols = ["file", "emotion", "confidence", "seconds", "error", "most_likely", "valence", "arousal"]
    return pd.DataFrame(rows, columns=[*cols, *[f"p_{k}" for k in labels]])


def judged_table(results: list[ClipResult], labels: Iterable[str] = EMOTIONS) -> pd.DataFrame:
    """The clips that were judged, for display: file, emotion ("uncertain" where unsure), confidence,
    seconds, most_likely, valence, arousal, ``p_<label>``.

    No empty cells: the clips that could not be judged, and those with no speech, are left out here
    (the page shows each one's message, and :func:`results_table` keeps them for the CSV).
    """
    table = results_table([r for r in results if r.ok and not r.prediction.no_speech], labels)
    return table.drop(columns="error").reset_index(drop=True)


def rejudged(results: list[ClipResult], uncertain_below: float) -> list[ClipResult]:
    """The results judged against another "uncertain" threshold (the page's slider); the model is not run again."""
    from dataclasses import replace

    return [replace(r, prediction=r.prediction.with_threshold(uncertain_below)) if r.prediction else r for r in results]


def uncertain_text(prediction: Prediction, uncertain_below: float) -> str:
    """What the Predict page says for an "uncertain" prediction."""
    return (
        f"Uncertain: the model is not sure enough to name an emotion (confidence {prediction.confidence:.0%}, below "
        f"the {uncertain_below:.0%} it needs). Most likely {prediction.emotion}; every probability is below."
    )


def affect_text(prediction: Prediction) -> str:
    """Valence and arousal in words and numbers, for the Predict page."""
    from ..affect import describe

    words = describe(prediction.valence, prediction.arousal)
    return f"Sounds {words}: valence {prediction.valence:+.2f}, arousal {prediction.arousal:+.2f} (each from -1 to +1)."


def probabilities_frame(prediction: Prediction) -> pd.DataFrame:
    """A prediction's probabilities as rows (emotion, probability), most likely first."""
    df = pd.DataFrame({"emotion": list(prediction.probabilities), "probability": list(prediction.probabilities.values())})
    return df.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


# --- the Training page's split, before training ----------------------------------------------------


@dataclass
class SplitPreview:
    """What a split of the chosen data would hold out, said before training starts."""

    held_out: bool
    text: str
    warning: str | None = None
    notes: list[str] = field(default_factory=list)
    validation: bool = True


def split_preview(manifest: pd.DataFrame, *, split: str, corpora: Iterable[str] | None = None, **kwargs) -> SplitPreview:
    """Run :func:`ser_lib.training.split_manifest` on the chosen corpora and say what it holds out.

    ``warning`` is set when nothing is left for testing (the model would have no held-out
    evaluation) or when some corpus cannot hold a speaker out; ``kwargs`` go to ``split_manifest``.
    """
    import warnings

    from ..training import NoTestSetWarning, no_test_set_message, split_manifest

    df = manifest[manifest["corpus"].isin(list(corpora))] if corpora else manifest
    df = df.reset_index(drop=True)
    if df.empty:
        return SplitPreview(False, "No files in the chosen corpora.", "Choose at least one corpus.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoTestSetWarning)  # said below, in the page's own words
        s = split_manifest(df, split=split, **kwargs)
    test = df.iloc[s.test]
    validation = len(s.val) > 0
    if not s.held_out:
        return SplitPreview(False, "Nothing is held out for testing.", no_test_set_message(split, s.notes), s.notes, validation)
    per = ", ".join(f"{c} {n}" for c, n in test.groupby("corpus")["speaker"].nunique().items())
    if split == "random":
        text = f"Held out for testing: {len(test):,} clips chosen at random (their speakers are also in training)."
    elif split == "corpus":
        n = test["speaker"].nunique()
        text = (
            f"Held out for testing: all of {kwargs.get('holdout')}, {len(test):,} clips of {n} speaker{'s' if n != 1 else ''}: "
            "a corpus never heard in training. Score it on the four emotions every corpus labels when the corpora differ."
        )
    else:
        n = test["speaker"].nunique()
        text = f"Held out for testing: {n} speaker{'s' if n != 1 else ''}, {len(test):,} clips ({per}), never heard in training."
    text += (
        f" Validation (early stopping, the dashed curves): {len(s.val):,} clips."
        if validation
        else " No validation set: no corpus has three or more training speakers to spare, so there is no validation curve."
    )
    warning = " ".join(s.notes) + " Its figures will come from the other corpora only." if s.notes else None
    return SplitPreview(True, text, warning, s.notes, validation)
