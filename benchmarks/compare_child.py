"""The measuring side of ``bench_compare.py``: one measurement in a fresh process, in one tree.

``bench_compare.py`` starts this file with ``cwd`` and ``PYTHONPATH`` set to the tree being measured
(the old or the new code), so ``import ser_lib`` finds that tree's package; the same code measures
both. Nothing here imports ``ser_lib`` at module level, and only APIs present in both trees are used
(``ModelBundle.load``, ``.predict``, ``audio.load_audio``, ``python -m ser_lib ...``,
``analyze_call`` from ``ser_lib.calls`` or ``ser_lib.timeline``). Each mode writes one JSON object
to ``--out``::

    python compare_child.py --out R.json predict-latency --seconds 3 --repeat 30
    python compare_child.py --out R.json cli predict CLIP        # python -m ser_lib predict CLIP, with its VmHWM
    python compare_child.py --out R.json call-speed CALL.wav
    python compare_child.py --out R.json make-call OUT.wav --seconds 600 [--sr 8000 --subtype ULAW] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

MODEL = "models/default"


def _status_mb(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` of this process in MB (``getrusage`` where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus_clip(seconds: float, *, index: int = 0, corpora: str | None = None) -> np.ndarray:
    """A real clip (RAVDESS, sorted, ``index``-th) cut or padded by repetition to ``seconds``, at 16 kHz,
    decoded by this tree's ``load_audio``; generated speech-like audio when the corpora are missing."""
    from ser_lib.audio import load_audio

    n = int(seconds * 16_000)
    folder = Path(corpora or os.environ.get("SER_SHARED_CORPORA", "/work/shared/corpora")) / "ravdess"
    files = sorted(folder.glob("Actor_*/*")) if folder.is_dir() else []
    if files:
        return np.resize(load_audio(files[index % len(files)]), n).astype(np.float32)
    t = np.arange(n) / 16_000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t) + 7 * index
    y = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16_000) / k for k in range(1, 8))
    return (0.3 * y * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def predict_latency(args) -> dict:
    """Load the default bundle, one cold prediction, then ``repeat`` warm ones of the same clip."""
    y = corpus_clip(args.seconds, corpora=args.corpora)
    t = time.perf_counter()
    from ser_lib.bundle import ModelBundle

    bundle = ModelBundle.load(MODEL)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    first = bundle.predict(y, sr=16_000)
    first_s = time.perf_counter() - t
    warm = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        bundle.predict(y, sr=16_000)
        warm.append(time.perf_counter() - t)
    return {
        "load_s": load_s,
        "first_s": first_s,
        "warm_s": warm,
        "emotion": str(getattr(first, "emotion", "")),
        "peak_rss_mb": _status_mb("VmHWM"),
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }


def cli(args) -> dict:
    """``python -m ser_lib ARGS`` run in this process exactly as ``-m`` runs it, then its peak RSS."""
    import runpy

    sys.argv = ["ser_lib", *args.cli_args]
    code = 0
    t = time.perf_counter()
    try:
        runpy.run_module("ser_lib", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return {
        "exit_code": code,
        "run_s": time.perf_counter() - t,  # after the interpreter's own start-up
        "peak_rss_mb": _status_mb("VmHWM"),
        "tensorflow_loaded": "tensorflow" in sys.modules,
        "onnxruntime_loaded": "onnxruntime" in sys.modules,
    }


def _analyze_call():
    """``analyze_call`` of this tree: ``ser_lib.calls`` (new layout), else ``ser_lib.timeline`` (old)."""
    errors = []
    for module, attr in (
        ("ser_lib.calls", "analyze_call"),
        ("ser_lib.calls.timeline", "analyze_call"),
        ("ser_lib.timeline", "analyze_call"),
    ):
        try:
            mod = __import__(module, fromlist=[attr])
            return getattr(mod, attr), module
        except (ImportError, AttributeError) as exc:
            errors.append(f"{module}: {exc}")
    raise ImportError("no analyze_call: " + "; ".join(errors))


def _call_bundle():
    """The bundle as ``analyze-call`` loads it: ``head_numpy.load_for_calls`` where the tree has it
    (old tree: head in NumPy, no TensorFlow), else ``ModelBundle.load``."""
    try:
        from ser_lib.head_numpy import load_for_calls
    except ImportError:
        from ser_lib.bundle import ModelBundle

        return ModelBundle.load(MODEL), "ModelBundle.load"
    return load_for_calls(MODEL), "head_numpy.load_for_calls"


def call_speed(args) -> dict:
    """Real-time factor of ``analyze_call`` on a call file, in-process, after a 20 s warm-up call."""
    import soundfile as sf

    analyze_call, where = _analyze_call()
    t = time.perf_counter()
    bundle, loader = _call_bundle()
    load_s = time.perf_counter() - t
    info = sf.info(args.call)
    duration = info.frames / info.samplerate
    with sf.SoundFile(args.call) as f:
        head = f.read(min(info.frames, 20 * info.samplerate), dtype="float32", always_2d=True).T
    analyze_call(np.ascontiguousarray(head), bundle=bundle, sr=info.samplerate)  # warm-up: encoder, head, VAD
    t, c = time.perf_counter(), time.process_time()
    res = analyze_call(args.call, bundle=bundle)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "call_s": duration,
        "wall_s": wall,
        "cpu_s": cpu,
        "rtf": wall / duration,
        "rtf_cpu": cpu / duration,
        "windows": len(res.windows),
        "load_s": load_s,
        "loader": loader,
        "analyze_call": where,
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }


def make_call(args) -> dict:
    """Fallback call generator (no ``ser_lib``): corpus clips, alternating channels, with pauses,
    resampled to ``--sr`` and written piece by piece (a 2-hour call never sits in memory)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    rng = np.random.default_rng(args.seed)
    root = Path(args.corpora or os.environ.get("SER_SHARED_CORPORA", "/work/shared/corpora"))
    files = sorted(p for d in ("ravdess", "crema-d", "savee") for p in (root / d).rglob("*.opus"))
    if not files:
        raise SystemExit(f"no corpus clips under {root}")
    left = int(round(args.seconds * args.sr))
    noise = 10 ** (-66 / 20)
    with sf.SoundFile(args.path, "w", samplerate=args.sr, channels=2, subtype=args.subtype, format="WAV") as out:
        k = 0
        while left > 0:
            y, sr = sf.read(str(files[int(rng.integers(len(files)))]), dtype="float32", always_2d=True)
            y = y.mean(axis=1)
            if sr != args.sr:
                g = np.gcd(sr, args.sr)
                y = resample_poly(y, args.sr // g, sr // g).astype(np.float32)
            y = y * (10 ** ((-26 + rng.uniform(-3, 3)) / 20) / max(float(np.sqrt(np.mean(y**2))), 1e-9))
            pause = int(rng.uniform(0.7, 2.5) * args.sr)
            piece = (noise * rng.standard_normal((len(y) + pause, 2))).astype(np.float32)
            piece[: len(y), k % 2] += y
            piece = np.clip(piece[:left], -1.0, 1.0)
            out.write(piece)
            left -= len(piece)
            k += 1
    return {"path": args.path, "seconds": args.seconds, "generator": "compare_child.make_call"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON result file")
    p.add_argument("--corpora", default=None)
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("predict-latency")
    a.add_argument("--seconds", type=float, default=3.0)
    a.add_argument("--repeat", type=int, default=30)
    c = sub.add_parser("cli")
    c.add_argument("cli_args", nargs=argparse.REMAINDER)
    s = sub.add_parser("call-speed")
    s.add_argument("call")
    m = sub.add_parser("make-call")
    m.add_argument("path")
    m.add_argument("--seconds", type=float, required=True)
    m.add_argument("--sr", type=int, default=16_000)
    m.add_argument("--subtype", default="PCM_16")
    m.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    out = Path(args.out)
    result = {"predict-latency": predict_latency, "cli": cli, "call-speed": call_speed, "make-call": make_call}[args.mode](args)
    result["ser_lib"] = getattr(sys.modules.get("ser_lib"), "__file__", None)  # which tree's package ran
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
