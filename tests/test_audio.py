"""ser_lib.audio: loading, resampling, validation, streaming; error paths; the raw-sample quirks."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from ser_lib.audio import (
    MIN_SECONDS,
    audio_info,
    check_complete,
    iter_blocks,
    load_audio,
    resample,
    to_wav_bytes,
    validate_audio,
    write_audio,
)
from ser_lib.errors import (
    AudioError,
    AudioTooLongError,
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


# --- bounded decoding (issue 13): header limits, lengths never trusted, limits while decoding ------


def _put(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def _encoded(y: np.ndarray, sr: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _streaming_flac(flac: bytes) -> bytes:
    """``flac`` with STREAMINFO's total_samples set to 0, as streaming encoders write it."""
    (packed,) = struct.unpack(">Q", flac[18:26])
    return flac[:18] + struct.pack(">Q", packed & ~((1 << 36) - 1)) + flac[26:]


@pytest.fixture
def tone_flac(make_tone):
    y, sr = sf.read(make_tone(seconds=3.0, sr=16_000, freq=300.0), dtype="float32")
    return _encoded(y, sr, "FLAC", "PCM_16")


def test_header_sample_rate_outside_range_is_refused_by_every_entry_point(make_tone, tmp_path):
    path = tmp_path / "one_hz.wav"
    path.write_bytes(_put(_put(make_tone(seconds=1.0).read_bytes(), 24, "<I", 1), 28, "<I", 2))
    message = r"one_hz\.wav states a sample rate of 1 Hz, outside the 1,000-384,000 Hz.*ffmpeg -i IN -ar 16000"
    for call in (lambda: load_audio(path), lambda: list(iter_blocks(path)), lambda: audio_info(path)):
        with pytest.raises(UnreadableAudioError, match=message):
            call()


@pytest.mark.parametrize("channels", [17, 255, 1024])
def test_header_channels_outside_range_are_refused(make_tone, channels):
    data = _put(make_tone(seconds=1.0).read_bytes(), 22, "<H", channels)
    with pytest.raises(UnreadableAudioError, match=rf"states {channels} channels, outside the 1-16.*-ac 2"):
        load_audio(data)
    with pytest.raises(UnreadableAudioError, match=r"outside the 1-16"):
        list(iter_blocks(data))


def test_truncated_wav_is_refused_by_clips_and_calls_alike(make_tone, tmp_path):
    whole = make_tone(seconds=2.0, sr=16_000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:30_000])
    message = r"cut\.wav is truncated: its header announces 64,000 bytes of audio but the file holds only 29,956 \(47%\)"
    for call in (lambda: load_audio(cut), lambda: list(iter_blocks(cut)), lambda: audio_info(cut), lambda: check_complete(cut)):
        with pytest.raises(UnreadableAudioError, match=message):
            call()
    with open(cut, "rb") as f, pytest.raises(UnreadableAudioError, match=r"cut\.wav is truncated"):
        load_audio(f)  # a file object, as the pages pass uploads


