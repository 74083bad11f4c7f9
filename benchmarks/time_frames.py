"""Time the encoder frames of every corpus clip, per view (and fill the feature cache for training).

Training the encoder head spends most of its time here: Whisper-base frames of every clip, clean,
through the telephone channel and pitch-shifted. A second run costs seconds (cache hits).

Usage::

    python benchmarks/time_frames.py --data ../shared/corpora [--views clean telephone pitch] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from ser_lib.corpora import find_corpora
from ser_lib.featurize import EncoderExtractor, featurize_files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/corpora")
    p.add_argument("--views", nargs="+", default=["clean", "telephone", "pitch"])
    p.add_argument("--corpora", nargs="+", help="only these corpora")
    p.add_argument("--n-jobs", type=int, default=None)
    args = p.parse_args()
    m = find_corpora(args.data, durations=False).manifest
    if args.corpora:
        m = m[m["corpus"].isin(args.corpora)]
    paths = list(m["path"])
    out = {"clips": len(paths), "load_average_start": os.getloadavg()[0]}
    for view in args.views:
        t0 = time.time()
        _, failures = featurize_files(paths, EncoderExtractor("whisper-base", view, seed=0), n_jobs=args.n_jobs, desc=view)
        out[view] = {"seconds": round(time.time() - t0, 1), "failures": len(failures)}
        print(json.dumps({view: out[view]}), flush=True)
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
