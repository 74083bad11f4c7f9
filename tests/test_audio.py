"""ser_lib.audio: loading, resampling, validation, streaming; error paths; the raw-sample quirks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from ser_lib.audio import (
    MIN_SECONDS,
    audio_info,
    iter_blocks,
    load_audio,
    resample,
    to_wav_bytes,
    validate_audio,
    write_audio,
)
from ser_lib.errors import (
    AudioError,
    EmptyAudioError,
    NonFiniteAudioError,
    ParameterError,
    SERError,
    SilentAudioError,
    TooShortAudioError,
    UnreadableAudioError,
)


def dominant_freq(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)])


# --- loading ------------------------------------------------------------------------------------


def test_load_resamples_and_keeps_pitch(make_tone):
    path = make_tone(seconds=1.0, sr=44_100, freq=440.0)
    y = load_audio(path, sr=16_000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == 16_000
    assert dominant_freq(y, 16_000) == pytest.approx(440.0, abs=2.0)


def test_stereo_mixed_to_mono_or_kept(make_tone):
    path = make_tone(seconds=0.5, sr=16_000, channels=2, freq=500.0)  # channels at 500 and 750 Hz
    both = load_audio(path, mono=False)
    assert both.shape == (2, 8000)
    assert dominant_freq(both[0], 16_000) == pytest.approx(500.0, abs=3.0)
    assert dominant_freq(both[1], 16_000) == pytest.approx(750.0, abs=3.0)
    np.testing.assert_allclose(load_audio(path), both.mean(axis=0), atol=1e-6)


def test_offset_and_duration(make_tone):
    path = make_tone(seconds=2.0, sr=8000)
    assert len(load_audio(path, sr=16_000, offset=0.5, duration=1.0)) == 16_000
    assert len(load_audio(path, sr=16_000, offset=1.5)) == 8000


def test_bytes_and_file_objects_load_like_paths(make_tone):
    path = make_tone(seconds=0.5, sr=16_000)
    ref = load_audio(path)
    np.testing.assert_array_equal(load_audio(path.read_bytes()), ref)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(load_audio(f), ref)


def test_mu_law_wav_reads(make_tone):
    path = make_tone(seconds=0.5, sr=8000, subtype="ULAW")
    assert audio_info(path).subtype == "ULAW"
    assert dominant_freq(load_audio(path), 16_000) == pytest.approx(440.0, abs=3.0)


def test_audio_info_reads_header(make_tone):
    info = audio_info(make_tone(seconds=1.5, sr=22_050, channels=2))
    assert (info.sample_rate, info.channels, info.frames) == (22_050, 2, 33_075)
    assert info.duration == pytest.approx(1.5)


def test_max_seconds_refuses_long_files(make_tone):
    with pytest.raises(ParameterError, match=r"lasts 3 s, more than the 2 s"):
        load_audio(make_tone(seconds=3.0, sr=8000), max_seconds=2.0)


def test_write_and_wav_bytes_round_trip(tmp_path):
    y = np.stack([np.linspace(-0.5, 0.5, 4000), np.linspace(0.5, -0.5, 4000)]).astype(np.float32)
    path = write_audio(tmp_path / "out.flac", y, sr=16_000)
    np.testing.assert_allclose(load_audio(path, mono=False), y, atol=1e-4)
    back, rate = sf.read(io.BytesIO(to_wav_bytes(y[0], sr=16_000)), dtype="float32")
    assert rate == 16_000
    np.testing.assert_allclose(back, y[0], atol=1e-4)


def test_resample_rejects_bad_rates():
    with pytest.raises(ParameterError, match=r"orig_sr=0"):
        resample(np.zeros(10, np.float32), orig_sr=0, target_sr=16_000)


# --- error paths --------------------------------------------------------------------------------


def test_unreadable_bytes():
    with pytest.raises(UnreadableAudioError, match=r"Could not read the uploaded audio as audio"):
        load_audio(b"this is not audio at all" * 10)


def test_unreadable_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio\n" * 20)
    with pytest.raises(UnreadableAudioError, match=r"notes\.wav as audio.*convert the file"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableAudioError, match=r"missing\.wav does not exist"):
        load_audio(tmp_path / "missing.wav")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(UnreadableAudioError, match=r"is a folder: pass an audio file"):
        load_audio(tmp_path)


def test_empty_file_and_empty_bytes(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(EmptyAudioError, match=r"empty\.wav is empty \(0 bytes\)"):
        load_audio(path)
    with pytest.raises(EmptyAudioError, match=r"uploaded audio is empty"):
        load_audio(b"")


def test_header_only_wav_has_no_samples(tmp_path):
    path = tmp_path / "header.wav"
    sf.write(str(path), np.zeros(0, np.float32), 16_000)
    with pytest.raises(EmptyAudioError, match=r"holds no samples"):
        load_audio(path)


def test_silent_audio(make_tone):
    with pytest.raises(SilentAudioError, match=r"is silent \(peak amplitude 0\.0e\+00"):
        load_audio(make_tone(seconds=1.0, amplitude=0.0))


def test_too_short_audio(make_tone):
    with pytest.raises(TooShortAudioError, match=r"lasts 0\.100 s; at least 0\.25 s"):
        load_audio(make_tone(seconds=0.1))


def test_validate_rejects_nan():
    y = np.full(16_000, 0.1, np.float32)
    y[[5, 7]] = np.nan
    with pytest.raises(NonFiniteAudioError, match=r"contains 2 NaN or infinite samples"):
        validate_audio(y, sr=16_000)


def test_validate_rejects_integer_samples():
    with pytest.raises(ParameterError, match=r"floating-point samples.*dtype=int16"):
        validate_audio(np.ones(16_000, np.int16), sr=16_000, name="clip")


def test_validate_returns_good_audio_and_respects_min_seconds():
    y = np.full(int(MIN_SECONDS * 16_000), 0.1, np.float32)
    assert validate_audio(y, sr=16_000) is y
    with pytest.raises(TooShortAudioError, match=r"at least 1\.0 s"):
        validate_audio(y, sr=16_000, min_seconds=1.0)


def test_errors_are_one_family():
    for cls in (UnreadableAudioError, EmptyAudioError, SilentAudioError, TooShortAudioError, NonFiniteAudioError):
        assert issubclass(cls, AudioError) and issubclass(cls, SERError) and issubclass(cls, ValueError)


# --- streaming ----------------------------------------------------------------------------------


def test_iter_blocks_matches_whole_file_load(make_tone):
    path = make_tone(seconds=12.3, sr=8000, channels=2, freq=300.0, noise=0.05)
    blocks = list(iter_blocks(path, sr=16_000, block_seconds=2.0))
    assert len(blocks) >= 6
    assert all(b.shape[0] == 2 and b.dtype == np.float32 for b in blocks)
    streamed = np.concatenate(blocks, axis=1)
    whole = load_audio(path, sr=16_000, mono=False)
    assert abs(streamed.shape[1] - whole.shape[1]) <= 2
    n = min(streamed.shape[1], whole.shape[1])
    # same soxr filter, streamed with state: identical up to float rounding
    np.testing.assert_allclose(streamed[:, :n], whole[:, :n], atol=1e-4)


def test_iter_blocks_without_resampling_is_exact(make_tone):
    path = make_tone(seconds=5.0, sr=16_000, channels=1)
    blocks = list(iter_blocks(path, block_seconds=1.0))
    assert [b.shape for b in blocks] == [(1, 16_000)] * 5
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1)[0], load_audio(path))


# --- the original downloads' quirks (raw-sample) -------------------------------------------------


def test_aiff_inside_wav_reads(raw_sample):
    path = raw_sample / "tess" / "YAF_angry" / "YAF_germ_angry.wav"
    assert audio_info(path).format == "AIFF"
    y = load_audio(path)
    assert y.dtype == np.float32 and len(y) / 16_000 == pytest.approx(2.2056, abs=0.01)


def test_96khz_file_resampled_to_16k(raw_sample):
    path = raw_sample / "tess" / "OAF_Fear" / "OAF_food_fear.wav"
    info = audio_info(path)
    assert info.sample_rate == 96_000
    y = load_audio(path)
    assert len(y) == pytest.approx(info.duration * 16_000, abs=2)


def test_stereo_original_mixed_to_mono(raw_sample):
    path = raw_sample / "ravdess" / "Actor_01" / "03-01-02-01-01-02-01.wav"
    assert audio_info(path).channels == 2
    mono, both = load_audio(path), load_audio(path, mono=False)
    assert mono.ndim == 1 and both.shape == (2, len(mono))
    np.testing.assert_allclose(mono, both.mean(axis=0), atol=1e-5)
