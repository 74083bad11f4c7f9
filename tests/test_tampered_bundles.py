"""Bundles that cannot lie: tampered and damaged bundles are refused with a clear BundleError, or
(for edits that change nothing the model depends on) load and answer exactly as the original.

Never: another exception type (a traceback in the CLI or on a page), or a label or model swap
accepted silently. Each case is one way a card, the ONNX file or the Keras file can be damaged
by accident or on purpose; :func:`test_every_tampered_bundle_is_refused_or_harmless` runs them all
and ``test_the_catalogue_is_large_enough`` keeps their number at 30 or more.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ser_lib.bundle import ModelBundle, list_bundles
from ser_lib.config import EMOTIONS, MODELS_DIR
from ser_lib.errors import BundleError
from ser_lib.io import sha256_file


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A saved notebook bundle (with a scaler) and the shipped encoder default, copied."""
    from ser_lib import models
    from ser_lib.bundle import ModelBundle as MB
    from ser_lib.frontends import NotebookFrontEnd

    root = tmp_path_factory.mktemp("originals")
    rng = np.random.default_rng(0)
    scaler = {"mean": rng.normal(size=162).tolist(), "scale": rng.uniform(0.5, 2, 162).tolist()}
    nb = MB.create(
        models.notebook_cnn1d((162, 1), len(EMOTIONS)),
        name="nb",
        model_type="notebook_cnn1d",
        labels=list(EMOTIONS),
        frontend=NotebookFrontEnd(),
        scaler=scaler,
    ).save(root / "nb")
    enc = root / "enc"
    shutil.copytree(MODELS_DIR / "default", enc)
    return {"nb": nb, "enc": enc}


def _card(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text())


def _write_card(folder: Path, card) -> None:
    (folder / "card.json").write_text(json.dumps(card))


def _edit(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        card = _card(folder)
        fn(card)
        _write_card(folder, card)

    return apply


def _swap_labels(card):
    card["labels"][0], card["labels"][4] = card["labels"][4], card["labels"][0]


def _rehash(name: str):
    def fix(folder: Path) -> None:
        card = _card(folder)
        card["files"][name] = sha256_file(folder / name)
        _write_card(folder, card)

    return fix


def _both(*steps):
    def apply(folder: Path) -> None:
        for step in steps:
            step(folder)

    return apply


def _onnx_from(other: str):
    """Replace model.onnx with another bundle's, and make the card's hash agree (a deliberate swap)."""

    def apply(folder: Path) -> None:
        shutil.copyfile(MODELS_DIR / other / "model.onnx", folder / "model.onnx")
        _rehash("model.onnx")(folder)

    return apply


def _bytes(name: str, data: bytes):
    def apply(folder: Path) -> None:
        (folder / name).write_bytes(data)

    return apply


def _truncate(name: str, keep: float):
    def apply(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])

    return apply


def _flip(name: str):
    def apply(folder: Path) -> None:
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / name).write_bytes(bytes(data))

    return apply


def _deep(card):
    nested: dict = {}
    cur = nested
    for _ in range(50):
        cur["x"] = {}
        cur = cur["x"]
    card["training"] = nested


