"""Several bundles as one: the log-linear average of their probabilities.

Two heads on the same encoder frames, each good where the other is weak, make one bundle that
runs like any other (one ``model.onnx``, one card): the network feeds the frames to every member
and returns ``softmax(sum_i w_i * log p_i)`` (:class:`ser_lib.models.LogLinearPool`). The shipped
default is such a bundle: the four-corpus head (acted English) and the multi-corpus head (seven
corpora, loss masked per corpus); see ``benchmarks/RESULTS.md``. The encoder runs once, so a
second head adds under a millisecond to a 3 s clip's prediction (``benchmarks/bench_predict.py``:
network 0.8 ms -> 1.7 ms, against 140-165 ms for the whole prediction on a loaded machine).

The combined bundle's held-out figures come from its members' held-out predictions, combined file
by file (:func:`combine_predictions`): a file counts only where every member's held-out run
predicted it without having heard its speaker.

Examples
--------
>>> from ser_lib.ensemble import combine_probabilities
>>> import numpy as np
>>> combine_probabilities([np.array([[0.9, 0.1]]), np.array([[0.5, 0.5]])]).round(3)
array([[0.75, 0.25]])
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .cards import EVALUATION_FILE, ONNX_FILE, held_out_source, read_card
from .errors import BundleError, ParameterError
from .evaluation import evaluate_predictions

#: What a combined bundle's card says about how its members' probabilities are combined.
METHOD = "log-linear average (weighted geometric mean of the members' probabilities, renormalised)"
_EPS = 1e-7


def _weights(n: int, weights: Sequence[float] | None) -> np.ndarray:
    if n < 2:
        raise ParameterError(f"An ensemble needs at least two members; got {n}.")
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(list(weights), dtype=float)
    if len(w) != n:
        raise ParameterError(f"{len(w)} weight(s) for {n} members: give one weight per member.")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ParameterError(f"Ensemble weights must be non-negative numbers with a positive sum; got {list(w)}.")
    return w / w.sum()


def combine_probabilities(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The log-linear average of members' probabilities [shape=(n, k)] (equal weights by default).

    The same computation as the combined network (:class:`ser_lib.models.LogLinearPool`).
    """
    w = _weights(len(probs), weights)
    arrays = [np.asarray(p, dtype=np.float64) for p in probs]
    if len({a.shape for a in arrays}) != 1:
        raise ParameterError(f"Members' probabilities differ in shape: {[a.shape for a in arrays]}.")
    logits = sum(wi * np.log(np.clip(a, _EPS, 1.0)) for wi, a in zip(w, arrays, strict=True))
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=-1, keepdims=True)


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Per-file predictions with ``p_<label>`` columns: a bundle's ``evaluation.json`` (or its
    folder), or a CSV written by ``benchmarks/bench_multicorpus.py`` (``.csv`` or ``.csv.gz``)."""
    p = Path(path)
    if p.is_dir():
        p = p / EVALUATION_FILE
    if not p.is_file():
        raise ParameterError(f"No predictions at {p}: give a bundle folder with {EVALUATION_FILE}, or a predictions CSV.")
    try:
        if p.suffix == ".json":
            table = pd.DataFrame(json.loads(p.read_text()).get("predictions") or [])
        else:
            table = pd.read_csv(p)
    except (ValueError, OSError, AttributeError) as exc:
        raise ParameterError(f"Could not read predictions from {p}: {exc}") from exc
    missing = {"path", "emotion"} - set(table.columns)
    if missing or not any(c.startswith("p_") for c in table.columns):
        raise ParameterError(
            f"{p} has no per-file probabilities (needs path, emotion and p_<label> columns; has {list(table.columns)[:8]})."
        )
    return table


def _file_key(path: str) -> str:
    """A file's last three path parts (``crema-d/AudioWAV/1001_DFA_ANG_XX.wav``): the same file
    named from another working folder (``../shared/corpora/...`` or ``/work/shared/corpora/...``)
    still matches."""
    return "/".join(Path(str(path).replace("\\", "/")).parts[-3:])


def combine_predictions(
    tables: Sequence[pd.DataFrame], labels: Sequence[str], weights: Sequence[float] | None = None
) -> pd.DataFrame:
    """Combine members' per-file predictions on the files every table has (matched by the last
    three parts of ``path``, so tables written from different working folders still match).

    Returns the first table's ``path``, ``corpus``, ``speaker``, ``emotion`` with the combined
    ``predicted``, ``confidence`` and ``p_<label>`` columns, in the first table's order.

    Raises
    ------
    ParameterError
        If a table lacks a label's probabilities, the tables share no file, or they disagree on a
        file's emotion (they come from different data).
    """
    cols = [f"p_{lab}" for lab in labels]
    for i, t in enumerate(tables):
        lacking = [c for c in cols if c not in t]
        if lacking:
            raise ParameterError(f"Predictions table {i + 1} has no {lacking}: it was made by a model with other labels.")
    indexed = [t.assign(_key=t["path"].map(_file_key)).drop_duplicates("_key").set_index("_key") for t in tables]
    common = indexed[0].index
    for t in indexed[1:]:
        common = common[common.isin(t.index)]
    if len(common) == 0:
        raise ParameterError("The predictions tables share no file: they were not made on the same held-out clips.")
    first = indexed[0].loc[common]
    for i, t in enumerate(indexed[1:], start=2):
        differ = (t.loc[common, "emotion"].astype(str).to_numpy() != first["emotion"].astype(str).to_numpy()).sum()
        if differ:
            raise ParameterError(f"Predictions table {i} labels {differ} shared file(s) with another emotion than table 1.")
    probs = combine_probabilities([t.loc[common, cols].to_numpy(float) for t in indexed], weights)
    keep = [c for c in ("path", "corpus", "speaker", "emotion") if c in first]
    out = first[keep].reset_index(drop=True)
    out["predicted"] = [labels[k] for k in probs.argmax(axis=1)]
    out["confidence"] = probs.max(axis=1)
    for k, c in enumerate(cols):
        out[c] = probs[:, k]
    return out


def _held_out_run(card: dict) -> tuple[str, dict]:
    """A member's held-out run: its own training (when it held speakers out) or ``held_out_run``."""
    training = card.get("training") or {}
    if training.get("test_speakers"):
        return str(card.get("name", "?")), training
    run = training.get("held_out_run") or {}
    return (held_out_source(card) or f"{card.get('name', '?')}'s held-out run"), run


