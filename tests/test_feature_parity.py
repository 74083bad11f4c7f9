"""One feature path: what a bundle computes when it serves a file equals what its training
extractor stored for the same file, for every model type and for files at 16, 44.1 and 48 kHz.

Tolerances: the notebook's features are computed by the same code on the same decoded samples,
so they agree to float32 round-off (1e-6 relative). The log-mel and encoder extractors store
float16 (half the cache), so serving's float32 values agree to float16 rounding: 2e-3 of each
value's magnitude (float16 keeps 11 significant bits: 4.9e-4 relative), plus 2e-3 absolute.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import voice
from ser_lib.audio import load_audio
from ser_lib.bundle import ModelBundle
from ser_lib.config import EMOTIONS
from ser_lib.featurize import EncoderExtractor, LogMelExtractor, NotebookExtractor
from ser_lib.frontends import EncoderFrontEnd, LogMelFrontEnd, NotebookFrontEnd


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The same 3.5 s of speech-like audio written at 48 kHz (WAV), 44.1 kHz (FLAC) and 16 kHz (WAV)."""
    folder = tmp_path_factory.mktemp("rates")
    out = {}
    for sr, ext in ((48_000, "wav"), (44_100, "flac"), (16_000, "wav")):
        y = voice(3.5, sr=sr, f0=150.0, seed=4)
        rng = np.random.default_rng(0)
        y = (y + 0.01 * rng.standard_normal(len(y))).astype(np.float32)  # broadband: energy above 8 kHz too
        path = folder / f"clip_{sr}.{ext}"
        sf.write(path, y, sr)
        out[sr] = str(path)
    return out


def _bundle(tmp_path_factory, model_type: str, fe, scaler=None) -> ModelBundle:
    from ser_lib import models

    build = {
        "notebook_cnn1d": lambda: models.notebook_cnn1d((162, 1), len(EMOTIONS)),
        "logmel_cnn": lambda: models.logmel_cnn((fe.n_frames, fe.n_mels), len(EMOTIONS)),
        "encoder_head": lambda: models.encoder_head((None, 512), len(EMOTIONS)),
    }[model_type]
    card = dict(name=model_type, model_type=model_type, labels=list(EMOTIONS), frontend=fe, scaler=scaler)
    bundle = ModelBundle.create(build(), **card)
    return ModelBundle.load(bundle.save(tmp_path_factory.mktemp("parity") / model_type))


@pytest.mark.parametrize("sr", [48_000, 44_100, 16_000])
def test_notebook_features_served_equal_those_trained_on(tmp_path_factory, clips, sr):
    rng = np.random.default_rng(0)
    scaler = {"mean": rng.normal(size=162).tolist(), "scale": rng.uniform(0.5, 2.0, 162).tolist()}
    bundle = _bundle(tmp_path_factory, "notebook_cnn1d", NotebookFrontEnd(), scaler)
    trained = NotebookExtractor()(clips[sr])[0]  # the row training stored for this file
    served = bundle.source_features(clips[sr])[:, 0]  # what predict / evaluate / the Predict page feed the network
    expected = (trained - np.asarray(scaler["mean"], np.float32)) / np.asarray(scaler["scale"], np.float32)
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-6)


def test_the_old_serving_path_was_skewed_for_high_rate_files(clips):
    """Why the path is one now: decoding at 16 kHz and upsampling (how serving worked) loses
    everything above 8 kHz, which the notebook's 128 mel bands at 22,050 Hz still see."""
    fe = NotebookFrontEnd()
    trained = fe.features(fe.load(clips[48_000]), fe.sample_rate, cropped=True)
    old_serving = fe.features(load_audio(clips[48_000], sr=16_000), 16_000)
    top_mels = slice(162 - 10, 162)  # the highest 10 of the 128 mel bands (above about 8.5 kHz)
    assert old_serving[top_mels].mean() < 0.01 * trained[top_mels].mean()


@pytest.mark.parametrize("sr", [48_000, 16_000])
def test_log_mel_features_served_equal_those_trained_on(tmp_path_factory, clips, sr):
    bundle = _bundle(tmp_path_factory, "logmel_cnn", LogMelFrontEnd())
    trained = LogMelExtractor()(clips[sr]).astype(np.float32)
    served = bundle.source_features(clips[sr])
    assert served.shape == trained.shape
    np.testing.assert_allclose(served, trained, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("sr", [44_100, 16_000])
def test_encoder_frames_served_equal_those_trained_on(tmp_path_factory, clips, sr):
    bundle = _bundle(tmp_path_factory, "encoder_head", EncoderFrontEnd())
    trained = EncoderExtractor("whisper-base", "clean")(clips[sr]).astype(np.float32)
    served = bundle.source_features(clips[sr])
    assert served.shape == trained.shape == (175, 512)
    np.testing.assert_allclose(served, trained, rtol=2e-3, atol=2e-3)
