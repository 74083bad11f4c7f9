"""A saved encoder head run with NumPy, so a call analysis does not need TensorFlow.

Analysing a call needs the Whisper encoder (CTranslate2) and a small head on its frames. Loading
the head through Keras imports TensorFlow, which alone takes about 460 MB of memory and 5 s to
import: more than everything else a call analysis uses. :class:`NumpyHead` reads the same
``model.keras`` file (its ``config.json`` and the weights in ``model.weights.h5``, with h5py) and
computes the same forward pass for the layers the project's heads are made of: LayerNormalization,
Conv1D, Dense, attentive and plain statistics pooling, and the layers that do nothing at inference
(dropout, masking). A model with any other layer is not converted (:meth:`NumpyHead.from_keras_file`
returns ``None``) and is run by Keras as usual.

:func:`load_for_calls` is what the call commands use: a :class:`LiteBundle` (the bundle interface,
head in NumPy) when the bundle is an encoder head NumPy can run, else :meth:`ModelBundle.load`.
Both give the same probabilities to about 1e-6.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from .config import default_model_path
from .errors import BundleError

logger = logging.getLogger(__name__)

_IDENTITY = {"InputLayer", "TimeMasking", "SpatialDropout1D", "Dropout", "GaussianNoise", "GaussianDropout", "ActivityRegularization"}
_WEIGHTED = {"LayerNormalization", "Conv1D", "Dense", "AttentiveStatsPooling"}
_OTHER = {"StatsPooling", "GlobalAveragePooling1D", "Activation", "AveragePooling1D"}


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _activation(name) -> Callable[[np.ndarray], np.ndarray] | None:
    if isinstance(name, dict):  # a serialised activation object
        name = (name.get("config") or {}).get("name", name.get("class_name"))
    table = {
        None: lambda x: x,
        "linear": lambda x: x,
        "relu": lambda x: np.maximum(x, 0.0),
        "tanh": np.tanh,
        "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
        "softmax": _softmax,
        "swish": lambda x: x / (1.0 + np.exp(-x)),
        "silu": lambda x: x / (1.0 + np.exp(-x)),
        "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    }
    return table.get(name)


def _snake(name: str) -> str:
    """Keras's ``to_snake_case``: how it names a layer's group in ``model.weights.h5``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


class NumpyHead:
    """The forward pass of a chain of Keras layers, in NumPy: ``(batch, time, dim) -> (batch, classes)``."""

    def __init__(self, steps: list[Callable[[np.ndarray], np.ndarray]], *, n_outputs: int):
        self.steps = steps
        self.n_outputs = n_outputs

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        for step in self.steps:
            x = step(x)
        return x

    @classmethod
    def from_keras_file(cls, path: str | os.PathLike) -> "NumpyHead | None":
        """Build the head from a ``.keras`` file, or ``None`` when it holds a layer NumPy cannot run."""
        try:
            import h5py
        except ImportError:  # pragma: no cover - installed with Keras
            return None
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            weights = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
        layers = (config.get("config") or {}).get("layers")
        if config.get("class_name") not in ("Functional", "Sequential", "Model") or not layers:
            return None
        counters: dict[str, int] = {}
        steps: list[Callable] = []
        previous = None
        n_out = None
        try:
            for layer in layers:
                kind, cfg = layer["class_name"], layer["config"]
                if kind not in _IDENTITY | _WEIGHTED | _OTHER:
                    logger.info("NumPy head: layer %s is not supported; Keras runs this model", kind)
                    return None
                if previous is not None and not _follows(layer, previous):
                    return None  # not a simple chain
                previous = cfg.get("name")
                base = _snake(kind)
                k = counters.get(base, 0)
                counters[base] = k + 1
                group = weights["layers"].get(base if k == 0 else f"{base}_{k}") if "layers" in weights else None
                step, n = _step(kind, cfg, group)
                if step is False:
                    return None
                if step is not None:
                    steps.append(step)
                if n:
                    n_out = n
        finally:
            weights.close()
        outputs = config["config"].get("output_layers") or []
        if outputs and isinstance(outputs[0], str):  # one output: ["name", 0, 0]
            outputs = [outputs]
        if len(outputs) != 1 or outputs[0][0] != previous:
            return None
        return cls(steps, n_outputs=n_out or 0)


