"""Hostile audio: mutated WAV, FLAC, MP3 and Opus files through every decoding entry point (issue 13).

Seed files are written with soundfile in the test; a seeded set of mutants is made from them
(header fields: rates 0/1/huge, channels 0/255/1024, frame counts 0/huge, chunk and block sizes;
truncations, byte flips, appended junk). Each mutant goes through :func:`ser_lib.audio.audio_info`,
:func:`ser_lib.audio.load_audio` (validated, and raw multichannel) and
:func:`ser_lib.audio.iter_blocks` in a worker process with an address-space limit; the worker
reports each case's outcome, time and peak resident memory, and a case that runs past the time
limit is killed and reported as a hang. Only :class:`ser_lib.errors.SERError` may come out.

``benchmarks/bench_fuzz.py`` runs the same machinery on a few hundred mutants and prints figures.
"""

from __future__ import annotations

import io
import json
import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TESTS_DIR = Path(__file__).resolve().parent
#: Seconds one mutant may take through all the entry points before it counts as a hang.
CASE_SECONDS = 10.0
#: Peak resident memory one case may reach (the worker's whole process), in bytes.
CASE_PEAK_BYTES = 1 << 30
#: Address-space cap of the worker: keeps a runaway allocation from taking the machine down.
WORKER_ADDRESS_SPACE = 3 << 30
#: The entry points every mutant goes through.
ENTRY_POINTS = ("audio_info", "load_audio", "load_audio_raw", "iter_blocks")
FORMATS = ("wav", "flac", "mp3", "opus")

# --- seeds -----------------------------------------------------------------------------------------


def seed_audio(seconds: float = 2.0, *, sr: int = 16_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A voiced, wobbling tone with noise [shape=(n, channels)], float32: compresses like speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    cols = [
        0.4 * np.sin(2 * np.pi * (180 + 40 * c) * t * (1 + 0.05 * np.sin(2 * np.pi * 3 * t)))
        + 0.2 * np.sin(2 * np.pi * 900 * t) * (np.sin(2 * np.pi * 4 * t) > 0)
        + 0.02 * rng.standard_normal(len(t))
        for c in range(channels)
    ]
    return np.stack(cols, axis=1).astype(np.float32)


def seed_file(fmt: str, *, sr: int = 16_000, channels: int = 1, seconds: float = 2.0) -> bytes:
    """A valid file of ``fmt`` (wav, flac, mp3, opus) written by libsndfile through soundfile."""
    kind = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}
    buf = io.BytesIO()
    sf.write(buf, seed_audio(seconds, sr=sr, channels=channels), sr, format=kind[fmt][0], subtype=kind[fmt][1])
    return buf.getvalue()


# --- byte surgery ----------------------------------------------------------------------------------