#: (name, which original, the tampering, what must happen: a regex for the BundleError, or None when
#: the bundle must load and answer exactly as the original)
CASES: list[tuple[str, str, Callable[[Path], None], str | None]] = [
    ("labels swapped", "nb", _edit(_swap_labels), "was trained with labels"),
    ("labels swapped (encoder)", "enc", _edit(_swap_labels), "was trained with labels"),
    ("labels reversed", "nb", _edit(lambda c: c["labels"].reverse()), "was trained with labels"),
    ("a label renamed", "nb", _edit(lambda c: c["labels"].__setitem__(2, "bored")), "expected distinct names"),
    ("a label duplicated", "nb", _edit(lambda c: c["labels"].__setitem__(2, "sad")), "expected distinct names"),
    ("labels dropped", "nb", _edit(lambda c: c.__setitem__("labels", ["neutral", "sad"])), "predicts 8 classes"),
    ("labels not a list", "nb", _edit(lambda c: c.__setitem__("labels", "neutral,sad")), "wrong type"),
    ("labels empty", "nb", _edit(lambda c: c.__setitem__("labels", [])), "expected a list of emotion names"),
    ("labels missing", "nb", _edit(lambda c: c.pop("labels")), "lacks"),
    ("front end missing", "nb", _edit(lambda c: c.pop("frontend")), "lacks"),
    ("front end kind unknown", "nb", _edit(lambda c: c["frontend"].__setitem__("kind", "mfcc")), "Unknown front end"),
    ("front end crop changed", "nb", _edit(lambda c: c["frontend"].__setitem__("duration", 4.0)), "was trained on front end"),
    ("front end rate changed", "nb", _edit(lambda c: c["frontend"].__setitem__("sample_rate", 16000)), "sample_rate"),
    (
        "front end bogus field",
        "nb",
        _edit(lambda c: c["frontend"].__setitem__("offset", "soon")),
        "was trained on front end|do not fit",
    ),
    (
        "front end kind swapped to log-mel",
        "nb",
        _edit(lambda c: c.__setitem__("frontend", {"kind": "logmel"})),
        "was trained on front end|sample_rate",
    ),
    ("backbone removed", "enc", _edit(lambda c: c.__setitem__("backbone", None)), "names no backbone"),
    ("backbone hash removed", "enc", _edit(lambda c: c["backbone"].pop("sha256")), "retrain the head"),
    ("backbone hash changed", "enc", _edit(lambda c: c["backbone"].__setitem__("sha256", "0" * 64)), "retrain the head"),
    ("backbone unknown", "enc", _edit(lambda c: c["backbone"].__setitem__("name", "whisper-huge")), "does not know"),
    (
        "backbone on a notebook card",
        "nb",
        _edit(lambda c: c.__setitem__("backbone", {"name": "whisper-base", "sha256": "x"})),
        "retrain the head|not use",
    ),
    ("scaler wrong length", "nb", _edit(lambda c: c["scaler"].__setitem__("mean", [0.0] * 40)), "damaged scaler"),
    ("scaler zero scale", "nb", _edit(lambda c: c["scaler"]["scale"].__setitem__(3, 0.0)), "damaged scaler"),
    ("model type unknown", "nb", _edit(lambda c: c.__setitem__("model_type", "transformer")), "model_type"),
    ("onnx hash removed", "nb", _edit(lambda c: c["files"].pop("model.onnx")), "records no hash"),
    ("onnx hash wrong", "nb", _edit(lambda c: c["files"].__setitem__("model.onnx", "0" * 64)), "does not match its card"),
    ("files not an object", "nb", _edit(lambda c: c.__setitem__("files", ["model.onnx"])), "wrong type"),
    ("files hash not a string", "nb", _edit(lambda c: c["files"].__setitem__("model.onnx", 5)), "SHA-256 strings"),
    ("card not UTF-8", "nb", _bytes("card.json", b'{"name": "\xff\xfe"}'), "not valid UTF-8 JSON"),
    ("card not JSON", "nb", _bytes("card.json", b"{not json"), "not valid UTF-8 JSON"),
    ("card a list", "nb", _bytes("card.json", b"[1, 2, 3]"), "not an object"),
    ("card empty file", "nb", _bytes("card.json", b""), "not valid UTF-8 JSON"),
    ("card huge", "nb", _bytes("card.json", b'{"pad": "' + b"x" * (2 << 20) + b'"}'), "more than a card can be"),
    ("card nested 50 deep", "nb", _edit(_deep), "nested deeper than"),
    ("card nested 100,000 deep", "nb", _bytes("card.json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000), "not valid UTF-8 JSON"),
    ("card version a string", "nb", _edit(lambda c: c.__setitem__("card_version", "2")), "wrong type"),
    ("card removed", "nb", lambda f: (f / "card.json").unlink(), "has no card.json"),
    ("onnx removed", "nb", lambda f: (f / "model.onnx").unlink(), "export-onnx"),
    ("onnx empty", "nb", _both(_bytes("model.onnx", b""), _rehash("model.onnx")), "is empty"),
    (
        "onnx garbage, hash updated",
        "nb",
        _both(_bytes("model.onnx", b"\x08\x07garbage" * 50), _rehash("model.onnx")),
        "ONNX Runtime could not load",
    ),
    ("onnx truncated", "nb", _truncate("model.onnx", 0.5), "does not match its card"),
    (
        "onnx truncated, hash updated",
        "nb",
        _both(_truncate("model.onnx", 0.5), _rehash("model.onnx")),
        "ONNX Runtime could not load",
    ),
    ("onnx byte flipped", "nb", _flip("model.onnx"), "does not match its card"),
    ("onnx of another model type, hash updated", "nb", _onnx_from("logmel-cnn-heldout"), "was trained on front end"),
    ("onnx of another encoder head, hash updated", "enc", _onnx_from("encoder-head-heldout"), None),
    ("keras file removed", "nb", lambda f: (f / "model.keras").unlink(), None),
    ("evaluation removed", "nb", lambda f: (f / "evaluation.json").unlink(missing_ok=True), None),
    ("metrics edited", "nb", _edit(lambda c: c.__setitem__("metrics", {"overall": {"UA": 0.99}})), None),
    ("renamed in the card", "nb", _edit(lambda c: c.__setitem__("name", "something else")), None),
]


def _run(case, originals, tmp_path):
    name, which, tamper, expect = case
    folder = tmp_path / "bundle"
    shutil.copytree(originals[which], folder)
    tamper(folder)
    return folder, expect


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_tampered_bundle_is_refused_or_harmless(case, originals, tmp_path):
    folder, expect = _run(case, originals, tmp_path)
    if expect is not None:
        with pytest.raises(BundleError, match=expect):
            ModelBundle.load(folder)
        return
    # harmless edits, and one swap the library cannot tell from a retrain (another head of the same
    # architecture, labels and front end, with the card's hash updated on purpose): it loads, and
    # it answers with the network it holds (what the ONNX file computes), never with mixed labels.
    loaded = ModelBundle.load(folder)
    x = np.random.default_rng(1).normal(size=(2, 162, 1) if case[1] == "nb" else (2, 150, 512)).astype(np.float32)
    got = loaded.probabilities_from_features(list(x))
    import onnxruntime as ort

    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, sess.run(None, {sess.get_inputs()[0].name: x})[0], atol=1e-6)
    assert loaded.labels == list(EMOTIONS)


def test_the_catalogue_is_large_enough():
    refused = [c for c in CASES if c[3] is not None]
    assert len(CASES) >= 30 and len(refused) >= 30


def test_a_keras_zip_bomb_is_refused_before_extraction(originals, tmp_path):
    from ser_lib.export import check_keras_zip, load_keras_model

    folder = tmp_path / "bomb"
    shutil.copytree(originals["nb"], folder)
    with zipfile.ZipFile(folder / "model.keras", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.weights.h5", b"\0" * (64 << 20))  # 64 MB of zeros in about 64 KB
    with pytest.raises(BundleError, match="zip bomb"):
        check_keras_zip(folder / "model.keras")
    with pytest.raises(BundleError, match="zip bomb"):
        load_keras_model(folder)
    (folder / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a readable zip"):
        load_keras_model(folder)
    (folder / "model.keras").write_bytes(b"")
    with pytest.raises(BundleError, match="is empty"):
        load_keras_model(folder)


def test_a_damaged_bundle_is_listed_as_damaged_and_never_hides_the_others(originals, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(originals["nb"], root / "good")
    for i, case in enumerate(
        c for c in CASES if c[0] in ("card not UTF-8", "card nested 100,000 deep", "card a list", "card huge")
    ):
        shutil.copytree(originals["nb"], root / f"bad{i}")
        case[2](root / f"bad{i}")
    assert [b.name for b in list_bundles(root)] == ["good"]
    listed = list_bundles(root, include_damaged=True)
    assert [b.name for b in listed] == ["bad0", "bad1", "bad2", "bad3", "good"]
    assert all(b.error and not b.ok for b in listed[:4]) and listed[4].ok


def test_the_cli_reports_a_tampered_bundle_in_one_line(originals, tmp_path, capsys, synth):
    import soundfile as sf

    from ser_lib.cli import main

    folder = tmp_path / "bundle"
    shutil.copytree(originals["nb"], folder)
    _edit(_swap_labels)(folder)
    clip = tmp_path / "clip.wav"
    sf.write(clip, synth.voice(2.0, sr=16_000, f0=150), 16_000)
    assert main(["predict", str(clip), "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "was trained with labels" in err and "Traceback" not in err