def _follows(layer: dict, previous: str) -> bool:
    """Whether ``layer``'s only input is the layer named ``previous`` (Keras 3 functional config)."""
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) != 1:
        return False
    names: list[str] = []

    def visit(o) -> None:
        if isinstance(o, dict):
            if o.get("class_name") == "__keras_tensor__":
                names.append(o["config"]["keras_history"][0])
                return
            for v in o.values():
                visit(v)
        elif isinstance(o, list):
            for v in o:
                visit(v)

    visit(nodes[0])
    return names == [previous]


def _vars(group, n: int) -> list[np.ndarray] | None:
    if group is None or "vars" not in group or len(group["vars"]) != n:
        return None
    return [np.asarray(group["vars"][str(i)], dtype=np.float32) for i in range(n)]


def _step(kind: str, cfg: dict, group):
    """(function, output units) for one layer; ``(None, 0)`` for identities, ``(False, 0)`` if unsupported."""
    if kind in _IDENTITY:
        return None, 0
    if kind == "Activation":
        f = _activation(cfg.get("activation"))
        return (f if f is not None else False), 0
    if kind == "GlobalAveragePooling1D":
        return (lambda x: x.mean(axis=1)), 0
    if kind == "StatsPooling":
        return _stats_pooling, 0
    if kind == "AveragePooling1D":
        pool = list(cfg.get("pool_size", [2]))[0]
        stride = list(cfg.get("strides") or [pool])[0]
        padding = cfg.get("padding", "valid")
        if padding not in ("same", "valid") or cfg.get("data_format", "channels_last") != "channels_last":
            return False, 0
        return (lambda x: _average_pool(x, pool=int(pool), stride=int(stride), same=padding == "same")), 0
    if kind == "LayerNormalization":
        axis = cfg.get("axis", -1)
        if axis not in (-1, [-1]) or not cfg.get("center", True) or not cfg.get("scale", True):
            return False, 0
        v = _vars(group, 2)
        if v is None:
            return False, 0
        gamma, beta = v
        eps = float(cfg.get("epsilon", 1e-3))

        def layer_norm(x):
            mean = x.mean(axis=-1, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
            return (x - mean) / np.sqrt(var + eps) * gamma + beta

        return layer_norm, 0
    if kind == "Dense":
        f = _activation(cfg.get("activation"))
        v = _vars(group, 2 if cfg.get("use_bias", True) else 1)
        if f is None or v is None:
            return False, 0
        w, b = v[0], (v[1] if len(v) > 1 else 0.0)
        return (lambda x: f(_matmul(x, w) + b)), int(w.shape[1])
    if kind == "Conv1D":
        f = _activation(cfg.get("activation"))
        if f is None or list(cfg.get("strides", [1])) != [1] or list(cfg.get("dilation_rate", [1])) != [1]:
            return False, 0
        if cfg.get("groups", 1) != 1 or cfg.get("data_format", "channels_last") != "channels_last":
            return False, 0
        padding = cfg.get("padding", "valid")
        if padding not in ("same", "valid", "causal"):
            return False, 0
        v = _vars(group, 2 if cfg.get("use_bias", True) else 1)
        if v is None:
            return False, 0
        kernel, bias = v[0], (v[1] if len(v) > 1 else 0.0)
        k = kernel.shape[0]
        left = {"same": (k - 1) // 2, "valid": 0, "causal": k - 1}[padding]
        right = {"same": k - 1 - (k - 1) // 2, "valid": 0, "causal": 0}[padding]

        flat = np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]))  # (k * in, filters)

        def conv1d(x):
            xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
            t = xp.shape[1] - k + 1
            cols = np.concatenate([xp[:, j : j + t, :] for j in range(k)], axis=-1)  # im2col: one GEMM
            return f(_matmul(cols, flat) + bias)

        return conv1d, 0
    if kind == "AttentiveStatsPooling":
        if group is None:
            return False, 0
        hidden, score = _vars(group.get("hidden"), 2), _vars(group.get("score"), 2)
        if hidden is None or score is None:
            return False, 0
        (wh, bh), (ws, bs) = hidden, score

        def attentive(x):
            w = _softmax(_matmul(np.tanh(_matmul(x, wh) + bh), ws) + bs, axis=1)
            mean = (w * x).sum(axis=1)
            var = (w * x * x).sum(axis=1) - mean**2
            return np.concatenate([mean, np.sqrt(np.maximum(var, 1e-6))], axis=-1)

        return attentive, 0
    return False, 0