def _union(*lists) -> list[str]:
    return sorted({x for lst in lists for x in (lst or [])})


def combine_bundles(
    folders: Sequence[str | os.PathLike],
    *,
    weights: Sequence[float] | None = None,
    predictions: Sequence[str | os.PathLike] | None = None,
):
    """One bundle running every member in ``folders`` on the same input and combining their probabilities.

    Parameters
    ----------
    folders : list of bundle folders
        Members with the same labels (in the same order), front end and input; each needs its
        ``model.keras`` (their ONNX files are not combined).
    weights : list of float or None
        One per member, normalised to sum to one; equal by default.
    predictions : list of paths or None
        One per member: its held-out run's per-file predictions (:func:`read_predictions`); by
        default each member's ``evaluation.json``. Combined on the files they share, they give the
        new bundle's held-out figures and ``evaluation.json`` (which ``calibrate`` then uses).

    Returns
    -------
    (ModelBundle, EvaluationResult or None)
        The unsaved bundle (save it with :meth:`~ser_lib.bundle.ModelBundle.save`) and its
        combined held-out evaluation (``None`` when a member has no held-out predictions).
    """
    from .bundle import ModelBundle
    from .cards import bundle_folder
    from .export import _keras, load_keras_model
    from .frontends import frontend_from_settings
    from .models import LogLinearPool

    paths = [bundle_folder(f) for f in folders]
    w = _weights(len(paths), weights)
    cards = [read_card(p) for p in paths]
    for p, c in zip(paths[1:], cards[1:], strict=True):
        if list(c["labels"]) != list(cards[0]["labels"]):
            raise BundleError(
                f"{p} predicts {c['labels']} but {paths[0]} predicts {cards[0]['labels']}: members need the same labels."
            )
        if frontend_from_settings(c["frontend"]) != frontend_from_settings(cards[0]["frontend"]):
            raise BundleError(f"{p} reads another front end than {paths[0]}: members must read the same input.")
        if c.get("scaler") != cards[0].get("scaler"):
            raise BundleError(f"{p} scales its features differently from {paths[0]}: members must share their input scaling.")
    keras = _keras()
    models = [load_keras_model(p, c) for p, c in zip(paths, cards, strict=True)]
    shapes = {tuple(m.input_shape[1:]) for m in models}
    if len(shapes) != 1:
        raise BundleError(f"The members take inputs of different shapes {sorted(shapes)}: they cannot share one input.")
    inputs = keras.Input(shape=models[0].input_shape[1:], name="frames")
    outs = []
    for i, m in enumerate(models):
        member = keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i + 1}")  # unique names in the combined graph
        outs.append(member(inputs))
    network = keras.Model(inputs, LogLinearPool([float(x) for x in w], name="log_linear_average")(outs), name="ensemble")

    members, runs = [], []
    for p, c, wi in zip(paths, cards, w, strict=True):
        t = c.get("training") or {}
        run_name, run = _held_out_run(c)
        runs.append((run_name, run))
        members.append(
            {
                "name": p.name,
                "weight": round(float(wi), 6),
                "model_type": c.get("model_type"),
                "onnx_sha256": (c.get("files") or {}).get(ONNX_FILE),
                "corpora": t.get("corpora", []),
                "n_files": t.get("n_files"),
                "split": t.get("split"),
                "sampling": t.get("sampling", "uniform"),
                "loss_masking": bool(t.get("loss_masking")),
                "config": t.get("config", {}),
                "command": t.get("command"),
                "held_out_run": run_name,
                "temperature_ignored": (c.get("calibration") or {}).get("temperature"),
            }
        )
    trainings = [c.get("training") or {} for c in cards]
    splits = {t.get("split") for t in trainings}
    training = {
        "corpora": _union(*[t.get("corpora") for t in trainings]),
        "n_files": max(int(t.get("n_files") or 0) for t in trainings),
        "n_train_files": max(int(t.get("n_train_files") or 0) for t in trainings),
        "n_test_files": 0,
        "split": splits.pop() if len(splits) == 1 else "mixed",
        "train_speakers": _union(*[t.get("train_speakers") for t in trainings]),
        "test_speakers": [],
        "config": {"model_type": cards[0]["model_type"], "ensemble": True},
        "ensemble": {"method": METHOD, "weights": [round(float(x), 6) for x in w], "members": members},
    }
    heard = set(training["train_speakers"])
    training["test_speakers"] = sorted(set(_union(*[t.get("test_speakers") for t in trainings])) - heard)
    if all(run for _, run in runs):
        run_train = _union(*[r.get("train_speakers") for _, r in runs])
        training["held_out_run"] = {
            "corpora": _union(*[r.get("corpora") for _, r in runs]),
            "split": "speaker",
            "train_speakers": run_train,
            "test_speakers": sorted(set(_union(*[r.get("test_speakers") for _, r in runs])) - set(run_train)),
            "config": {"model_type": cards[0]["model_type"], "ensemble": True},
            "members": [name for name, _ in runs],
        }
    card_frontend = frontend_from_settings(cards[0]["frontend"])
    bundle = ModelBundle.create(
        network,
        name="unsaved",
        model_type=cards[0]["model_type"],
        labels=cards[0]["labels"],
        frontend=card_frontend,
        training=training,
        scaler=cards[0].get("scaler"),
    )

    evaluation = None
    sources = list(predictions) if predictions is not None else [p / EVALUATION_FILE for p in paths]
    if len(sources) != len(paths):
        raise ParameterError(f"{len(sources)} predictions file(s) for {len(paths)} members: give one per member.")
    if all(Path(s).exists() for s in sources):
        labels = list(cards[0]["labels"])
        table = combine_predictions([read_predictions(s) for s in sources], labels, w)
        protocol = "speaker"
        evaluation = evaluate_predictions(table, labels, meta={"protocol": protocol, "model": "ensemble"})
        bundle.card["metrics"] = {
            "protocol": protocol,
            "overall": evaluation.overall,
            "per_corpus": evaluation.per_corpus,
            "source": "held-out run " + " + ".join(name for name, _ in runs),
            "combined_from": [str(s) for s in sources],
        }
    else:
        missing = [str(s) for s in sources if not Path(s).exists()]
        bundle.card["metrics"] = {"held_out": False, "note": f"No held-out predictions to combine ({', '.join(missing)})."}
    return bundle, evaluation


def is_ensemble(card: dict) -> bool:
    """Whether a card describes a combined bundle."""
    return bool(((card or {}).get("training") or {}).get("ensemble"))


__all__ = [
    "METHOD",
    "combine_bundles",
    "combine_predictions",
    "combine_probabilities",
    "is_ensemble",
    "read_predictions",
]
