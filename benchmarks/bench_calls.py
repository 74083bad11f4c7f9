"""Call analysis benchmarks: accuracy on test calls, speed, streaming latency, memory, telephone audio.

Figures (each printed, and all written with ``--json OUT``):

Accuracy figures (1 and 5) use ``--accuracy-model``; by default the model itself, or, for a final
model trained on every speaker with ``--metrics-from X``, the held-out bundle X.

1. **Calls** (from :mod:`make_calls`, held-out speakers): per-turn emotion accuracy of the customer
   (and the agent) on the stereo version and on the 8 kHz mono telephone version; how far the
   segment boundaries are from the true turn boundaries (seconds).
2. **Speed**: real-time factor of ``analyze_call`` on a 10-minute stereo call read from disk
   (after a warm-up call), with the time spent in VAD, encoder and head. Target: 0.03 or better.
3. **Streaming**: the same call replayed as fast as possible in 20 ms packets through
   :class:`~ser_lib.calls.StreamingAnalyzer`: compute per update (a packet after which a window
   was scored; target under 100 ms) and latency of each window's final result after its audio
   (target: at most one hop), plus agreement with the offline result on the same audio.
4. **Memory**: peak resident memory (``VmHWM``; ``getrusage`` where /proc is missing) of a fresh process analysing a
   2-hour stereo call (8 kHz mu-law, as contact centres store them) from disk as ``analyze-call``
   does, against a 10-minute call and against the process after loading the model, with the
   resident memory sampled along the call (flat). Target: under 1 GB.
5. **Telephone**: accuracy (WA, UA) of the model on held-out clips, clean and through the 8 kHz
   mu-law channel (:func:`ser_lib.augment.telephone_channel`).

Usage::

    python benchmarks/bench_calls.py [--model models/default] [--calls data/calls] [--quick] [--json out.json]
                                     [--skip memory telephone ...]

``--quick`` uses 3 calls, a 3-minute call for speed and streaming, a 20-minute call for memory and
150 clips for the telephone figure (minutes instead of most of an hour).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def _sibling(name: str):
    """Import ``benchmarks/<name>.py`` by its path (works as a script, ``python -m`` or from any folder)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


mc = _sibling("make_calls")

SECTIONS = ("calls", "speed", "streaming", "memory", "telephone")
warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    """Peak resident memory of this process: ``VmHWM``. (``getrusage``'s ``ru_maxrss`` survives
    ``execve`` on Linux, so in a child started from this benchmark it would report the parent's peak.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# --- 1. accuracy on calls -----------------------------------------------------------------------------


def turn_prediction(segments, role: str, start: float, end: float) -> str | None:
    """The emotion covering most of [start, end] among ``role``'s segments, or None if none overlap."""
    s = segments[(segments["role"] == role) & (segments["end_s"] > start) & (segments["start_s"] < end)]
    if s.empty:
        return None
    overlap = np.minimum(s["end_s"], end) - np.maximum(s["start_s"], start)
    return str(s.assign(o=overlap).groupby("emotion")["o"].sum().idxmax())


def boundary_errors(segments, role: str, turns: list[dict]) -> list[float]:
    """Signed errors (s) of the first segment start and last segment end of each turn of ``role``."""
    out = []
    for t in turns:
        s = segments[(segments["role"] == role) & (segments["end_s"] > t["start_s"]) & (segments["start_s"] < t["end_s"])]
        if len(s):
            out += [float(s["start_s"].min() - t["start_s"]), float(s["end_s"].max() - t["end_s"])]
    return out


