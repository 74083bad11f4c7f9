"""A trained model as a bundle: one interface for every model, run with ONNX Runtime.

The card names the front end (the notebook's 162 features, log-mel, or a pretrained encoder
and its weights' hash) and everything above it (the CLI, the pages, the call timeline) only
asks the bundle: :meth:`ModelBundle.predict`, :meth:`ModelBundle.predict_source`,
:meth:`ModelBundle.predict_files`, :meth:`ModelBundle.window_probabilities`. Their probabilities
are calibrated with the card's temperature in one place, :meth:`ModelBundle.probabilities`.

Inference never imports TensorFlow: the network runs from ``model.onnx`` with ONNX Runtime. The
Keras model (``model.keras``) is kept beside it for training and conversion only. Loading checks
the card, the ONNX file's SHA-256 against the card, the labels and front end written into the
ONNX file's metadata against the card, and the encoder weights' hash. Models are never pickled.

Layout of a bundle folder::

    models/NAME/
        model.onnx         the network, for inference (ONNX Runtime)
        model.keras        the same network as Keras saved it (training, conversion)
        card.json          labels, sample rate, front end, files' hashes, training data, split, metrics
        evaluation.json    held-out metrics and per-file predictions (optional)

A bundle saved before ONNX (no ``model.onnx``) is converted with one command:
``python -m ser_lib export-onnx models/NAME`` (:func:`ser_lib.export.export_bundle`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .affect import affect
from .audio import AudioSource, resample, source_name, validate_audio
from .calibration import apply_temperature
from .cards import (  # re-exported: the bundle I/O surface
    CARD_FILE,
    CARD_VERSION,
    EVALUATION_FILE,
    MODEL_FILE,
    ONNX_FILE,
    ONNX_META_FRONTEND,
    ONNX_META_LABELS,
    bundle_folder,
    canonical_model_type,
    check_backbone,
    read_card,
    validate_card,
)
from .config import MAX_CLIP_SECONDS, MODELS_DIR, SAMPLE_RATE
from .decisions import PREDICTION_COLUMNS, Prediction, SpeechCheck, is_uncertain, speech_check, uncertain_below
from .errors import BundleError, ParameterError, SERError, SilentAudioError
from .features import window_frames
from .frontends import EncoderFrontEnd, FrontEnd, LogMelFrontEnd, NotebookFrontEnd, frontend_from_settings
from .io import check_bundle_target, dumps_json, json_default, replace_dir, sha256_file
from .progress import ProgressCallback, report

logger = logging.getLogger(__name__)

__all__ = [
    "CARD_FILE",
    "EVALUATION_FILE",
    "MODEL_FILE",
    "ONNX_FILE",
    "BundleInfo",
    "EncoderFrontEnd",
    "LogMelFrontEnd",
    "ModelBundle",
    "NotebookFrontEnd",
    "Prediction",
    "list_bundles",
    "read_card",
]


class _OnnxNetwork:
    """``model.onnx`` in an ONNX Runtime session: ``(batch, ...) float32 -> (batch, n_labels)``."""

    def __init__(self, path: Path, *, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # The heads are small (0.5 ms for a 3 s window of the default on one thread, 0.6 ms on two): one
        # thread, and no spinning pool, so ONNX Runtime never takes a core from the encoder that runs next.
        opts.intra_op_num_threads = threads or 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No memory arena or pattern: call windows come in many lengths, so they would only grow it
        # (a 2-hour call peaked 6 MB lower without; a window then takes 1.0 ms instead of 0.6).
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise BundleError(
                f"ONNX Runtime could not load {path}: {exc}. Re-export it with `python -m ser_lib export-onnx {path.parent}`."
            ) from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        out = self.session.get_outputs()[0].shape
        self.n_outputs = out[-1] if out and isinstance(out[-1], int) else None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


class ModelBundle:
    """A trained network with its card and front end.

    Build one with :meth:`load` (from a folder: runs ``model.onnx`` with ONNX Runtime) or
    :meth:`create` (after training: runs the Keras model until saved).
    """

    def __init__(self, network, card: dict, *, path: Path | None = None, keras_model=None, scaler: dict | None = None):
        self.network = network
        self.card = card
        self.path = path
        self._keras_model = keras_model
        self.labels: list[str] = list(card["labels"])
        self.frontend: FrontEnd = frontend_from_settings(card["frontend"])
        sc = scaler if scaler is not None else card.get("scaler")
        self.scaler = None if sc is None else (np.asarray(sc["mean"], np.float32), np.asarray(sc["scale"], np.float32))
        cal = card.get("calibration") or {}
        #: Temperature applied to every probability the bundle returns (card ``calibration``; 1: none).
        self.temperature: float = float(cal.get("temperature", 1.0)) if cal.get("method") == "temperature" else 1.0
        #: Calibrated confidence below which a prediction is "uncertain" (card ``decision``, or
        #: ``$SER_UNCERTAIN_BELOW``); set it to change the threshold for this bundle's answers.
        self.uncertain_below: float = uncertain_below(card)
        #: Whether :meth:`predict` and :meth:`predict_source` first ask the voice-activity detector for speech.
        self.check_speech: bool = True

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
    ) -> ModelBundle:
        """A new, unsaved bundle around a trained Keras ``model`` (run by Keras until :meth:`save`)."""
        card = {
            "card_version": CARD_VERSION,
            "name": name,
            "model_type": canonical_model_type(model_type),
            "labels": list(labels),
            "sample_rate": frontend.sample_rate,
            "frontend": frontend.settings(),
            "backbone": None,
            "training": training or {},
            "metrics": metrics or {},
            "scaler": scaler,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "library_version": __version__,
            "parameters": int(model.count_params()),
            "files": {},
        }
        if isinstance(frontend, EncoderFrontEnd):
            card["backbone"] = {"name": frontend.backbone, "sha256": card["frontend"]["sha256"]}
        from .export import KerasNetwork

        return cls(KerasNetwork(model), card, keras_model=model)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, threads: int | None = None) -> ModelBundle:
        """Load the bundle in folder ``path`` (default: the shipped ``models/default``).

        Raises
        ------
        BundleError
            When the folder, card or ONNX file is missing or damaged, the ONNX file does not match
            the card's hash, labels or front end, or the card's encoder is not the installed one.
        """
        folder = bundle_folder(path)
        if not folder.is_dir():
            raise BundleError(
                f"No model bundle at {folder}: expected a folder with {ONNX_FILE} and {CARD_FILE}. "
                "Train one with `python -m ser_lib train --data DIR --out models/NAME`."
            )
        card = read_card(folder)
        check_backbone(card, folder)
        onnx_path = folder / ONNX_FILE
        if not onnx_path.is_file():
            if (folder / MODEL_FILE).is_file():
                raise BundleError(
                    f"The bundle {folder} was saved before models ran with ONNX Runtime (it has {MODEL_FILE} but no "
                    f"{ONNX_FILE}): convert it once with `python -m ser_lib export-onnx {folder}`."
                )
            raise BundleError(f"The bundle {folder} has no {ONNX_FILE}: it is incomplete; retrain or re-copy it.")
        expected = card["files"].get(ONNX_FILE)
        if not expected:
            raise BundleError(
                f"The card in {folder} records no hash for {ONNX_FILE}, so the file cannot be checked: "
                f"re-export it with `python -m ser_lib export-onnx {folder}`."
            )
        if onnx_path.stat().st_size == 0:
            raise BundleError(f"{onnx_path} is empty (0 bytes): the model file was damaged; re-copy the bundle.")
        if sha256_file(onnx_path) != expected:
            raise BundleError(
                f"{onnx_path} does not match its card (SHA-256 differs): the model file was replaced or "
                "damaged. Use the model file saved with this card."
            )
        network = _OnnxNetwork(onnx_path, threads=threads)
        cls._check_network(network, card, folder)
        return cls(network, card, path=folder)

    @staticmethod
    def _check_network(network: _OnnxNetwork, card: dict, folder: Path) -> None:
        """The ONNX file's outputs, labels and front end must be the card's."""
        if network.n_outputs is not None and network.n_outputs != len(card["labels"]):
            raise BundleError(
                f"{folder / ONNX_FILE} predicts {network.n_outputs} classes but its card lists {len(card['labels'])} labels: "
                "the card belongs to another model."
            )
        meta = network.metadata
        if ONNX_META_LABELS in meta and json.loads(meta[ONNX_META_LABELS]) != card["labels"]:
            raise BundleError(
                f"{folder / ONNX_FILE} was trained with labels {json.loads(meta[ONNX_META_LABELS])} but its card lists "
                f"{card['labels']}: the card was edited or belongs to another model."
            )
        if ONNX_META_FRONTEND in meta:
            saved = json.loads(meta[ONNX_META_FRONTEND])
            if frontend_from_settings(saved) != frontend_from_settings(card["frontend"]):
                raise BundleError(
                    f"{folder / ONNX_FILE} was trained on front end {saved} but its card says {card['frontend']}: "
                    "the card was edited or belongs to another model."
                )

    @staticmethod
    def check_card(card: dict, folder: Path | str = "<card>") -> None:
        """Raise :class:`BundleError` if the card is incomplete or names something not installed."""
        check_backbone(validate_card(card, folder), folder)

    def keras_model(self):
        """The Keras model (imports TensorFlow): the trained one, or ``model.keras`` read from the bundle."""
        if self._keras_model is None:
            from .export import load_keras_model

            if self.path is None:
                raise BundleError(f"{self.name} has no Keras model and no folder to read one from.")
            self._keras_model = load_keras_model(self.path, self.card)
        return self._keras_model

    def save(self, path: str | os.PathLike, *, evaluation: dict | None = None, overwrite: bool = False) -> Path:
        """Write ``model.keras``, ``model.onnx``, ``card.json`` (and ``evaluation.json``) into ``path``, atomically."""
        from .export import export_onnx

        folder = check_bundle_target(path, overwrite=overwrite)
        model = self.keras_model()
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            model.save(tmp / MODEL_FILE)
            export_onnx(
                model, tmp / ONNX_FILE, labels=self.labels, frontend=self.card["frontend"], model_type=self.card["model_type"]
            )
            self.card["files"] = {MODEL_FILE: sha256_file(tmp / MODEL_FILE), ONNX_FILE: sha256_file(tmp / ONNX_FILE)}
            self.card["card_version"] = CARD_VERSION
            self.card["name"] = folder.name
            (tmp / CARD_FILE).write_text(dumps_json(self.card))
            if evaluation is not None:
                (tmp / EVALUATION_FILE).write_text(json.dumps(evaluation, default=json_default))
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the bundle from other users
            replace_dir(tmp, folder)  # the old bundle complete, or the new one complete, never neither
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
        if isinstance(fe, NotebookFrontEnd):
            what = "notebook 1D CNN on 162 features"
        elif isinstance(fe, LogMelFrontEnd):
            what = "2D CNN on log-mel"
        else:
            what = f"{fe.backbone} encoder + CNN head"
        members = (((self.card.get("training") or {}).get("ensemble") or {}).get("members")) or []
        if members:  # a combined bundle (ser_lib.ensemble): its heads, named
            names = ", ".join(str(m.get("name", "?")) for m in members if isinstance(m, dict))
            what = what.replace("CNN head", f"{len(members)} CNN heads combined: {names}")
        metrics = self.card.get("metrics") or {}
        ua = (metrics.get("overall") or {}).get("UA")
        source = metrics.get("source") if isinstance(metrics.get("source"), str) else ""
        if not isinstance(ua, (int, float)):
            tail = ""
        elif source.startswith("held-out run "):  # the figures of a sibling run of the same recipe, not its own
            tail = f", its recipe's speaker-independent UA {ua:.2f} (from {source.removeprefix('held-out run ')})"
        else:
            tail = f", speaker-independent UA {ua:.2f}"
        return f"{self.name} ({what}{tail})"

    def evaluation(self) -> dict | None:
        """The held-out evaluation saved with the bundle, or ``None``."""
        if self.path is None or not (self.path / EVALUATION_FILE).is_file():
            return None
        return json.loads((self.path / EVALUATION_FILE).read_text())

    # --- features --------------------------------------------------------------------------
    def encoder(self):
        """The bundle's pretrained encoder (loaded on first use, shared in this process)."""
        if not isinstance(self.frontend, EncoderFrontEnd):
            raise ParameterError(f"{self.name} uses the {self.frontend.kind} front end, which has no encoder")
        return self.frontend.encoder()

    def embed(self, y: np.ndarray, *, sr: int = SAMPLE_RATE) -> np.ndarray:
        """Encoder frames of ``y`` [shape=(t, dim)] (encoder bundles only)."""
        if not isinstance(self.frontend, EncoderFrontEnd):
            raise ParameterError(f"{self.name} uses the {self.frontend.kind} front end, which has no encoder")
        return self.frontend.features(y, sr)

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        if self.scaler is not None:
            x = (x - self.scaler[0]) / self.scaler[1]
        return x[:, None]

    def features(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """What the network's input sees for audio ``y`` at ``sr`` (without the batch axis)."""
        x = self.frontend.features(y, sr)
        return self._scaled(x) if isinstance(self.frontend, NotebookFrontEnd) else x

    def source_features(self, source: AudioSource) -> np.ndarray:
        """What the network's input sees for a file (or bytes): decoded by the front end, as in training."""
        fe = self.frontend
        y = fe.load(source, max_seconds=MAX_CLIP_SECONDS)  # a clip: longer recordings are analysed as calls
        validate_audio(y, sr=fe.sample_rate, name=source_name(source))
        return self._loaded_features(y)

    def _loaded_features(self, y: np.ndarray) -> np.ndarray:
        """:meth:`source_features` of audio already decoded by the front end's ``load``."""
        fe = self.frontend
        if isinstance(fe, NotebookFrontEnd):
            return self._scaled(fe.features(y, fe.sample_rate, cropped=True))
        return fe.features(y, fe.sample_rate)

    def probabilities(self, xs: Sequence[np.ndarray], *, batch_size: int = 64) -> np.ndarray:
        """Calibrated class probabilities [shape=(len(xs), n_labels)] for network inputs ``xs``.

        :meth:`probabilities_from_features` with the card's temperature applied
        (:func:`ser_lib.calibration.apply_temperature`; none for a card without calibration).
        Every probability the bundle returns (:meth:`predict`, :meth:`predict_source`,
        :meth:`predict_files`, :meth:`window_probabilities`, the call engine) comes from here.
        """
        out = self.probabilities_from_features(xs, batch_size=batch_size)
        if self.temperature != 1.0 and len(out):
            out = apply_temperature(out, self.temperature)
        return out

    def probabilities_from_features(self, xs: Sequence[np.ndarray], *, batch_size: int = 64) -> np.ndarray:
        """The network's own class probabilities [shape=(len(xs), n_labels)] for inputs ``xs`` (uncalibrated).

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
                out[part] = self.network(np.stack([np.asarray(xs[i], np.float32) for i in part]))
        return out

    # --- prediction --------------------------------------------------------------------------
    def predict_proba(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Class probabilities [shape=(n_labels,)] for one clip ``y`` at ``sr`` (order: ``labels``)."""
        validate_audio(y, sr=sr)
        return self.probabilities([self.features(y, sr=sr)])[0]

    def predict(self, y: np.ndarray, *, sr: int, name: str = "the clip") -> Prediction:
        """The emotion, its probability and every class probability for one clip.

        A silent clip, or one in which the voice-activity detector finds no speech, comes back
        with ``no_speech`` (see :mod:`ser_lib.decisions`); a confident-enough one with its emotion.
        """
        try:
            validate_audio(y, sr=sr, name=name)
        except SilentAudioError as exc:
            return self._silent(str(exc), name)
        speech = speech_check(y, sr=sr) if self.check_speech else None
        return self._prediction(self.predict_proba(y, sr=sr), speech=speech, name=name)

    def predict_source(self, source: AudioSource) -> Prediction:
        """:meth:`predict` for a file, bytes or file object, decoded the way the model was trained."""
        fe = self.frontend
        name = source_name(source)
        try:
            y = fe.load(source, max_seconds=MAX_CLIP_SECONDS)  # a clip: longer recordings are analysed as calls
            validate_audio(y, sr=fe.sample_rate, name=name)
        except SilentAudioError as exc:
            return self._silent(str(exc), name)
        speech = speech_check(y, sr=fe.sample_rate) if self.check_speech else None
        return self._prediction(self.probabilities([self._loaded_features(y)])[0], speech=speech, name=name)

    def _silent(self, why: str, name: str) -> Prediction:
        """Digital silence: no speech, and nothing for the model to judge."""
        return Prediction("", float("nan"), {}, no_speech=True, message=f"No speech found in {name}: {why}")

    def _prediction(self, p: np.ndarray, *, speech: SpeechCheck | None = None, name: str = "the clip") -> Prediction:
        k = int(np.argmax(p))
        valence, arousal = (float(v) for v in affect(p, labels=self.labels))
        no_speech = speech is not None and not speech.found
        return Prediction(
            self.labels[k],
            float(p[k]),
            {lab: float(v) for lab, v in zip(self.labels, p, strict=True)},
            uncertain=(not no_speech) and is_uncertain(float(p[k]), self.uncertain_below),
            no_speech=no_speech,
            valence=valence,
            arousal=arousal,
            message=speech.message(name) if no_speech else "",
        )

    def predict_files(self, paths: Sequence[str | os.PathLike], *, progress: ProgressCallback | None = None) -> pd.DataFrame:
        """One row per file: path, emotion, confidence, verdict, uncertain, no_speech, valence, arousal,
        a probability column per label, error.

        ``emotion`` is the most probable emotion (what accuracy is measured on); ``verdict`` what
        the product says (the emotion, "uncertain" or "no speech found"). A file that cannot be
        read, or a silent one (no speech and nothing to judge), gets its message in ``error`` and
        no emotion; the others are unaffected. ``progress`` receives stage ``"predict"``, in files.
        """
        rows = []
        for i, path in enumerate(paths):
            row: dict[str, Any] = {"path": str(path)}
            try:
                pred = self.predict_source(path)
                row.update(
                    emotion=pred.emotion or None,
                    confidence=pred.confidence,
                    verdict=pred.verdict,
                    uncertain=pred.uncertain,
                    no_speech=pred.no_speech,
                    valence=pred.valence,
                    arousal=pred.arousal,
                    message=pred.message,
                    error="" if pred.probabilities else pred.message,
                )
                row.update({f"p_{k}": v for k, v in pred.probabilities.items()})
            except SERError as exc:
                row.update(emotion=None, confidence=np.nan, verdict="", error=str(exc))
            rows.append(row)
            report(progress, "predict", i + 1, len(paths))
        cols = [*PREDICTION_COLUMNS, *[f"p_{lab}" for lab in self.labels], "error"]
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
        covers (:func:`ser_lib.features.window_frames`, as the call engine does), instead of
        re-encoding overlapping windows.
        """
        windows = np.asarray(windows, dtype=float).reshape(-1, 2)
        if len(windows) == 0:
            return np.zeros((0, len(self.labels)))
        y = resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=SAMPLE_RATE)
        if self.frame_rate:
            frames = self.embed(y)
            return self.probabilities([window_frames(frames, a, b, rate=self.frame_rate) for a, b in windows])
        xs = [self.features(y[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)], sr=SAMPLE_RATE) for a, b in windows]
        return self.probabilities(xs)


@dataclass
class BundleInfo:
    """A bundle found on disk, read from its card only (the model is not loaded).

    ``error`` is set (and ``card`` empty) for a folder whose card cannot be read: it is listed as
    damaged rather than hidden or allowed to break a page.
    """

    name: str
    path: Path
    card: dict
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def list_bundles(models_dir: str | os.PathLike | None = None, *, include_damaged: bool = False) -> list[BundleInfo]:
    """Every folder under ``models_dir`` (default ``models/``) holding a card, by name.

    Folders whose card cannot be read are logged and left out, or listed with ``error`` set when
    ``include_damaged``.
    """
    root = Path(models_dir) if models_dir else MODELS_DIR
    found = []
    if root.is_dir():
        for card_path in sorted(root.glob(f"*/{CARD_FILE}")):
            try:
                found.append(BundleInfo(card_path.parent.name, card_path.parent, read_card(card_path.parent)))
            except BundleError as exc:
                logger.warning("Ignoring %s: %s", card_path.parent, exc)
                if include_damaged:
                    found.append(BundleInfo(card_path.parent.name, card_path.parent, {}, error=str(exc)))
    return found
