"""Featurising with augmentation: the notebook's per-clip loop against ``featurize_files``, side by side.

Target (issue): at least 5x the notebook's feature rows per second on the same clips.

On the same N clips (default 60, spread evenly over the corpora's sorted manifest) it times:

(a) the notebook's loop, exactly as in ``shared/SEED_PIPELINE.md``, in this one process:
    ``librosa.load(path, duration=2.5, offset=0.6)``, then the 162 features (five separate librosa
    calls: ``notebook_features_reference``) of the clip, of the clip plus noise, and of
    ``pitch_shift(time_stretch(y, rate=0.8), n_steps=0.7)``: 3 rows per clip;
(b) ``featurize_files(paths, NotebookExtractor(augment=True), n_jobs=<cores>, cache=False)``: the first
    call (worker start-up and their first-call compilation included), then the same call again
    (where the process pool keeps its workers between calls, they are warm);
(c) the same with the cache warm (a temporary cache folder, filled by one run that is reported too).

Before (a), one clip goes through the loop untimed, so librosa's one-off numba compilation is not
counted against the notebook: (a) is its steady state, which makes the ratios conservative.

Usage::

    python benchmarks/bench_featurize.py [--n 60] [--data ../shared/corpora] [--jobs N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data() -> Path:
    env = os.environ.get("SER_SHARED_CORPORA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpora"


def pick_clips(data: Path, n: int) -> list[str]:
    """``n`` clips spread evenly over the sorted manifest of every corpus under ``data``."""
    from ser_lib.corpora import find_corpora

    manifest = find_corpora(data, durations=False).manifest
    idx = np.unique(np.linspace(0, len(manifest) - 1, min(n, len(manifest))).round().astype(int))
    return manifest["path"].iloc[idx].tolist()


def notebook_loop(paths: list[str], seed: int = 0) -> list[np.ndarray]:
    """The notebook's featurising loop (SEED_PIPELINE.md), one clip after the other."""
    import librosa

    from ser_lib.features import notebook_features_reference

    rng = np.random.default_rng(seed)  # the notebook used np.random; same cost, no global state
    rows = []
    for path in paths:
        data, sr = librosa.load(path, duration=2.5, offset=0.6)
        rows.append(notebook_features_reference(data, sr=sr))
        amp = 0.035 * rng.uniform() * np.amax(data)
        noisy = data + amp * rng.normal(size=data.shape[0])
        rows.append(notebook_features_reference(noisy, sr=sr))
        stretched = librosa.effects.time_stretch(data, rate=0.8)
        shifted = librosa.effects.pitch_shift(stretched, sr=sr, n_steps=0.7)
        rows.append(notebook_features_reference(shifted, sr=sr))
    return rows


#: The 162 values' blocks: ZCR, 12 chroma, 20 MFCC, RMS, 128 mel.
BLOCKS = (slice(0, 1), slice(1, 13), slice(13, 33), slice(33, 34), slice(34, 162))


def block_difference(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest difference relative to the size of its block (mel values span 8 decades)."""
    return max(float(np.max(np.abs(ours[b] - ref[b])) / (np.max(np.abs(ref[b])) or 1.0)) for b in BLOCKS)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="clips to featurise (default 60)")
    parser.add_argument("--data", type=Path, default=default_data(), help="folder holding the corpora")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for (b), (c)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from ser_lib.featurize import NotebookExtractor, featurize_files

    paths = pick_clips(args.data, args.n)
    load_before = os.getloadavg()
    print(f"{len(paths)} clips from {args.data}, {args.jobs} worker(s) on {os.cpu_count()} core(s), "
          f"load average {load_before[0]:.1f}", flush=True)

    extractor = NotebookExtractor(augment=True)
    notebook_loop(paths[:1])  # warm-up: numba compilation inside librosa, untimed
    nb_rows, t_nb = timed(lambda: notebook_loop(paths))
    (values, failures), t_par = timed(
        lambda: featurize_files(paths, extractor, n_jobs=args.jobs, cache=False, progress=False)
    )
    _, t_par2 = timed(lambda: featurize_files(paths, extractor, n_jobs=args.jobs, cache=False, progress=False))
    with tempfile.TemporaryDirectory(prefix="ser-bench-cache-") as cache:
        _, t_fill = timed(lambda: featurize_files(paths, extractor, n_jobs=args.jobs, cache=cache, progress=False))
        (cached, _), t_warm = timed(
            lambda: featurize_files(paths, extractor, n_jobs=args.jobs, cache=cache, progress=False)
        )

    rows_par = sum(v.shape[0] for v in values if v is not None)
    rows_warm = sum(v.shape[0] for v in cached if v is not None)
    # sanity: row 0 (the clip as loaded) must be the notebook's row 0, feature for feature
    agree = [block_difference(v[0], nb_rows[3 * i]) for i, v in enumerate(values) if v is not None]
    runs = [
        ("(a) notebook loop, 1 process", len(nb_rows), t_nb),
        (f"(b) featurize_files, {args.jobs} jobs, no cache", rows_par, t_par),
        ("    the same, called again", rows_par, t_par2),
        (f"    (cache fill: {args.jobs} jobs, cold cache)", rows_par, t_fill),
        (f"(c) featurize_files, {args.jobs} jobs, warm cache", rows_warm, t_warm),
    ]
    base = len(nb_rows) / t_nb
    print(f"\n{'run':<44}{'rows':>6}{'seconds':>10}{'rows/s':>10}{'vs (a)':>10}")
    for name, rows, seconds in runs:
        rate = rows / seconds
        print(f"{name:<44}{rows:>6}{seconds:>10.3f}{rate:>10.1f}{rate / base:>9.1f}x")
    print(f"\nfailures: {len(failures)}; row 0 vs the notebook's row 0: largest difference "
          f"{max(agree) if agree else float('nan'):.1e} of its block's scale; load average now {os.getloadavg()[0]:.1f}")
    result = {
        "clips": len(paths),
        "jobs": args.jobs,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before[0],
        "python": platform.python_version(),
        "runs": {name.strip(): {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 2)}
                 for name, rows, seconds in runs},
        "speedup_no_cache": round((rows_par / t_par) / base, 2),
        "speedup_no_cache_second_call": round((rows_par / t_par2) / base, 2),
        "speedup_warm_cache": round((rows_warm / t_warm) / base, 2),
        "failures": failures,
        "row0_max_rel_diff": max(agree) if agree else None,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":  # the featurizer starts worker processes
    main()