def bench_calls(bundle, folder: Path) -> dict:
    from ser_lib.calls import MONO_ROLE, analyze_call
    from ser_lib.evaluation import summary_metrics

    index = json.loads((folder / "calls.json").read_text())
    results = {}
    for version in ("stereo", "mono8k"):
        truth = {"agent": [], "customer": []}
        pred = {"agent": [], "customer": []}
        errors = []
        missed = {"agent": 0, "customer": 0}
        for call in index["calls"]:
            res = analyze_call(folder / call[version], bundle=bundle)
            for role in ("agent", "customer"):
                turns = [t for t in call["turns"] if t["role"] == role]
                seg_role = role if version == "stereo" else MONO_ROLE
                for t in turns:
                    p = turn_prediction(res.segments, seg_role, t["start_s"], t["end_s"])
                    truth[role].append(t["emotion"])
                    pred[role].append(p or "(none)")
                    missed[role] += p is None
                errors += boundary_errors(res.segments, seg_role, turns)
        err = np.abs(errors)
        results[version] = {
            "customer": {**summary_metrics(truth["customer"], pred["customer"]), "missed_turns": missed["customer"]},
            "agent": {**summary_metrics(truth["agent"], pred["agent"]), "missed_turns": missed["agent"]},
            "boundary_abs_s": {
                "median": _pct(err, 50),
                "mean": float(err.mean()) if len(err) else float("nan"),
                "p90": _pct(err, 90),
            },
            "boundary_bias_s": float(np.mean(errors)) if errors else float("nan"),
        }
    results["calls"] = len(index["calls"])
    results["turns"] = sum(len(c["turns"]) for c in index["calls"])
    results["held_out"] = index["held_out"]
    return results


# --- 2./3. speed and streaming ----------------------------------------------------------------------


def long_call_file(
    folder: Path, *, seconds: float, corpora, model, seed: int = 1, name: str = "long", subtype: str = "PCM_16", sr: int = 16_000
) -> Path:
    """A stereo call of exactly ``seconds`` from held-out clips, written piece by piece to ``folder``
    (so even a 2-hour call never sits in memory here)."""
    import soundfile as sf

    from ser_lib.audio import resample
    from ser_lib.corpora import find_corpora

    manifest = find_corpora(corpora or mc.default_corpora(), durations=False).manifest
    speakers, _ = mc.held_out_speakers(manifest, model)
    rng = np.random.default_rng(seed)
    path = folder / f"{name}.wav"
    left = int(round(seconds * sr))
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=2, subtype=subtype, format="WAV") as f:
        while left > 0:
            x, _ = mc.build_call(manifest, speakers, name=name, n_turns=40, rng=rng)
            if sr != 16_000:
                x = resample(x.T, orig_sr=16_000, target_sr=sr).T
            piece = np.clip(x[:, :left].T, -1.0, 1.0)
            f.write(piece)
            left -= len(piece)
    return path


