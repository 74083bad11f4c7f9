"""Latency of ``predict`` on one clip with the model loaded and warm.

    python benchmarks/bench_predict.py [--models models/default models/notebook-cnn1d-heldout] [--seconds 3] [--repeat 30]

Prints, per bundle: load time, first prediction, then the median and 90th percentile of warm
predictions of a ``--seconds`` clip (a real corpus clip cut or padded to length when
../shared/corpora exists, else generated speech-like audio), and for encoder bundles the share
spent in the encoder and in the network alone (for a combined bundle, all its heads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ser_lib.audio import load_audio
from ser_lib.bundle import ModelBundle

ROOT = Path(__file__).resolve().parent.parent


def clip(seconds: float) -> np.ndarray:
    corpus = ROOT.parent / "shared" / "corpora" / "ravdess"
    files = sorted(corpus.glob("Actor_*/*")) if corpus.is_dir() else []
    n = int(seconds * 16_000)
    if files:
        y = load_audio(files[0])
        return np.resize(y, n).astype(np.float32)
    t = np.arange(n) / 16_000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    y = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16_000) / k for k in range(1, 8))
    return (0.3 * y * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[str(ROOT / "models" / "default")])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    y = clip(args.seconds)
    print(f"clip: {args.seconds:.1f} s; {args.repeat} warm predictions per model")
    for path in args.models:
        t = time.perf_counter()
        bundle = ModelBundle.load(path)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        bundle.predict(y, sr=16_000)
        first = time.perf_counter() - t
        times, enc, head = [], [], []
        frames = [bundle.embed(y)] if bundle.frame_rate else None
        for _ in range(args.repeat):
            t = time.perf_counter()
            bundle.predict(y, sr=16_000)
            times.append(time.perf_counter() - t)
            if frames is not None:
                t = time.perf_counter()
                bundle.embed(y)
                enc.append(time.perf_counter() - t)
                for _ in range(10):  # the network alone (one head, or a combined bundle's heads), on the same frames
                    t = time.perf_counter()
                    bundle.probabilities_from_features(frames)
                    head.append(time.perf_counter() - t)
        times.sort()
        line = (
            f"{bundle.describe()}: load {load_s:.2f} s, first {first * 1000:.0f} ms, "
            f"warm median {statistics.median(times) * 1000:.1f} ms, p90 {times[int(0.9 * len(times)) - 1] * 1000:.1f} ms"
        )
        if enc:
            line += f" (encoder {statistics.median(enc) * 1000:.1f} ms, network {statistics.median(head) * 1000:.2f} ms)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