def put(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``data`` with ``value`` packed as ``fmt`` (struct) at ``offset``."""
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def ogg_pages(data: bytes) -> list[int]:
    """Offsets of the Ogg pages in ``data``."""
    pages, pos = [], data.find(b"OggS")
    while pos >= 0:
        pages.append(pos)
        pos = data.find(b"OggS", pos + 27)
    return pages


def ogg_edit(data: bytes, page: int, edit: Callable[[bytearray, int], None]) -> bytes:
    """Apply ``edit(buffer, body_offset)`` to the page at ``page`` and recompute its CRC (libogg checks it)."""
    out = bytearray(data)
    nseg = out[page + 26]
    body = page + 27 + nseg
    end = body + sum(out[page + 27 : body])
    edit(out, body)
    out[page + 22 : page + 26] = b"\0\0\0\0"
    out[page + 22 : page + 26] = struct.pack("<I", ogg_crc(bytes(out[page:end])))
    return bytes(out)


def ogg_granule(data: bytes, page: int, granule: int) -> bytes:
    """Set the granule position (the length so far, in 48 kHz samples) of the page at ``page``."""

    def edit(buf: bytearray, _body: int) -> None:
        buf[page + 6 : page + 14] = struct.pack("<Q", granule)

    return ogg_edit(data, page, edit)


def opus_head(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Change an OpusHead field (``offset`` from the start of "OpusHead") on the first page."""

    def edit(buf: bytearray, body: int) -> None:
        buf[body + offset : body + offset + struct.calcsize(fmt)] = struct.pack(fmt, value)

    return ogg_edit(data, 0, edit)


def flac_streaminfo(data: bytes, **fields: int) -> bytes:
    """FLAC with STREAMINFO fields replaced: rate, channels (1-8), bps (1-32), total (36 bits)."""
    out = bytearray(data)
    (packed,) = struct.unpack(">Q", bytes(out[18:26]))
    rate, ch, bps, total = packed >> 44, (packed >> 41) & 7, (packed >> 36) & 31, packed & ((1 << 36) - 1)
    rate = fields.get("rate", rate)
    ch = fields.get("channels", ch + 1) - 1
    bps = fields.get("bps", bps + 1) - 1
    total = fields.get("total", total)
    out[18:26] = struct.pack(">Q", (rate & 0xFFFFF) << 44 | (ch & 7) << 41 | (bps & 31) << 36 | (total & ((1 << 36) - 1)))
    return bytes(out)


def id3(size: int, body: bytes = b"") -> bytes:
    """An ID3v2.3 tag header stating ``size`` (syncsafe), followed by ``body``."""
    safe = bytes([(size >> 21) & 127, (size >> 14) & 127, (size >> 7) & 127, size & 127])
    return b"ID3\x03\x00\x00" + safe + body


# --- mutants ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One hostile file: its format, what was done to it, its bytes."""

    fmt: str
    what: str
    data: bytes

    @property
    def suffix(self) -> str:
        return {"wav": ".wav", "flac": ".flac", "mp3": ".mp3", "opus": ".opus"}[self.fmt]


def _wav_mutants(seed: bytes) -> Iterator[tuple[str, bytes]]:
    """Canonical 44-byte header: format tag @20, channels @22, rate @24, byte rate @28, block align @32,
    bits @34, data size @40; RIFF size @4, fmt size @16."""
    for rate in (0, 1, 999, 400_000, 0x7FFFFFFF, 0xFFFFFFFF):
        yield f"rate={rate}", put(seed, 24, "<I", rate)
    yield "rate=1, byte rate=2 (consistent)", put(put(seed, 24, "<I", 1), 28, "<I", 2)
    for channels in (0, 3, 17, 255, 1024, 0xFFFF):
        yield f"channels={channels}", put(seed, 22, "<H", channels)
    yield "channels=255, block align=510", put(put(seed, 22, "<H", 255), 32, "<H", 510)
    for bits in (0, 1, 7, 64, 0xFFFF):
        yield f"bits={bits}", put(seed, 34, "<H", bits)
    for align in (0, 1, 0xFFFF):
        yield f"block align={align}", put(seed, 32, "<H", align)
    for tag in (0, 3, 7, 0x11, 0xFFFE, 0x1234):
        yield f"format tag={tag:#x}", put(seed, 20, "<H", tag)
    for size in (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 2 * (len(seed) - 44)):
        yield f"data size={size:#x}", put(seed, 40, "<I", size)
    for size in (0, 4, 0xFFFFFFFF):
        yield f"RIFF size={size:#x}", put(seed, 4, "<I", size)
    for size in (0, 2, 0xFFFFFFF0):
        yield f"fmt size={size:#x}", put(seed, 16, "<I", size)
    yield "RIFF -> RF64", b"RF64" + seed[4:]


def _flac_mutants(seed: bytes) -> Iterator[tuple[str, bytes]]:
    """STREAMINFO: min/max block @8/@10, min/max frame @12/@15, rate/channels/bps/total @18."""
    for rate in (0, 1, 999, 655_350, 0xFFFFF):
        yield f"rate={rate}", flac_streaminfo(seed, rate=rate)
    for channels in (2, 8):
        yield f"channels={channels}", flac_streaminfo(seed, channels=channels)
    for bps in (1, 4, 32):
        yield f"bits={bps}", flac_streaminfo(seed, bps=bps)
    for total in (0, 1, (1 << 36) - 1, 32_000_000):
        yield f"total_samples={total}", flac_streaminfo(seed, total=total)
    for block in (0, 1, 0xFFFF):
        yield f"min/max block={block}", put(put(seed, 8, ">H", block), 10, ">H", block)
    yield "max frame size=0xFFFFFF", seed[:15] + b"\xff\xff\xff" + seed[18:]
    yield "STREAMINFO length=0xFFFFFF", seed[:5] + b"\xff\xff\xff" + seed[8:]
    yield "STREAMINFO length=0", seed[:5] + b"\0\0\0" + seed[8:]
    yield "metadata block type=127", seed[:4] + bytes([seed[4] & 0x80 | 127]) + seed[5:]
    sync = seed.find(b"\xff\xf8", 42)
    if sync > 0:
        for k, byte in enumerate((0x00, 0xFF, 0x5A)):
            yield f"first frame header byte {k + 2}={byte:#x}", put(seed, sync + 2 + k, "B", byte)


def _mp3_mutants(seed: bytes) -> Iterator[tuple[str, bytes]]:
    tag = max(seed.find(b"Xing"), seed.find(b"Info"))
    if tag > 0:
        for frames in (0, 1, 0x7FFFFFFF, 0xFFFFFFFF):
            yield f"Xing frames={frames:#x}", put(seed, tag + 8, ">I", frames)
        for nbytes in (0, 0xFFFFFFFF):
            yield f"Xing bytes={nbytes:#x}", put(seed, tag + 12, ">I", nbytes)
        yield "Xing flags=0xFFFFFFFF", put(seed, tag + 4, ">I", 0xFFFFFFFF)
        yield "Xing tag removed (length guessed)", seed[:tag] + b"XXXX" + seed[tag + 4 :]
    for k, (mask, bits) in enumerate(((0x0C, 0x0C), (0xF0, 0xF0), (0xF0, 0x00))):  # rate index 3, bitrate 15, free format
        yield f"frame header field {k}", put(seed, 2, "B", (seed[2] & ~mask & 0xFF) | bits)
    yield "layer bits -> layer I", put(seed, 1, "B", (seed[1] & ~0x06 & 0xFF) | 0x06)
    yield "ID3v2 stating 256 MB", id3(0x0FFFFFFF, b"\0" * 64) + seed
    yield "ID3v2 + Xing removed", id3(4096, b"\0" * 4096) + (seed[:tag] + b"XXXX" + seed[tag + 4 :] if tag > 0 else seed)
    yield "ID3v2 only", id3(10, b"\0" * 10)


def _opus_mutants(seed: bytes) -> Iterator[tuple[str, bytes]]:
    """OpusHead: version @8, channels @9, pre-skip @10, input rate @12, gain @16, mapping @18."""
    pages = ogg_pages(seed)
    for granule in (1 << 62, (1 << 63) - 1, (1 << 64) - 1, 0):
        yield f"last granule={granule:#x}", ogg_granule(seed, pages[-1], granule)
    if len(pages) > 3:
        yield "first audio page granule=2^62", ogg_granule(seed, pages[2], 1 << 62)
    for channels in (0, 3, 9, 255):
        yield f"channels={channels}", opus_head(seed, 9, "B", channels)
    for rate in (0, 1, 0xFFFFFFFF):
        yield f"input rate={rate:#x}", opus_head(seed, 12, "<I", rate)
    yield "pre-skip=0xFFFF", opus_head(seed, 10, "<H", 0xFFFF)
    for mapping in (1, 255):
        yield f"mapping family={mapping}", opus_head(seed, 18, "B", mapping)
    yield "version=255", opus_head(seed, 8, "B", 255)
    yield "last page dropped", seed[: pages[-1]]
    yield "bad CRC on a middle page", put(seed, pages[len(pages) // 2] + 22, "<I", 0xDEADBEEF)


STRUCTURED = {"wav": _wav_mutants, "flac": _flac_mutants, "mp3": _mp3_mutants, "opus": _opus_mutants}


def _random_mutant(seed: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random mutation: a truncation, byte flips, appended junk, zeroed or repeated ranges."""
    kind = int(rng.integers(6))
    n = len(seed)
    if kind == 0:
        cut = int(rng.integers(1, n))
        return f"truncated at {cut} of {n} bytes", seed[:cut]
    if kind == 1:
        out = bytearray(seed)
        k = int(rng.choice([1, 4, 16, 64]))
        head = bool(rng.integers(2))
        for pos in rng.integers(0, min(n, 128) if head else n, k):
            out[pos] = int(rng.integers(256))
        return f"{k} random bytes {'in the first 128' if head else 'anywhere'}", bytes(out)
    if kind == 2:
        junk = rng.integers(0, 256, int(rng.choice([16, 1024, 65_536])), dtype=np.uint8).tobytes()
        return f"{len(junk)} junk bytes appended", seed + junk
    if kind == 3:
        a = int(rng.integers(0, n))
        b = min(n, a + int(rng.choice([4, 256, 4096])))
        return f"bytes {a}-{b} zeroed", seed[:a] + bytes(b - a) + seed[b:]
    if kind == 4:
        a = int(rng.integers(0, n))
        return f"file repeated from byte {a}", seed + seed[a:]
    a = int(rng.integers(0, n))
    b = min(n, a + int(rng.choice([1, 64, 1024])))
    return f"bytes {a}-{b} removed", seed[:a] + seed[b:]


def make_mutants(per_format: int, *, seed: int = 13) -> list[Mutant]:
    """``per_format`` mutants of each format: the structured ones first, then random ones (seeded)."""
    rng = np.random.default_rng(seed)
    mutants = []
    for fmt in FORMATS:
        seeds = [seed_file(fmt), seed_file(fmt, sr=8_000 if fmt != "opus" else 48_000, channels=2, seconds=1.0)]
        chosen = [(what, data) for what, data in STRUCTURED[fmt](seeds[0])][:per_format]
        while len(chosen) < per_format:
            which = int(rng.integers(len(seeds)))
            what, data = _random_mutant(seeds[which], rng)
            chosen.append((f"{what} (seed {which})", data))
        mutants.extend(Mutant(fmt, what, data) for what, data in chosen)
    return mutants


# --- the worker: runs cases under an address-space limit, reports one JSON line each ---------------


def _peak_rss_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    except OSError:
        pass


def _peak_rss(status: str = "/proc/self/status") -> int | None:
    """Peak resident bytes (VmHWM) of a process since its last reset; this process's ru_maxrss elsewhere."""
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if status != "/proc/self/status":
        return None
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    """("ok", value), (library error class name, None), or ("OUTSIDE <class>: message", None)."""
    from ser_lib.errors import SERError

    try:
        return "ok", call()
    except SERError as exc:
        cause = exc.__cause__
        if isinstance(cause, MemoryError):  # a limit hit, hidden behind a library error: still a failure
            return f"OUTSIDE MemoryError (as {type(exc).__name__})", None
        return type(exc).__name__, None
    except BaseException as exc:  # noqa: BLE001 - the point of the test is to see anything else
        return f"OUTSIDE {type(exc).__name__}: {str(exc)[:160]}", None


def run_case(path: str) -> dict:
    """Every entry point on one file; outcome per entry point, seconds, peak resident bytes."""
    from ser_lib.audio import audio_info, iter_blocks, load_audio

    _peak_rss_reset()
    t0 = time.perf_counter()
    info = _outcome(lambda: audio_info(path))
    clip = _outcome(lambda: load_audio(path))
    raw = _outcome(lambda: load_audio(path, mono=False, validate=False))
    blocks = _outcome(lambda: sum(b.shape[1] for b in iter_blocks(path, block_seconds=1.0)))
    seconds = time.perf_counter() - t0
    outcomes = dict(zip(ENTRY_POINTS, (info[0], clip[0], raw[0], blocks[0]), strict=True))
    frames = {"load_audio_raw": raw[1].shape[-1] if raw[0] == "ok" else None, "iter_blocks": blocks[1]}
    duration = getattr(info[1], "duration", None)
    return {"outcomes": outcomes, "frames": frames, "seconds": seconds, "peak_bytes": _peak_rss(), "info_seconds": duration}


def worker_main(manifest: str, first: int, address_space: int) -> None:
    """Run the cases of ``manifest`` (a JSON list of paths) from index ``first``; one line per event."""
    import resource

    import ser_lib.audio  # noqa: F401 - imported before the limit, as a long-running service would be

    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    paths = json.loads(Path(manifest).read_text())
    for i in range(first, len(paths)):
        print(json.dumps({"start": i}), flush=True)
        print(json.dumps({"done": i, **run_case(paths[i])}), flush=True)


def run_mutants(
    mutants: list[Mutant],
    folder: Path,
    *,
    case_seconds: float = CASE_SECONDS,
    address_space: int = WORKER_ADDRESS_SPACE,
    pythonpath: str | None = None,
) -> list[dict]:
    """Write ``mutants`` under ``folder`` and run them in worker processes; one result per mutant.

    A case still running after ``case_seconds`` is killed and reported as ``"HANG"`` on every entry
    point; a worker that dies reports ``"CRASH (exit N)"``; the next worker starts after that case.
    ``pythonpath`` runs another tree's ``ser_lib`` (the before figures).
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, m in enumerate(mutants):
        path = folder / f"{i:04d}_{m.fmt}{m.suffix}"
        path.write_bytes(m.data)
        paths.append(str(path))
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(paths))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + str(TESTS_DIR)
    else:
        env["PYTHONPATH"] = str(TESTS_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    results: list[dict | None] = [None] * len(paths)
    first = 0
    while first < len(paths):
        code = f"import test_fuzz; test_fuzz.worker_main({str(manifest)!r}, {first}, {address_space})"
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=folder, text=True
        )
        current, started = None, time.monotonic()
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if current is not None and time.monotonic() - started > case_seconds:
                peak = _peak_rss(f"/proc/{proc.pid}/status")  # how far the case had got
                proc.kill()
                proc.wait()
                results[current] = _failed(current, "HANG", time.monotonic() - started, peak)
                first = current + 1
                break
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:  # the worker ended: done, or died during ``current``
                rc = proc.wait()
                if current is not None:
                    results[current] = _failed(current, f"CRASH (exit {rc})", time.monotonic() - started)
                first = len(paths) if current is None else current + 1
                break
            event = json.loads(line)
            if "start" in event:
                current, started = event["start"], time.monotonic()
            else:
                results[event["done"]], current = event, None
                if event["done"] == len(paths) - 1:
                    proc.wait()
                    first = len(paths)
                    break
        proc.stdout.close()
    return [dict(r, fmt=m.fmt, what=m.what) for r, m in zip(results, mutants, strict=True)]


def _failed(index: int, outcome: str, seconds: float, peak: int | None = None) -> dict:
    return {
        "done": index,
        "outcomes": dict.fromkeys(ENTRY_POINTS, outcome),
        "frames": {},
        "seconds": seconds,
        "peak_bytes": peak,
        "info_seconds": None,
    }


# --- the test ----------------------------------------------------------------------------------------

#: Mutants per format in the suite: every structured mutation of the seed, then random ones.
PER_FORMAT = 48


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory) -> list[dict]:
    return run_mutants(make_mutants(PER_FORMAT), tmp_path_factory.mktemp("fuzz"))


def test_mutants_are_many_and_distinct():
    mutants = make_mutants(PER_FORMAT)
    assert len(mutants) == PER_FORMAT * len(FORMATS)
    assert len({m.data for m in mutants}) >= 0.95 * len(mutants)
    assert {m.fmt for m in mutants} == set(FORMATS)


def test_only_library_errors_come_out(fuzz_results):
    outside = [
        (r["fmt"], r["what"], entry, outcome)
        for r in fuzz_results
        for entry, outcome in r["outcomes"].items()
        if outcome.startswith(("OUTSIDE", "HANG", "CRASH"))
    ]
    assert outside == []


def test_every_case_is_fast_and_small(fuzz_results):
    slow = [(r["what"], round(r["seconds"], 1)) for r in fuzz_results if r["seconds"] > CASE_SECONDS]
    big = [(r["what"], r["peak_bytes"] >> 20) for r in fuzz_results if (r["peak_bytes"] or 0) > CASE_PEAK_BYTES]
    assert slow == [] and big == []


def test_fuzzing_exercises_both_outcomes(fuzz_results):
    """The mutants are not all rejected at the door: many still decode, many are refused."""
    clip = [r["outcomes"]["load_audio_raw"] for r in fuzz_results]
    assert clip.count("ok") >= 0.2 * len(clip)
    assert len(clip) - clip.count("ok") >= 0.2 * len(clip)


def test_clips_and_calls_decode_the_same(fuzz_results):
    """load_audio and iter_blocks share one decoder: same error class, or the same length (resampler +-2)."""
    for r in fuzz_results:
        clip, call = r["outcomes"]["load_audio_raw"], r["outcomes"]["iter_blocks"]
        assert clip == call, (r["fmt"], r["what"])
        if clip == "ok":
            assert abs(r["frames"]["load_audio_raw"] - r["frames"]["iter_blocks"]) <= 2, (r["fmt"], r["what"])


def test_reported_durations_are_believable(fuzz_results):
    """audio_info never repeats an absurd header length (the issue's FLAC "lasted 576460752303424 s").

    Headers that state no length, or more than the file could hold, are measured by decoding: the
    2-second seed's length. A lie within what the file could hold is reported as the header says
    (and decoding then finds the file truncated): never more than a day here.
    """
    info = {(r["fmt"], r["what"]): r["info_seconds"] for r in fuzz_results if r["outcomes"]["audio_info"] == "ok"}
    assert info and max(info.values()) < 86_400
    measured = [
        ("flac", "total_samples=0"),
        ("flac", f"total_samples={(1 << 36) - 1}"),
        ("mp3", "Xing frames=0x7fffffff"),
        ("mp3", "Xing frames=0xffffffff"),
        ("opus", f"last granule={1 << 62:#x}"),
        ("opus", f"last granule={(1 << 63) - 1:#x}"),
    ]
    for case in measured:
        assert info[case] == pytest.approx(2.0, abs=0.05), case


def test_the_issue_cases_get_clear_errors(tmp_path):
    """The files of issue 13, in process: each refused (or decoded) with a message that says what to do."""
    from ser_lib.audio import audio_info, iter_blocks, load_audio
    from ser_lib.errors import UnreadableAudioError

    wav, flac = seed_file("wav"), seed_file("flac")
    one_hz = tmp_path / "one_hz.wav"
    one_hz.write_bytes(put(put(wav, 24, "<I", 1), 28, "<I", 2))
    with pytest.raises(UnreadableAudioError, match=r"one_hz\.wav states a sample rate of 1 Hz, outside the 1,000-384,000 Hz"):
        load_audio(one_hz)
    many = tmp_path / "many.wav"
    many.write_bytes(put(wav, 22, "<H", 1024))
    with pytest.raises(UnreadableAudioError, match=r"many\.wav states 1024 channels, outside the 1-16"):
        list(iter_blocks(many))
    streaming = flac_streaminfo(flac, total=0)  # what a streaming encoder writes
    info = audio_info(streaming)
    assert (info.frames, info.exact) == (32_000, True)  # measured by decoding, not the header's "unknown"
    np.testing.assert_array_equal(load_audio(streaming), load_audio(flac))