def bench_speed(bundle, path: Path) -> dict:
    from ser_lib.audio import audio_info
    from ser_lib.calls import analyze_call

    duration = audio_info(path).duration
    from ser_lib.audio import load_audio

    analyze_call(load_audio(path, mono=False, duration=20.0, validate=False), bundle=bundle)  # warm-up: encoder, head, VAD
    t0 = time.perf_counter()
    c0 = time.process_time()
    res = analyze_call(path, bundle=bundle)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    st = res.stats
    other = wall - st["vad_s"] - st["encode_s"] - st["head_s"]
    speech = float((res.speech["end_s"] - res.speech["start_s"]).sum())
    return {
        "call_s": round(duration, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rtf": round(wall / duration, 4),
        "rtf_cpu": round(cpu / duration, 4),
        "speech_s_all_channels": round(speech, 1),
        "windows": len(res.windows),
        "vad_s": st["vad_s"],
        "encoder_s": st["encode_s"],
        "head_s": st["head_s"],
        "decode_resample_other_s": round(other, 2),
        "encoded_audio_s": st["encoded_audio_s"],
        "target_rtf": 0.03,
    }, res


def bench_streaming(bundle, path: Path, offline, *, packet_s: float = 0.02) -> dict:
    from ser_lib.audio import load_audio
    from ser_lib.calls import StreamingAnalyzer

    x = load_audio(path, mono=False, validate=False)
    step = int(packet_s * 16_000)
    analyzer = StreamingAnalyzer(bundle, sr=16_000, channels=x.shape[0])
    updates, idle = [], []
    for i in range(0, x.shape[1], step):
        n_enc, n_head = analyzer.encoded_audio_s, analyzer.head_seconds
        t0 = time.perf_counter()
        analyzer.feed(x[:, i : i + step])
        dt = time.perf_counter() - t0
        (updates if analyzer.encoded_audio_s != n_enc or analyzer.head_seconds != n_head else idle).append(dt)
    analyzer.finish()
    live = analyzer.result()
    w = live.windows
    latency = (w["emitted_s"] - w["end_s"]).to_numpy()
    ready = (w["ready_s"] - w["end_s"]).to_numpy()
    last_in_region = w["end_s"] >= w.groupby(["channel", "region"])["end_s"].transform("max") - 1e-9
    key = ["channel", "start_s", "end_s"]
    a = offline.windows.sort_values(key).reset_index(drop=True)
    b = w.sort_values(key).reset_index(drop=True)
    pcols = [f"p_{lab}" for lab in bundle.labels]
    same_windows = len(a) == len(b) and np.allclose(a[["start_s", "end_s"]], b[["start_s", "end_s"]])
    agree = {}
    if same_windows:
        diff = np.abs(a[pcols].to_numpy() - b[pcols].to_numpy()).max(axis=1)
        agree = {
            "same_emotion": float((a["emotion"] == b["emotion"]).mean()),
            "identical_windows": float((diff < 1e-6).mean()),
            "max_abs_prob_diff": float(diff.max()),
            "p95_abs_prob_diff": _pct(diff, 95),
            "same_segments": bool(offline.segments["emotion"].tolist() == live.segments["emotion"].tolist()),
        }
    return {
        "packet_ms": packet_s * 1000,
        "updates": len(updates),
        "update_ms": {
            "p50": 1000 * _pct(updates, 50),
            "p95": 1000 * _pct(updates, 95),
            "p99": 1000 * _pct(updates, 99),
            "max": 1000 * max(updates, default=float("nan")),
        },
        "idle_packet_ms": {"p50": 1000 * _pct(idle, 50), "p95": 1000 * _pct(idle, 95)},
        "final_latency_s": {
            "median": _pct(latency, 50),
            "p95": _pct(latency, 95),
            "max": float(latency.max()) if len(latency) else float("nan"),
        },
        "final_latency_inside_turn_s": {
            "max": float(latency[~last_in_region.to_numpy()].max()) if (~last_in_region).any() else float("nan")
        },
        "provisional_latency_s": {"median": _pct(ready, 50), "max": float(ready.max()) if len(ready) else float("nan")},
        "hop_s": analyzer.settings.hop_s,
        "same_windows_as_offline": bool(same_windows),
        "agreement": agree,
        "target_update_ms": 100,
    }


# --- 4. memory ------------------------------------------------------------------------------------------


def held_out_sibling(model: str) -> str | None:
    """For a final model trained on every speaker (``--split none --metrics-from X``): the bundle X,
    trained without the test speakers, on which accuracy can be measured honestly."""
    import re

    card_path = Path(model) / "card.json"
    if not card_path.is_file():
        return None
    training = json.loads(card_path.read_text()).get("training") or {}
    if training.get("split") != "none":
        return None
    found = re.search(r"--metrics-from\s+(\S+)", str(training.get("command", "")))
    if not found:
        return None
    for base in (Path.cwd(), REPO_ROOT):
        candidate = base / found.group(1)
        if (candidate / "card.json").is_file():
            return str(candidate)
    return None


def _load(model: str):
    """The bundle as ``analyze-call`` loads it (ONNX Runtime, no TensorFlow)."""
    from ser_lib.bundle import ModelBundle

    return ModelBundle.load(model)


def _memory_child(model: str, path: str) -> None:
    """Run in a fresh process: load the model, analyse ``path``, print JSON with memory figures."""
    from ser_lib.calls import analyze_call

    bundle = _load(model)
    bundle.encoder()
    analyze_call(np.zeros((2, 16_000), np.float32), bundle=bundle, sr=16_000)  # load the VAD and warm the head
    base = _rss_mb()
    samples = []
    # (no tracemalloc: its own bookkeeping, a traceback per live block, would dominate the peak)
    t0 = time.perf_counter()
    res = analyze_call(path, bundle=bundle, progress=lambda p: samples.append((round(p.done), round(_rss_mb(), 1))))
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "call_s": res.duration_s,
                "wall_s": round(wall, 1),
                "rss_after_model_mb": round(base, 1),
                "peak_rss_mb": round(_peak_mb(), 1),
                "rss_during_mb": [samples[int(i)] for i in np.linspace(0, len(samples) - 1, min(len(samples), 8))],
                "windows": len(res.windows),
                "head": type(bundle).__name__,
                "tensorflow_loaded": "tensorflow" in sys.modules,
            }
        )
    )