def _matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` over the last axis as one contiguous 2-D GEMM (much faster than a stacked matmul)."""
    flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    return (flat @ w).reshape(*x.shape[:-1], w.shape[-1])


def _average_pool(x: np.ndarray, *, pool: int, stride: int, same: bool) -> np.ndarray:
    """Keras/TensorFlow ``AveragePooling1D`` over axis 1; with "same" padding the padded
    positions are left out of each average, as TensorFlow does."""
    t = x.shape[1]
    if same:
        out = -(-t // stride)
        left = max((out - 1) * stride + pool - t, 0) // 2
    else:
        out = (t - pool) // stride + 1
        left = 0
    starts = np.arange(out) * stride - left
    a, b = np.clip(starts, 0, t), np.clip(starts + pool, 0, t)
    cs = np.concatenate([np.zeros_like(x[:, :1], dtype=np.float64), np.cumsum(x, axis=1, dtype=np.float64)], axis=1)
    return ((cs[:, b] - cs[:, a]) / (b - a)[None, :, None]).astype(np.float32)


def _stats_pooling(x):
    mean = x.mean(axis=1)
    return np.concatenate([mean, np.sqrt(np.maximum(x.var(axis=1), 1e-6))], axis=-1)


def _one_blas_thread():
    """BLAS on one thread for the head's small products: on a busy two-core machine two OpenBLAS
    threads spin against the encoder and other work and are several times slower than one."""
    controller = _blas_controller()
    if controller is None:  # pragma: no cover - threadpoolctl comes with scikit-learn
        from contextlib import nullcontext

        return nullcontext()
    return controller.limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return None
    return ThreadpoolController()  # scans the loaded libraries once


def _bundle_class():
    from .bundle import ModelBundle

    class LiteBundle(ModelBundle):
        """A :class:`~ser_lib.bundle.ModelBundle` whose head runs in NumPy (no TensorFlow).

        Everything a call analysis uses works as in the parent (labels, frames, encoder,
        probabilities); saving does not (retrain or copy the bundle folder instead).
        """

        def _run(self, batch: np.ndarray) -> np.ndarray:
            with _one_blas_thread():
                return np.asarray(self.model(batch), dtype=np.float64)

        def save(self, *args, **kwargs):
            raise BundleError("A bundle loaded for call analysis (NumPy head) cannot be saved: load it with ModelBundle.load")

    return LiteBundle


def load_for_calls(path: str | os.PathLike | None = None, *, numpy_head: bool = True):
    """The bundle in ``path`` for call analysis: its head in NumPy when possible, else through Keras.

    The card is checked as :meth:`ModelBundle.load` checks it (fields, labels, backbone, the
    model file's SHA-256) before anything is used.
    """
    from .bundle import CARD_FILE, MODEL_FILE, ModelBundle

    folder = Path(path).expanduser() if path else default_model_path()
    card_path, model_path = folder / CARD_FILE, folder / MODEL_FILE
    if not numpy_head or not card_path.is_file() or not model_path.is_file():
        return ModelBundle.load(path)  # its errors explain what is missing
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError):
        return ModelBundle.load(path)
    if (card.get("frontend") or {}).get("kind") != "encoder":
        return ModelBundle.load(path)
    ModelBundle.check_card(card, folder)
    expected = (card.get("files") or {}).get(MODEL_FILE)
    if expected and hashlib.sha256(model_path.read_bytes()).hexdigest() != expected:
        return ModelBundle.load(path)  # raises the bundle's own mismatch error
    try:
        head = NumpyHead.from_keras_file(model_path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        logger.info("NumPy head not built for %s (%s); using Keras", model_path, exc)
        head = None
    if head is None or head.n_outputs != len(card["labels"]):
        return ModelBundle.load(path)
    return _bundle_class()(head, card, path=folder)
