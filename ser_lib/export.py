"""Saving a Keras network as ONNX, and converting bundles saved before ONNX.

This is training-side code: it imports TensorFlow, Keras and tf2onnx. Inference
(:mod:`ser_lib.bundle`) runs the ``model.onnx`` written here with ONNX Runtime and never imports it.

- :func:`export_onnx`: a Keras model -> ``model.onnx`` (free batch axis, and free time axis for
  encoder heads), with the labels, front end and model type written into the file's metadata.
- :func:`export_bundle`: add ``model.onnx`` to a bundle folder that has only ``model.keras``
  (``python -m ser_lib export-onnx models/NAME``), checking that both give the same probabilities.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import BundleError
from .io import atomic_write_bytes, dumps_json, sha256_file

#: ONNX opset the networks are exported with (ONNX Runtime 1.31 runs up to 23).
OPSET = 17
#: Largest difference between the Keras and the ONNX probabilities that export accepts.
PARITY_TOLERANCE = 1e-4


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    from . import models  # noqa: F401  (registers the custom layers)

    return keras


class KerasNetwork:
    """A Keras model as a bundle's network, before it is saved (training evaluates with it).

    Traced once into a ``tf.function`` with a free batch (and time) axis: an eager Keras call
    costs 11-13 ms whatever the batch, the traced one 2-4 ms with the same numbers.
    """

    def __init__(self, model):
        _keras()
        import tensorflow as tf

        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        self.model = model
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self.n_outputs = int(model.output_shape[-1])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(batch))


#: Most a ``.keras`` file may unpack to (the shipped ones unpack to under 10 MB), and the largest
#: compression ratio of one member: a zip bomb is refused before Keras extracts anything.
MAX_KERAS_UNPACKED = 512 << 20
MAX_KERAS_RATIO = 200


def check_keras_zip(path: str | os.PathLike) -> None:
    """Raise :class:`BundleError` unless ``path`` is a zip whose members unpack to a sane size."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BundleError(f"{path} is not a Keras model file (not a readable zip: {exc}): re-copy the bundle.") from exc
    total = sum(m.file_size for m in members)
    if total > MAX_KERAS_UNPACKED:
        raise BundleError(
            f"{path} would unpack to {total:,} bytes (limit {MAX_KERAS_UNPACKED:,}): refused as damaged or hostile."
        )
    for m in members:
        if m.file_size > 1 << 20 and m.file_size > MAX_KERAS_RATIO * max(m.compress_size, 1):
            raise BundleError(
                f"{path} member {m.filename} expands {m.file_size // max(m.compress_size, 1)}x "
                f"({m.file_size:,} bytes): refused as a zip bomb."
            )


def load_keras_model(folder: str | os.PathLike, card: dict | None = None):
    """Load ``model.keras`` from bundle ``folder``, checking its hash against the card when it has one."""
    from .cards import MODEL_FILE

    keras = _keras()
    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise BundleError(f"The bundle {folder} has no {MODEL_FILE}: it cannot be converted or retrained.")
    if path.stat().st_size == 0:
        raise BundleError(f"{path} is empty (0 bytes): the model file was damaged; re-copy the bundle.")
    check_keras_zip(path)
    expected = ((card or {}).get("files") or {}).get(MODEL_FILE)
    if expected and sha256_file(path) != expected:
        raise BundleError(f"{path} does not match its card (SHA-256 differs): the model file was replaced or damaged.")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad file
        raise BundleError(f"Keras could not load {path}: {exc}") from exc


def onnx_bytes(model, *, labels: Sequence[str], frontend: dict, model_type: str) -> bytes:
    """The serialised ONNX model of a Keras ``model``, with ser_lib's metadata."""
    _keras()
    import tensorflow as tf
    import tf2onnx

    from .cards import ONNX_META_FRONTEND, ONNX_META_LABELS

    spec = (tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name="input"),)
    fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET)
    from . import __version__

    meta = {
        ONNX_META_LABELS: json.dumps(list(labels)),
        ONNX_META_FRONTEND: json.dumps(frontend, sort_keys=True, default=str),
        "ser_lib.model_type": model_type,
        "ser_lib.version": __version__,
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "ser_lib (tf2onnx)"
    return proto.SerializeToString()


def export_onnx(model, path: str | os.PathLike, *, labels: Sequence[str], frontend: dict, model_type: str) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically) and check it against Keras.

    Raises
    ------
    BundleError
        When ONNX Runtime's probabilities differ from Keras's by more than :data:`PARITY_TOLERANCE`.
    """
    data = onnx_bytes(model, labels=labels, frontend=frontend, model_type=model_type)
    diff = parity(model, data)
    if diff > PARITY_TOLERANCE:
        raise BundleError(
            f"The ONNX export differs from the Keras model by {diff:.2e} (more than {PARITY_TOLERANCE}): not saved."
        )
    return atomic_write_bytes(path, data)


def parity_inputs(input_shape: Sequence, *, seed: int = 0) -> list[np.ndarray]:
    """Random inputs that exercise a network: a few batch sizes, and several lengths for a free time axis."""
    rng = np.random.default_rng(seed)
    shapes = []
    if len(input_shape) >= 3 and input_shape[1] is None:
        for t in (1, 7, 150, 401):
            shapes.append([3, t, *input_shape[2:]])
    else:
        shapes += [[1, *input_shape[1:]], [5, *input_shape[1:]]]
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


def parity(model, data: bytes) -> float:
    """Largest absolute difference between Keras's and ONNX Runtime's probabilities on :func:`parity_inputs`."""
    import onnxruntime as ort

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    worst = 0.0
    for x in parity_inputs(model.input_shape):
        k = np.asarray(model(x, training=False))
        o = sess.run(None, {name: x})[0]
        worst = max(worst, float(np.abs(k - o).max()))
    return worst


def export_bundle(folder: str | os.PathLike, *, force: bool = False) -> tuple[Path, float]:
    """Add ``model.onnx`` to bundle ``folder`` and record its hash in the card.

    Returns the ONNX file and the largest Keras/ONNX probability difference measured. With an
    existing ``model.onnx`` whose hash is already in the card nothing is done unless ``force``.
    """
    from .cards import CARD_FILE, CARD_VERSION, MODEL_FILE, ONNX_FILE, read_card

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BundleError(f"No model bundle at {folder}: expected a folder with {MODEL_FILE} and {CARD_FILE}.")
    card = read_card(folder)
    target = folder / ONNX_FILE
    if not force and target.is_file() and card["files"].get(ONNX_FILE) == sha256_file(target):
        return target, 0.0
    if card["frontend"].get("kind") == "seed162":  # the notebook's front end under its current name
        card["frontend"] = {**card["frontend"], "kind": "notebook162"}
    model = load_keras_model(folder, card)
    data = onnx_bytes(model, labels=card["labels"], frontend=card["frontend"], model_type=card["model_type"])
    diff = parity(model, data)
    if diff > PARITY_TOLERANCE:
        raise BundleError(f"The ONNX export of {folder} differs from its Keras model by {diff:.2e}: not saved.")
    atomic_write_bytes(target, data)
    files = dict(card["files"])
    files.setdefault(MODEL_FILE, sha256_file(folder / MODEL_FILE))
    files[ONNX_FILE] = sha256_file(target)
    card["files"] = files
    card["card_version"] = CARD_VERSION
    atomic_write_bytes(folder / CARD_FILE, dumps_json(card).encode())
    return target, diff