def bench_memory(model: str, folder: Path, *, minutes: tuple[float, ...], corpora) -> dict:
    out = {}
    for m in minutes:
        path = long_call_file(
            folder, seconds=m * 60, corpora=corpora, model=model, seed=7, name=f"mem{int(m)}", subtype="ULAW", sr=8000
        )
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(path), "--model", model]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if done.returncode != 0:
            raise RuntimeError(f"memory child failed: {done.stderr[-2000:]}")
        out[f"{m:g}_min"] = json.loads(done.stdout.strip().splitlines()[-1])
        path.unlink()
    out["target_mb"] = 1024
    return out


# --- 5. telephone -------------------------------------------------------------------------------------


def bench_telephone(bundle, *, corpora, model, n: int, seed: int = 0) -> dict:
    from ser_lib.audio import load_audio
    from ser_lib.augment import telephone_channel
    from ser_lib.corpora import find_corpora
    from ser_lib.evaluation import summary_metrics

    manifest = find_corpora(corpora or mc.default_corpora(), durations=False).manifest
    speakers, why = mc.held_out_speakers(manifest, model)
    pool = manifest[manifest["speaker"].isin(speakers) & manifest["emotion"].isin(bundle.labels)]
    pool = pool.sample(n=min(n, len(pool)), random_state=seed)
    truth, clean, phone = [], [], []
    for path, emotion in zip(pool["path"], pool["emotion"], strict=True):
        y = load_audio(path, sr=16_000)
        truth.append(emotion)
        clean.append(bundle.predict(y, sr=16_000).emotion)
        phone.append(bundle.predict(telephone_channel(y, sr=16_000), sr=16_000).emotion)
    return {
        "clips": len(truth),
        "held_out": why,
        "clean": summary_metrics(truth, clean),
        "telephone": summary_metrics(truth, phone),
    }


