"""ser_lib.cache and ser_lib.featurize: cached, parallel featurisation with progress and failures."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from ser_lib.audio import load_audio
from ser_lib.cache import FeatureCache, file_key, settings_key
from ser_lib.featurize import LogMelExtractor, NotebookExtractor, featurize_files, file_seed


class CountingExtractor:
    """Picklable extractor that records the files it was called on (meaningful with n_jobs=1)."""

    def __init__(self):
        self.calls: list[str] = []

    def settings(self) -> dict:
        return {"extractor": "counting", "version": 1}

    def __call__(self, path: str) -> np.ndarray:
        self.calls.append(path)
        y = load_audio(path)
        return np.array([len(y), np.abs(y).max()], dtype=np.float32)


@pytest.fixture
def clips(fake_corpus):
    root = fake_corpus(corpora=("SAVEE",), extras=False)
    return sorted(str(p) for p in root.rglob("*.wav"))  # 7 clips, 1-2 s


def run(paths, extractor, cache, progress=False):
    return featurize_files(paths, extractor, n_jobs=1, cache=str(cache), progress=progress)


# --- the cache ----------------------------------------------------------------------------------


def test_second_run_hits_the_cache(clips, tmp_path):
    first = CountingExtractor()
    values, failures = run(clips, first, tmp_path / "cache")
    assert first.calls == clips and failures == []
    second = CountingExtractor()
    again, _ = run(clips, second, tmp_path / "cache")
    assert second.calls == []
    for a, b in zip(values, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_changed_file_is_recomputed(clips, tmp_path, synth):
    values, _ = run(clips, CountingExtractor(), tmp_path / "cache")
    changed = clips[3]
    st = os.stat(changed)
    sf.write(changed, synth.tone(0.5, sr=16_000), 16_000)  # new content, new length
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    extractor = CountingExtractor()
    again, _ = run(clips, extractor, tmp_path / "cache")
    assert extractor.calls == [changed]
    assert again[3][0] == 8000 and values[3][0] != 8000


def test_settings_change_means_a_new_cache_entry(clips, tmp_path):
    run(clips[:2], NotebookExtractor(), tmp_path / "cache")
    folders = {p.name for p in (tmp_path / "cache" / "features").iterdir()}
    run(clips[:2], NotebookExtractor(seed=1), tmp_path / "cache")
    new = {p.name for p in (tmp_path / "cache" / "features").iterdir()} - folders
    assert new == {settings_key(NotebookExtractor(seed=1).settings())}
    assert (tmp_path / "cache" / "features" / new.pop() / "settings.json").is_file()


def test_cache_follows_environment(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "env-cache"))
    featurize_files(clips[:1], CountingExtractor(), n_jobs=1, cache=True, progress=False)
    assert len(list((tmp_path / "env-cache" / "features").rglob("*.npy"))) == 1


def test_no_cache_recomputes(clips, tmp_path):
    extractor = CountingExtractor()
    featurize_files(clips[:2], extractor, n_jobs=1, cache=False, progress=False)
    featurize_files(clips[:2], extractor, n_jobs=1, cache=False, progress=False)
    assert extractor.calls == clips[:2] * 2


def test_feature_cache_round_trip_and_corrupt_entry(clips, tmp_path):
    cache = FeatureCache({"x": 1}, root=tmp_path)
    assert cache.get(clips[0]) is None
    cache.put(clips[0], np.arange(3.0))
    np.testing.assert_array_equal(cache.get(clips[0]), [0.0, 1.0, 2.0])
    cache._path(clips[0]).write_bytes(b"not numpy")
    assert cache.get(clips[0]) is None  # a damaged entry is a miss, not a crash
    assert file_key(clips[0]) != file_key(clips[1])
    assert settings_key({"a": 1, "b": 2}) == settings_key({"b": 2, "a": 1})


# --- failures and progress ----------------------------------------------------------------------


def test_unreadable_file_reported_not_fatal(clips, tmp_path, caplog):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n" * 10)
    paths = [*clips[:2], str(bad), *clips[2:4]]
    extractor = CountingExtractor()
    with caplog.at_level(logging.WARNING, logger="ser_lib.featurize"):
        values, failures = run(paths, extractor, tmp_path / "cache")
    assert [p for p, _ in failures] == [str(bad)]
    assert "Could not read" in failures[0][1] and "notes.wav" in failures[0][1]
    assert values[2] is None and all(v is not None for i, v in enumerate(values) if i != 2)
    assert "1 file(s) could not be featurised" in caplog.text
    again = CountingExtractor()
    run(paths, again, tmp_path / "cache")
    assert again.calls == [str(bad)]  # failures are not cached


def test_progress_callback(clips, tmp_path):
    seen = []
    run(clips, CountingExtractor(), tmp_path / "cache", progress=lambda step: seen.append((step.done, step.total)))
    n = len(clips)
    assert seen == [(i, n) for i in range(n + 1)]
    seen.clear()
    run(clips, CountingExtractor(), tmp_path / "cache", progress=lambda step: seen.append((step.done, step.total)))
    assert seen == [(n, n)]  # all cached


# --- extractors and processes -------------------------------------------------------------------


def test_seed_extractor_rows(clips):
    plain, augmented = NotebookExtractor()(clips[0]), NotebookExtractor(augment=True)(clips[0])
    assert plain.shape == (1, 162) and augmented.shape == (3, 162)
    np.testing.assert_array_equal(plain[0], augmented[0])  # row 0 is the clip as loaded
    assert not np.allclose(augmented[1], augmented[0]) and not np.allclose(augmented[2], augmented[0])
    np.testing.assert_array_equal(NotebookExtractor(augment=True)(clips[0]), augmented)  # per-file seed
    assert file_seed(clips[0], 0) != file_seed(clips[0], 1)


def test_log_mel_extractor_views(clips):
    clean, phone = LogMelExtractor()(clips[0]), LogMelExtractor(view="telephone")(clips[0])
    assert clean.shape == phone.shape == (151, 64) and clean.dtype == np.float16
    # the top mel bands (above 4 kHz) lose their energy on the phone line
    assert phone[:, -10:].astype(float).mean() < clean[:, -10:].astype(float).mean() - 0.2


def test_two_processes_give_the_same_values(fake_corpus):
    root = fake_corpus(corpora=("TESS", "SAVEE"), extras=False)
    paths = sorted(str(p) for p in root.rglob("*.wav"))[:9]  # >= 8 files, so the pool is used
    extractor = NotebookExtractor(augment=True)
    one, f1 = featurize_files(paths, extractor, n_jobs=1, cache=False, progress=False)
    seen = []
    two, f2 = featurize_files(paths, extractor, n_jobs=2, cache=False, progress=lambda step: seen.append(step.done))
    assert f1 == f2 == [] and seen[-1] == len(paths)
    for a, b in zip(one, two, strict=True):  # same seeds per file; only float32 rounding (BLAS/FFT threads) may differ
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