def test_truncated_compressed_file_is_refused(tone_flac):
    cut = tone_flac[: len(tone_flac) // 2]
    with pytest.raises(UnreadableAudioError, match=r"truncated or corrupt after|is truncated"):
        load_audio(cut)
    with pytest.raises(UnreadableAudioError, match=r"truncated or corrupt after|is truncated"):
        list(iter_blocks(cut))


def test_streaming_flac_without_length_decodes_to_its_real_end(tone_flac):
    streaming = _streaming_flac(tone_flac)
    assert sf.info(io.BytesIO(streaming)).frames > 1 << 62  # what libsndfile reports: "unknown"
    info = audio_info(streaming)
    assert (info.frames, info.exact, info.duration) == (48_000, True, 3.0)
    np.testing.assert_array_equal(load_audio(streaming), load_audio(tone_flac))
    blocks = np.concatenate(list(iter_blocks(streaming, block_seconds=0.7)), axis=1)[0]
    np.testing.assert_array_equal(blocks, load_audio(tone_flac))


def test_audio_info_reports_a_lower_bound_past_the_probe(tone_flac, monkeypatch):
    monkeypatch.setattr("ser_lib.audio.INFO_PROBE_SECONDS", 1.0)
    info = audio_info(_streaming_flac(tone_flac))
    assert not info.exact and info.duration == pytest.approx(1.0, abs=0.1)  # "at least 1 s", never 5.8e14 s


def test_mp3_with_a_huge_xing_frame_count(make_tone):
    y, sr = sf.read(make_tone(seconds=2.0, sr=16_000), dtype="float32")
    mp3 = _encoded(y, sr, "MP3", "MPEG_LAYER_III")
    tag = mp3.find(b"Xing") if b"Xing" in mp3 else mp3.find(b"Info")
    lying = _put(mp3, tag + 8, ">I", 0x7FFFFFFF)
    assert sf.info(io.BytesIO(lying)).frames > 10**12
    assert audio_info(lying).duration == pytest.approx(2.0, abs=0.1)
    assert len(load_audio(lying)) == pytest.approx(32_000, abs=1_200)


def test_max_seconds_is_checked_while_decoding(tone_flac):
    streaming = _streaming_flac(tone_flac)  # no length in the header: only decoding can tell
    with pytest.raises(AudioTooLongError, match=r"lasts more than the 2 s this step accepts \(decoding stopped there\)") as err:
        load_audio(streaming, max_seconds=2.0)
    assert err.value.max_seconds == 2.0 and isinstance(err.value, ParameterError)
    seen = []
    with pytest.raises(AudioTooLongError, match=r"split it into parts|analyze-call"):
        for block in iter_blocks(streaming, block_seconds=0.5, max_seconds=2.0):
            seen.append(block.shape[1])
    assert sum(seen) <= 32_000  # stopped at the limit, not at the end of the file
    assert len(load_audio(streaming, max_seconds=3.5)) == 48_000


def test_max_seconds_limits_the_part_asked_for(make_tone):
    path = make_tone(seconds=3.0, sr=8000)
    assert len(load_audio(path, duration=1.0, max_seconds=2.0)) == 16_000
    with pytest.raises(AudioTooLongError, match=r"lasts 3 s, more than the 2 s this step accepts: analyse it as a call"):
        list(iter_blocks(path, max_seconds=2.0))


def test_bad_decoding_parameters(make_tone):
    path = make_tone(seconds=1.0)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ParameterError, match=r"max_seconds=.* must be a positive number"):
            load_audio(path, max_seconds=bad)
        with pytest.raises(ParameterError, match=r"block_seconds=.* must be a positive number"):
            list(iter_blocks(path, block_seconds=bad))
    with pytest.raises(ParameterError, match=r"offset=-1.0 .* must be non-negative"):
        load_audio(path, offset=-1.0)


def test_nan_samples_are_refused_while_decoding(tmp_path):
    y = np.full(16_000, 0.1, np.float32)
    y[[100, 9000]] = np.nan
    path = tmp_path / "float.wav"
    sf.write(path, y, 16_000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match=r"float\.wav decodes to 2 NaN or infinite samples"):
        load_audio(path, validate=False)
    with pytest.raises(NonFiniteAudioError):
        list(iter_blocks(path))


def test_clips_and_calls_get_the_same_samples(make_tone):
    path = make_tone(seconds=4.5, sr=16_000, channels=2, noise=0.05)
    whole = load_audio(path, mono=False)
    streamed = np.concatenate(list(iter_blocks(path.read_bytes(), block_seconds=1.3)), axis=1)
    np.testing.assert_array_equal(streamed, whole)


def test_truncation_check_passes_unfinished_recordings(make_tone, tmp_path):
    """A recorder that never finalised its header (data size 0xFFFFFFFF) is read to the file's end."""
    path = tmp_path / "open.wav"
    path.write_bytes(_put(make_tone(seconds=1.0).read_bytes(), 40, "<I", 0xFFFFFFFF))
    check_complete(path)
    assert len(load_audio(path)) == 16_000