# --- main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="bundle folder (default: $SER_MODEL, then models/default)")
    p.add_argument("--calls", help="folder made by make_calls.py (default: build calls in a temporary folder)")
    p.add_argument(
        "--accuracy-model",
        help="bundle for the accuracy figures (calls, telephone); default: --model, or, when --model was trained on every "
        "speaker with --metrics-from X, the held-out bundle X",
    )
    p.add_argument("--corpora", help="corpora folder (default $SER_SHARED_CORPORA, $SER_DATA_DIR, then ../shared/corpora)")
    p.add_argument(
        "--quick", action="store_true", help="smaller figures: 3 calls, 3-minute speed call, 20-minute memory call, 150 clips"
    )
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    p.add_argument("--json", metavar="OUT", help="write every figure to OUT")
    p.add_argument("--memory-child", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    from ser_lib.config import default_model_path

    model = str(Path(args.model) if args.model else default_model_path())
    if args.memory_child:
        _memory_child(model, args.memory_child)
        return 0

    bundle = _load(model)
    report: dict = {
        "model": bundle.describe(),
        "head": type(bundle).__name__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_at_start": os.getloadavg(),
        "quick": args.quick,
    }
    print(
        f"Model: {report['model']} (head run by {report['head']})  Machine: {report['machine']}  "
        f"load {report['load_average_at_start'][0]:.1f}"
    )
    accuracy_model = args.accuracy_model or held_out_sibling(model) or model
    accuracy_bundle = bundle if accuracy_model == model else _load(accuracy_model)
    report["accuracy_model"] = accuracy_bundle.describe()
    if accuracy_model != model:
        print(f"Accuracy figures with {accuracy_model} ({report['accuracy_model']}): {model} was trained on every speaker")
    with tempfile.TemporaryDirectory(prefix="bench_calls_") as tmp:
        tmp = Path(tmp)
        if "calls" not in args.skip:
            folder = Path(args.calls) if args.calls else tmp / "calls"
            if not (folder / "calls.json").is_file():
                n_calls, n_turns = (3, 10) if args.quick else (8, 12)
                mc.make_calls(folder, corpora=args.corpora, model=accuracy_model, n_calls=n_calls, n_turns=n_turns)
            r = report["calls"] = bench_calls(accuracy_bundle, folder)
            print(f"\n1. Calls: {r['calls']} calls, {r['turns']} turns; held-out speakers: {r['held_out']}")
            for version in ("stereo", "mono8k"):
                v = r[version]
                print(
                    f"   {version:>7}: customer per-turn accuracy {v['customer']['WA']:.3f} (UA {v['customer']['UA']:.3f}, "
                    f"{v['customer']['n']} turns, {v['customer']['missed_turns']} without a segment); "
                    f"agent {v['agent']['WA']:.3f}; "
                    f"boundary error median {v['boundary_abs_s']['median']:.2f} s, mean {v['boundary_abs_s']['mean']:.2f} s, "
                    f"p90 {v['boundary_abs_s']['p90']:.2f} s (bias {v['boundary_bias_s']:+.2f} s)"
                )
        offline = None
        speed_path = None
        if "speed" not in args.skip or "streaming" not in args.skip:
            minutes = 3.0 if args.quick else 10.0
            speed_path = long_call_file(tmp, seconds=minutes * 60, corpora=args.corpora, model=model, name="speed")
        if "speed" not in args.skip:
            r, offline = bench_speed(bundle, speed_path)
            report["speed"] = r
            print(
                f"\n2. Speed: {r['call_s'] / 60:.0f}-minute stereo call: {r['wall_s']:.1f} s, real-time factor {r['rtf']:.4f} "
                f"(CPU {r['rtf_cpu']:.4f}; target 0.03). VAD {r['vad_s']:.1f} s, encoder {r['encoder_s']:.1f} s "
                f"({r['encoded_audio_s']:.0f} s of audio encoded, {r['speech_s_all_channels']:.0f} s of speech), "
                f"head {r['head_s']:.1f} s, decoding and the rest {r['decode_resample_other_s']:.1f} s"
            )
        if "streaming" not in args.skip:
            if offline is None:
                from ser_lib.calls import analyze_call

                offline = analyze_call(speed_path, bundle=bundle)
            r = report["streaming"] = bench_streaming(bundle, speed_path, offline)
            u, lat = r["update_ms"], r["final_latency_s"]
            print(
                f"\n3. Streaming ({r['packet_ms']:.0f} ms packets): update compute p50 {u['p50']:.0f} ms, p95 {u['p95']:.0f} ms, "
                f"max {u['max']:.0f} ms over {r['updates']} updates (target < 100 ms); "
                f"idle packet p50 {r['idle_packet_ms']['p50']:.2f} ms. "
                f"Final result after its window's audio: median {lat['median']:.2f} s, p95 {lat['p95']:.2f} s, "
                f"max {lat['max']:.2f} s (inside a turn max {r['final_latency_inside_turn_s']['max']:.2f} s; "
                f"hop {r['hop_s']} s); "
                f"provisional result median {r['provisional_latency_s']['median']:.3f} s."
            )
            if r["agreement"]:
                a = r["agreement"]
                print(
                    f"   Agreement with offline: same windows {r['same_windows_as_offline']}, "
                    f"same emotion {a['same_emotion']:.3f}, "
                    f"identical probabilities {a['identical_windows']:.3f} of windows, max |dp| {a['max_abs_prob_diff']:.3f}, "
                    f"p95 {a['p95_abs_prob_diff']:.3f}, same segments {a['same_segments']}"
                )
        if "memory" not in args.skip:
            minutes = (10.0, 20.0) if args.quick else (10.0, 120.0)
            r = report["memory"] = bench_memory(model, tmp, minutes=minutes, corpora=args.corpora)
            print("\n4. Memory (fresh process, 8 kHz mu-law stereo from disk):")
            for k, v in r.items():
                if isinstance(v, dict):
                    print(
                        f"   {k}: peak RSS {v['peak_rss_mb']:.0f} MB (after loading the model {v['rss_after_model_mb']:.0f} MB), "
                        f"{v['wall_s']:.0f} s; RSS during the call (s, MB): {v['rss_during_mb']}"
                    )
            print("   target: under 1024 MB")
        if "telephone" not in args.skip:
            r = report["telephone"] = bench_telephone(
                accuracy_bundle, corpora=args.corpora, model=accuracy_model, n=150 if args.quick else 600
            )
            print(
                f"\n5. Telephone: {r['clips']} held-out clips: clean WA {r['clean']['WA']:.3f} UA {r['clean']['UA']:.3f}; "
                f"8 kHz mu-law WA {r['telephone']['WA']:.3f} UA {r['telephone']['UA']:.3f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
