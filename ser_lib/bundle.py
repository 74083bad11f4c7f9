"""A trained model as a bundle: ``model.keras`` plus a JSON card, one interface for every model.

The card names the front end (the notebook's 162 features, log-mel, or a pretrained encoder
and its weights' hash) and everything above it (the CLI, the pages, the call timeline) only
asks the bundle: :meth:`ModelBundle.predict_proba`, :meth:`ModelBundle.predict_files`,
:meth:`ModelBundle.window_probabilities`. Loading checks the card before using the model.
Models are never pickled.

Layout of a bundle folder::

    models/NAME/
        model.keras        the Keras model
        card.json          labels, sample rate, front end, training data, split, metrics, date
        evaluation.json    held-out metrics and per-file predictions (optional)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from . import __version__
from .audio import load_audio, resample, validate_audio
from .config import EMOTIONS, MODELS_DIR, SAMPLE_RATE, default_model_path
from .errors import BundleError, ParameterError, SERError
from .features import WHISPER_FRAME_RATE, LogMelFrontEnd, SeedFrontEnd

logger = logging.getLogger(__name__)

CARD_FILE = "card.json"
MODEL_FILE = "model.keras"
EVALUATION_FILE = "evaluation.json"
CARD_VERSION = 1
_REQUIRED = ("card_version", "name", "model_type", "labels", "sample_rate", "frontend", "files", "created")


@dataclass(frozen=True)
class EncoderFrontEnd:
    """A pretrained encoder's frames [shape=(t, dim)], 50 per second; the head sees them all."""

    kind: str = "encoder"
    backbone: str = "whisper-base"
    sample_rate: int = SAMPLE_RATE
    frame_rate: int = WHISPER_FRAME_RATE
    train_frames: int = 150
    chunk_seconds: float = 10.0

    def settings(self) -> dict:
        from .backbone import weights_sha256

        return {**asdict(self), "sha256": weights_sha256(self.backbone)}


FrontEnd = SeedFrontEnd | LogMelFrontEnd | EncoderFrontEnd


def frontend_from_settings(settings: dict) -> FrontEnd:
    """Rebuild a front end from the settings stored in a card."""
    kind = settings.get("kind")
    classes = {"seed162": SeedFrontEnd, "logmel": LogMelFrontEnd, "encoder": EncoderFrontEnd}
    if kind not in classes:
        raise BundleError(f"Unknown front end kind={kind!r} in the card: expected one of {sorted(classes)}")
    cls = classes[kind]
    names = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in settings.items() if k in names})


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Prediction:
    """One clip's answer."""

    emotion: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)


