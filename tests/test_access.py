"""A dashboard safe to share: the data folder stays inside the operator's roots, the shipped default
is replaced only when the operator allows it, damaged bundles are listed without breaking a page,
and a microphone conversation is bounded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from ser_lib.app import access
from ser_lib.app.model_view import bundle_folder_for, resolve_clip
from ser_lib.errors import BundleError, ParameterError

ROOT = Path(__file__).resolve().parent.parent


def test_the_data_folder_must_lie_inside_the_roots(tmp_path, monkeypatch):
    allowed = tmp_path / "corpora"
    (allowed / "ravdess").mkdir(parents=True)
    monkeypatch.setenv("SER_DATA_DIR", str(allowed))
    monkeypatch.delenv("SER_DATA_ROOTS", raising=False)
    assert access.data_roots() == [allowed.resolve()]
    assert access.check_data_folder(str(allowed / "ravdess")) == allowed / "ravdess"
    for outside in ("/tmp", "/", str(allowed / ".." / ".."), str(tmp_path)):
        with pytest.raises(ParameterError, match="outside the folders this dashboard may read .*SER_DATA_ROOTS"):
            access.check_data_folder(outside)
    link = allowed / "escape"
    link.symlink_to("/etc")  # a link inside the root pointing out of it is outside
    with pytest.raises(ParameterError, match="outside the folders"):
        access.check_data_folder(str(link))
    with pytest.raises(ParameterError, match="is empty"):
        access.check_data_folder("  ")
    monkeypatch.setenv("SER_DATA_ROOTS", f"{allowed}{os.pathsep}{tmp_path / 'more'}")
    assert access.check_data_folder(str(tmp_path / "more" / "x")) == tmp_path / "more" / "x"


def test_saved_predictions_play_only_audio_inside_the_roots(tmp_path, monkeypatch):
    inside, outside = tmp_path / "data" / "a.wav", tmp_path / "elsewhere" / "a.wav"
    for p in (inside, outside):
        p.parent.mkdir(parents=True)
        sf.write(p, np.zeros(1600, np.float32), 16_000)
    monkeypatch.setenv("SER_DATA_ROOTS", str(tmp_path / "data"))
    assert resolve_clip(str(inside)) == str(inside)
    assert resolve_clip(str(outside)) is None


def test_the_shipped_default_is_replaced_only_when_the_operator_allows(tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "logmel-cnn-heldout", models / "default")
    monkeypatch.setenv("SER_MODELS_DIR", str(models))
    monkeypatch.delenv("SER_ALLOW_DEFAULT_OVERWRITE", raising=False)
    with pytest.raises(BundleError, match="switched off.*SER_ALLOW_DEFAULT_OVERWRITE=1"):
        bundle_folder_for("default", overwrite=True)
    assert bundle_folder_for("mine") == models / "mine"  # visitors train new bundles under models/
    for escape in ("../x", "/etc/x", "a/b"):
        with pytest.raises(ParameterError, match="is not usable"):
            bundle_folder_for(escape)
    monkeypatch.setenv("SER_ALLOW_DEFAULT_OVERWRITE", "1")
    assert bundle_folder_for("default", overwrite=True) == models / "default"


def test_a_microphone_conversation_is_bounded(monkeypatch):
    from ser_lib.app.call_view import MicConversation
    from ser_lib.bundle import ModelBundle

    monkeypatch.setattr(access, "MAX_MIC_TURNS", 3)
    monkeypatch.setattr("ser_lib.app.call_view.MAX_MIC_TURNS", 3)
    import io

    conv = MicConversation(ModelBundle.load(ROOT / "models" / "logmel-cnn-heldout"))
    for k in range(3):
        buf = io.BytesIO()
        sf.write(buf, np.full(1600, 0.01 * (k + 1), np.float32), 16_000, format="WAV")
        assert conv.add(buf.getvalue(), name=f"turn{k}.wav")
    buf = io.BytesIO()
    sf.write(buf, np.full(1600, 0.5, np.float32), 16_000, format="WAV")
    with pytest.raises(ParameterError, match="holds 3 recordings .* start a new conversation"):
        conv.add(buf.getvalue())


def test_pages_refuse_a_folder_outside_the_roots_and_list_damaged_bundles(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "logmel-cnn-heldout", models / "good")
    (models / "broken").mkdir()
    (models / "broken" / "card.json").write_bytes(b'{"name": "\xff"}')
    monkeypatch.setenv("SER_DATA_DIR", str(data))
    monkeypatch.delenv("SER_DATA_ROOTS", raising=False)
    monkeypatch.setenv("SER_MODELS_DIR", str(models))
    monkeypatch.setenv("SER_MODEL", str(models / "good"))
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120)
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert "1 damaged bundle(s) left out: broken" in warnings and "not valid UTF-8 JSON" in warnings
    at.sidebar.text_input[0].set_value("/tmp").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "/tmp is outside the folders this dashboard may read" in errors
    assert at.session_state["shared_data_dir"] == str(data)  # back where the visitor may be
