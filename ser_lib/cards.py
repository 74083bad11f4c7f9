"""A bundle's card and file names: reading and checking ``card.json`` without loading a model.

The one I/O surface for bundles on disk (:mod:`ser_lib.bundle` loads and runs them): the file names,
:func:`read_card` (size, depth, UTF-8, field types, labels, front end), :func:`validate_card` for a
card in memory, :func:`check_backbone` (the encoder weights a card names are the installed ones),
and :func:`bundle_folder` (what a path given by a user means).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import EMOTIONS, MODEL_TYPE_ALIASES, MODEL_TYPES, default_model_path
from .errors import BundleError
from .frontends import frontend_from_settings

CARD_FILE = "card.json"
MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
EVALUATION_FILE = "evaluation.json"
#: 2: the network is also saved as ONNX (``model.onnx``), whose hash the card records.
CARD_VERSION = 2
_REQUIRED = ("card_version", "name", "model_type", "labels", "sample_rate", "frontend", "files", "created")
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "card_version": int,
    "name": str,
    "model_type": str,
    "labels": list,
    "sample_rate": int,
    "frontend": dict,
    "files": dict,
    "created": str,
    "training": dict,
    "metrics": dict,
    "backbone": (dict, type(None)),
    "scaler": (dict, type(None)),
    "calibration": (dict, type(None)),
    "decision": (dict, type(None)),
}
#: Largest card read (the shipped ones are about 10 KB) and its deepest nesting.
MAX_CARD_BYTES = 1 << 20
MAX_CARD_DEPTH = 12

#: Metadata keys written into every ``model.onnx`` (and checked against the card on load).
ONNX_META_LABELS = "ser_lib.labels"
ONNX_META_FRONTEND = "ser_lib.frontend"


def canonical_model_type(model_type: str) -> str:
    """The current name of a model type (``seed_cnn1d`` -> ``notebook_cnn1d``)."""
    return MODEL_TYPE_ALIASES.get(model_type, model_type)


def bundle_folder(path: str | os.PathLike | None = None) -> Path:
    """The bundle folder meant by ``path``: the folder itself, or the folder of its card or model file."""
    folder = Path(path).expanduser() if path else default_model_path()
    if folder.is_file() and folder.name in (CARD_FILE, MODEL_FILE, ONNX_FILE):
        folder = folder.parent
    return folder


def read_card(folder: str | os.PathLike) -> dict:
    """Read and check ``card.json`` in bundle ``folder`` (without loading the model).

    Raises
    ------
    BundleError
        When the card is missing, not UTF-8 JSON, not an object, or incomplete.
    """
    card_path = Path(folder) / CARD_FILE
    if not card_path.is_file():
        raise BundleError(f"The bundle {folder} has no {CARD_FILE}: it is incomplete; retrain or re-copy it.")
    size = card_path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise BundleError(f"The card {card_path} is {size:,} bytes, more than a card can be ({MAX_CARD_BYTES:,}): it is damaged.")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BundleError(f"The card {card_path} is not valid UTF-8 JSON ({type(exc).__name__}: {str(exc)[:200]}).") from exc
    return validate_card(card, folder)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counted without recursion (stops past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def validate_card(card: Any, folder: str | os.PathLike = "<card>") -> dict:
    """Check a card's fields and return it with its model type under its current name.

    Raises
    ------
    BundleError
        When the card is not an object, lacks a field, or has labels, files or a front end that
        cannot be right.
    """
    if not isinstance(card, dict):
        raise BundleError(f"The card in {folder} holds a JSON {type(card).__name__}, not an object: it is damaged.")
    if _depth(card, MAX_CARD_DEPTH) > MAX_CARD_DEPTH:
        raise BundleError(f"The card in {folder} is nested deeper than {MAX_CARD_DEPTH} levels: it is damaged.")
    missing = [k for k in _REQUIRED if k not in card]
    if missing:
        raise BundleError(f"The card in {folder} lacks {missing}: it was not written by ser_lib or is damaged.")
    wrong = [k for k, kinds in _FIELD_TYPES.items() if k in card and not isinstance(card[k], kinds)]
    if wrong:
        got = {k: type(card[k]).__name__ for k in wrong}
        raise BundleError(f"The card in {folder} has fields of the wrong type {got}: it is damaged.")
    labels = card["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(lab, str) for lab in labels):
        raise BundleError(f"The card in {folder} has labels={labels!r}: expected a list of emotion names.")
    unknown = [lab for lab in labels if lab not in EMOTIONS]
    if unknown or len(set(labels)) != len(labels):
        raise BundleError(f"The card in {folder} has labels {labels}: expected distinct names from {list(EMOTIONS)}.")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in card["files"].items()):
        raise BundleError(f"The card in {folder} has files={card['files']!r}: expected file names and SHA-256 strings.")
    card["model_type"] = canonical_model_type(card["model_type"])
    if card["model_type"] not in MODEL_TYPES:
        raise BundleError(f"The card in {folder} has model_type={card['model_type']!r}: expected one of {list(MODEL_TYPES)}.")
    fe = frontend_from_settings(card["frontend"])
    if card["sample_rate"] != fe.sample_rate:
        raise BundleError(
            f"The card in {folder} says sample_rate={card['sample_rate']} but its front end runs at {fe.sample_rate} Hz."
        )
    scaler = card.get("scaler")
    if scaler is not None:
        ok = isinstance(scaler, dict) and all(
            isinstance(scaler.get(k), list) and len(scaler[k]) == 162 for k in ("mean", "scale")
        )
        if not ok or not all(isinstance(x, (int, float)) and x > 0 for x in scaler["scale"]):
            raise BundleError(f"The card in {folder} has a damaged scaler: expected 162 means and 162 positive scales.")
    _check_calibration(card, folder)
    return card


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


def _check_calibration(card: dict, folder: str | os.PathLike) -> None:
    """The optional ``calibration`` (temperature scaling) and ``decision`` (uncertain threshold) fields.

    Cards written before calibration have neither and load unchanged.
    """
    cal = card.get("calibration")
    if cal is not None:
        if cal.get("method") != "temperature":
            raise BundleError(
                f"The card in {folder} has calibration method {cal.get('method')!r}: expected 'temperature'. "
                f"Fit it again with `python -m ser_lib calibrate {folder}`."
            )
        t = cal.get("temperature")
        if not _number(t) or not 0.05 <= t <= 20.0:
            raise BundleError(
                f"The card in {folder} has calibration temperature={t!r}: expected a number from 0.05 to 20 "
                f"(1 changes nothing). Fit it again with `python -m ser_lib calibrate {folder}`."
            )
        for key in ("ece_before", "ece_after"):
            if key in cal and not (_number(cal[key]) and 0.0 <= cal[key] <= 1.0):
                raise BundleError(f"The card in {folder} has calibration {key}={cal[key]!r}: expected a number from 0 to 1.")
    decision = card.get("decision")
    if decision is not None:
        u = decision.get("uncertain_below")
        if not _number(u) or not 0.0 <= u <= 1.0:
            raise BundleError(
                f"The card in {folder} has decision uncertain_below={u!r}: expected a probability from 0 to 1 "
                f"(0: never uncertain). Choose it again with `python -m ser_lib calibrate {folder}`."
            )


def check_backbone(card: dict, folder: Path | str = "<card>") -> None:
    """Raise :class:`BundleError` if the card's encoder is unknown or not the installed weights."""
    backbone = card.get("backbone")
    if card["frontend"].get("kind") == "encoder" and not backbone:
        raise BundleError(f"The card in {folder} uses an encoder front end but names no backbone and its hash: it is damaged.")
    if not backbone:
        return
    from .backbone import BACKBONES, weights_sha256

    name = backbone.get("name") if isinstance(backbone, dict) else None
    if name not in BACKBONES:
        raise BundleError(f"The card in {folder} names backbone {name!r}, which this version does not know.")
    if backbone.get("sha256") != weights_sha256(name):
        raise BundleError(
            f"The card in {folder} was trained on {name} weights with SHA-256 {backbone.get('sha256')}, "
            f"but the installed ones hash to {weights_sha256(name)}: retrain the head on these weights."
        )
    if card["frontend"].get("kind") != "encoder" or card["frontend"].get("sha256") != backbone["sha256"]:
        raise BundleError(f"The card in {folder} names encoder weights its front end does not use: it is damaged.")


def held_out_source(card: dict) -> str:
    """The name of the held-out run a card's figures come from (what :func:`carry_held_out_figures`
    wrote into ``metrics.source``: ``"held-out run NAME"``), or ``""`` when it names none."""
    return str(((card or {}).get("metrics") or {}).get("source") or "").removeprefix("held-out run").strip()


def carry_held_out_figures(card: dict, held_out: dict, folder: str | os.PathLike) -> dict | None:
    """Give a model trained on every speaker (``card``) the figures of its recipe's held-out run.

    ``held_out`` is the held-out run's card (from bundle ``folder``): its metrics (named in
    ``metrics.source``) and its training (``training.held_out_run``) go into ``card``, which is
    changed in place. Returns the held-out run's ``evaluation.json`` (its per-file predictions, to
    save with the model), or ``None`` if it has none.
    """
    card["metrics"] = dict(held_out.get("metrics", {}))
    card["metrics"]["source"] = f"held-out run {Path(folder).name}"
    card.setdefault("training", {})["held_out_run"] = held_out.get("training", {})
    ev = Path(folder) / EVALUATION_FILE
    return json.loads(ev.read_text()) if ev.is_file() else None