class ModelBundle:
    """A loaded model with its card and front end.

    Build one with :meth:`load` (from a folder) or :meth:`create` (after training).
    """

    def __init__(self, model, card: dict, *, path: Path | None = None, scaler: dict | None = None):
        self.model = model
        self.card = card
        self.path = path
        self.labels: list[str] = list(card["labels"])
        self.frontend: FrontEnd = frontend_from_settings(card["frontend"])
        sc = scaler if scaler is not None else card.get("scaler")
        self.scaler = None if sc is None else (np.asarray(sc["mean"], np.float32), np.asarray(sc["scale"], np.float32))
        self._encoder = None
        self._fn = None

    # --- construction --------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        model,
        *,
        name: str,
        model_type: str,
        labels: Sequence[str],
        frontend: FrontEnd,
        training: dict | None = None,
        metrics: dict | None = None,
        scaler: dict | None = None,
    ) -> "ModelBundle":
        """A new, unsaved bundle around a trained Keras ``model``."""
        card = {
            "card_version": CARD_VERSION,
            "name": name,
            "model_type": model_type,
            "labels": list(labels),
            "sample_rate": frontend.sample_rate,
            "frontend": frontend.settings(),
            "backbone": None,
            "training": training or {},
            "metrics": metrics or {},
            "scaler": scaler,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "library_version": __version__,
            "parameters": int(model.count_params()),
            "files": {},
        }
        if isinstance(frontend, EncoderFrontEnd):
            card["backbone"] = {"name": frontend.backbone, "sha256": card["frontend"]["sha256"]}
        return cls(model, card)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "ModelBundle":
        """Load the bundle in folder ``path`` (default: the shipped ``models/default``).

        Raises
        ------
        BundleError
            When the folder, card or model file is missing, the card is incomplete, the model
            file does not match the card's hash, or the card's backbone is not the installed one.
        """
        folder = Path(path).expanduser() if path else default_model_path()
        if folder.is_file() and folder.name == CARD_FILE:
            folder = folder.parent
        if folder.is_file() and folder.suffix == ".keras":
            folder = folder.parent
        if not folder.is_dir():
            raise BundleError(
                f"No model bundle at {folder}: expected a folder with {MODEL_FILE} and {CARD_FILE}. "
                "Train one with `python -m ser_lib train --data DIR --out models/NAME`."
            )
        card_path, model_path = folder / CARD_FILE, folder / MODEL_FILE
        if not card_path.is_file():
            raise BundleError(f"The bundle {folder} has no {CARD_FILE}: it is incomplete; retrain or re-copy it.")
        if not model_path.is_file():
            raise BundleError(f"The bundle {folder} has no {MODEL_FILE}: it is incomplete; retrain or re-copy it.")
        try:
            card = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"The card {card_path} is not valid JSON ({exc}).") from exc
        cls.check_card(card, folder)
        expected = card["files"].get(MODEL_FILE)
        if expected and _file_sha256(model_path) != expected:
            raise BundleError(
                f"{model_path} does not match its card (SHA-256 differs): the model file was replaced or "
                "damaged. Use the model file saved with this card."
            )
        from . import models as _models  # registers custom layers  # noqa: F401
        import keras

        try:
            model = keras.models.load_model(model_path, compile=False)
        except Exception as exc:  # Keras raises many types for a bad file
            raise BundleError(f"Keras could not load {model_path}: {exc}") from exc
        out = int(model.output_shape[-1])
        if out != len(card["labels"]):
            raise BundleError(
                f"{model_path} predicts {out} classes but its card lists {len(card['labels'])} labels: "
                "the card belongs to another model."
            )
        return cls(model, card, path=folder)

    @staticmethod
    def check_card(card: dict, folder: Path | str = "<card>") -> None:
        """Raise :class:`BundleError` if the card is incomplete or names something not installed."""
        missing = [k for k in _REQUIRED if k not in card]
        if missing:
            raise BundleError(f"The card in {folder} lacks {missing}: it was not written by ser_lib or is damaged.")
        unknown = [lab for lab in card["labels"] if lab not in EMOTIONS]
        if unknown:
            raise BundleError(f"The card in {folder} has labels {unknown} outside the canonical emotions {list(EMOTIONS)}")
        frontend_from_settings(card["frontend"])
        backbone = card.get("backbone")
        if backbone:
            from .backbone import BACKBONES, weights_sha256

            name = backbone.get("name")
            if name not in BACKBONES:
                raise BundleError(f"The card in {folder} names backbone {name!r}, which this version does not know.")
            if backbone.get("sha256") != weights_sha256(name):
                raise BundleError(
                    f"The card in {folder} was trained on {name} weights with SHA-256 {backbone.get('sha256')}, "
                    f"but the installed ones hash to {weights_sha256(name)}: retrain the head on these weights."
                )

    def save(self, path: str | os.PathLike, *, evaluation: dict | None = None, overwrite: bool = False) -> Path:
        """Write ``model.keras``, ``card.json`` (and ``evaluation.json``) into folder ``path``, atomically."""
        folder = Path(path).expanduser()
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise BundleError(f"{folder} already holds a bundle: choose another name or pass overwrite=True.")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            self.model.save(tmp / MODEL_FILE)
            self.card["files"] = {MODEL_FILE: _file_sha256(tmp / MODEL_FILE)}
            self.card["name"] = folder.name
            (tmp / CARD_FILE).write_text(json.dumps(self.card, indent=1, default=_json_default))
            if evaluation is not None:
                (tmp / EVALUATION_FILE).write_text(json.dumps(evaluation, default=_json_default))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = folder
        return folder

    # --- description -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.card.get("name", "model")

    @property
    def frame_rate(self) -> int | None:
        """Frames per second for encoder bundles (windows pool encoder frames), else ``None``."""
        return self.frontend.frame_rate if isinstance(self.frontend, EncoderFrontEnd) else None

    def describe(self) -> str:
        """One line naming the model: what a page shows beside a prediction."""
        fe = self.frontend
        what = {
            "seed162": "notebook 1D CNN on 162 features",
            "logmel": "2D CNN on log-mel",
            "encoder": f"{getattr(fe, 'backbone', 'encoder')} encoder + CNN head",
        }[fe.kind]
        ua = (self.card.get("metrics") or {}).get("overall", {}).get("UA")
        tail = f", speaker-independent UA {ua:.2f}" if isinstance(ua, (int, float)) else ""
        return f"{self.name} ({what}{tail})"

    def evaluation(self) -> dict | None:
        """The held-out evaluation saved with the bundle, or ``None``."""
        if self.path is None or not (self.path / EVALUATION_FILE).is_file():
            return None
        return json.loads((self.path / EVALUATION_FILE).read_text())

    # --- features --------------------------------------------------------------------------
    def encoder(self):
        """The bundle's pretrained encoder (loaded on first use)."""
        if not isinstance(self.frontend, EncoderFrontEnd):
            raise ParameterError(f"{self.name} uses the {self.frontend.kind} front end, which has no encoder")
        if self._encoder is None:
            from .backbone import WhisperEncoder

            self._encoder = WhisperEncoder(self.frontend.backbone)
        return self._encoder

    def embed(self, y: np.ndarray, *, sr: int = SAMPLE_RATE) -> np.ndarray:
        """Encoder frames of ``y`` [shape=(t, dim)], in chunks of the front end's ``chunk_seconds``."""
        y = resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=SAMPLE_RATE)
        enc = self.encoder()
        step = int(self.frontend.chunk_seconds * SAMPLE_RATE)
        if len(y) <= step:
            return enc.encode(y)
        return np.concatenate([enc.encode(y[i : i + step]) for i in range(0, len(y), step)], axis=0)

    def features(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """What the model's input layer sees for one clip (without the batch axis)."""
        fe = self.frontend
        if isinstance(fe, EncoderFrontEnd):
            return self.embed(y, sr=sr)
        x = fe(y, sr)
        if isinstance(fe, SeedFrontEnd):
            if self.scaler is not None:
                x = (x - self.scaler[0]) / self.scaler[1]
            return x[:, None]
        return x

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The model on one batch. Traced once into a ``tf.function`` with a free batch (and, for
        encoder heads, time) axis: an eager Keras call costs 11-13 ms whatever the batch, the
        traced one 2-4 ms with the same numbers (to 1e-7)."""
        if self._fn is None:
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                model = self.model
                spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
                self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
            else:
                self._fn = lambda x: keras.ops.convert_to_numpy(self.model(x, training=False))
        return np.asarray(self._fn(batch), dtype=np.float64)

    def probabilities_from_features(self, xs: Sequence[np.ndarray], *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities [shape=(len(xs), n_labels)] for model inputs ``xs``.

        Inputs of different lengths (encoder frames) are grouped by length, never padded, so a
        clip's answer does not depend on the others in the call.
        """
        out = np.zeros((len(xs), len(self.labels)))
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(xs):
            groups.setdefault(tuple(np.shape(x)), []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), batch_size):
                part = idx[s : s + batch_size]
                out[part] = self._run(np.stack([np.asarray(xs[i], np.float32) for i in part]))
        return out

    # --- prediction --------------------------------------------------------------------------
    def predict_proba(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Class probabilities [shape=(n_labels,)] for one clip ``y`` at ``sr`` (order: ``labels``)."""
        validate_audio(y, sr=sr)
        return self.probabilities_from_features([self.features(y, sr=sr)])[0]

    def predict(self, y: np.ndarray, *, sr: int) -> Prediction:
        """The emotion, its probability and every class probability for one clip."""
        p = self.predict_proba(y, sr=sr)
        return self._prediction(p)

    def _prediction(self, p: np.ndarray) -> Prediction:
        k = int(np.argmax(p))
        return Prediction(self.labels[k], float(p[k]), {lab: float(v) for lab, v in zip(self.labels, p)})

    def predict_files(
        self, paths: Sequence[str | os.PathLike], *, progress: Callable[[int, int], None] | None = None
    ) -> pd.DataFrame:
        """One row per file: path, emotion, confidence, a probability column per label, error.

        A file that cannot be read gets its error message in ``error`` and no prediction; the
        others are unaffected.
        """
        rows = []
        for i, path in enumerate(paths):
            row: dict[str, Any] = {"path": str(path)}
            try:
                y = load_audio(path, sr=SAMPLE_RATE)
                pred = self.predict(y, sr=SAMPLE_RATE)
                row.update(emotion=pred.emotion, confidence=pred.confidence, error="")
                row.update({f"p_{k}": v for k, v in pred.probabilities.items()})
            except SERError as exc:
                row.update(emotion=None, confidence=np.nan, error=str(exc))
            rows.append(row)
            if progress:
                progress(i + 1, len(paths))
        cols = ["path", "emotion", "confidence", *[f"p_{lab}" for lab in self.labels], "error"]
        return pd.DataFrame(rows).reindex(columns=cols)

    def window_probabilities(self, y: np.ndarray, *, sr: int, windows: np.ndarray) -> np.ndarray:
        """Class probabilities for windows of one signal.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)]
        sr : int
        windows : np.ndarray [shape=(k, 2)]
            Start and end of each window in seconds.

        Returns
        -------
        probabilities : np.ndarray [shape=(k, n_labels)]

        Encoder bundles encode ``y`` once (in chunks) and pool each window from the frames it
        covers, instead of re-encoding overlapping windows.
        """
        windows = np.asarray(windows, dtype=float).reshape(-1, 2)
        if len(windows) == 0:
            return np.zeros((0, len(self.labels)))
        y = resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=SAMPLE_RATE)
        if self.frame_rate:
            frames = self.embed(y)
            return self.probabilities_from_frames(frames, windows)
        xs = []
        for start, end in windows:
            seg = y[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            xs.append(self.features(seg, sr=SAMPLE_RATE))
        return self.probabilities_from_features(xs)

    def probabilities_from_frames(self, frames: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Probabilities for ``windows`` (seconds) pooled from encoder ``frames`` of one signal."""
        rate = self.frame_rate
        if not rate:
            raise ParameterError(f"{self.name} does not work on encoder frames")
        xs = []
        for start, end in np.asarray(windows, float).reshape(-1, 2):
            a = int(round(start * rate))
            b = max(a + 1, min(len(frames), int(round(end * rate))))
            xs.append(frames[a:b])
        return self.probabilities_from_features(xs)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, pd.DataFrame):
        return o.to_dict(orient="records")
    raise TypeError(f"Not JSON serialisable: {type(o).__name__}")


@dataclass
class BundleInfo:
    """A bundle found on disk, read from its card only (the model is not loaded)."""

    name: str
    path: Path
    card: dict


def list_bundles(models_dir: str | os.PathLike | None = None) -> list[BundleInfo]:
    """Every folder under ``models_dir`` (default ``models/``) holding a readable card, by name."""
    root = Path(models_dir) if models_dir else MODELS_DIR
    found = []
    if root.is_dir():
        for card_path in sorted(root.glob(f"*/{CARD_FILE}")):
            try:
                card = json.loads(card_path.read_text())
            except (OSError, json.JSONDecodeError):
                logger.warning("Ignoring %s: not valid JSON", card_path)
                continue
            found.append(BundleInfo(card_path.parent.name, card_path.parent, card))
    return found
