"""Score a bundle again on the held-out files its ``evaluation.json`` lists, with today's serving path.

    python benchmarks/rescore_heldout.py --model models/notebook-cnn1d-heldout [--corpora ../shared/corpora] [--json OUT]

The saved evaluation was measured when the bundle was trained (features from the training
extractors, network in Keras). This runs the files through what ``predict``, ``evaluate`` and the
pages use now (the front end's own decoding, the network in ONNX Runtime) and prints both figures
side by side, per corpus, with how many files changed their predicted emotion and the largest
probability difference. Paths in the saved evaluation that start with ``../shared/corpora`` are
looked up under ``--corpora`` instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ser_lib.bundle import ModelBundle
from ser_lib.evaluation import evaluate_predictions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="bundle folder with an evaluation.json")
    ap.add_argument("--corpora", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "corpora"))
    ap.add_argument("--limit", type=int, default=0, help="score only the first N files (0: all)")
    ap.add_argument("--json", metavar="OUT", help="write the figures to OUT")
    args = ap.parse_args()

    bundle = ModelBundle.load(args.model)
    saved = bundle.evaluation()
    if not saved or not saved.get("predictions"):
        raise SystemExit(f"{args.model} has no evaluation.json with per-file predictions")
    before = pd.DataFrame(saved["predictions"])
    if args.limit:
        before = before.iloc[: args.limit]
    prefix = "../shared/corpora"
    paths = [str(Path(args.corpora) / p[len(prefix) + 1 :]) if p.startswith(prefix) else p for p in before["path"]]
    t0 = time.perf_counter()
    table = bundle.predict_files(paths)
    seconds = time.perf_counter() - t0
    ok = ~table["error"].fillna("").astype(bool).to_numpy()
    after = before[ok].copy().reset_index(drop=True)
    after["predicted"] = table.loc[ok, "emotion"].to_numpy()
    after["confidence"] = table.loc[ok, "confidence"].to_numpy()
    p_cols = [f"p_{lab}" for lab in bundle.labels]
    diff = np.abs(table.loc[ok, p_cols].to_numpy(float) - before.loc[ok, p_cols].to_numpy(float))
    was = evaluate_predictions(before[ok].reset_index(drop=True), bundle.labels)
    now = evaluate_predictions(after, bundle.labels)
    rows = []
    for corpus in [*sorted(now.per_corpus), "overall"]:
        a = was.overall if corpus == "overall" else was.per_corpus[corpus]
        b = now.overall if corpus == "overall" else now.per_corpus[corpus]
        rows.append({"corpus": corpus, "n": b["n"], "UA saved": a["UA"], "UA now": b["UA"], "WA saved": a["WA"],
                     "WA now": b["WA"], "macro-F1 saved": a["macro_f1"], "macro-F1 now": b["macro_f1"]})
    frame = pd.DataFrame(rows).set_index("corpus")
    changed = int((after["predicted"].to_numpy() != before.loc[ok, "predicted"].to_numpy()).sum())
    print(f"{bundle.name}: {int(ok.sum())} of {len(before)} held-out files scored in {seconds:.0f} s "
          f"({1000 * seconds / max(len(before), 1):.1f} ms a file); {len(before) - int(ok.sum())} unreadable")
    print(frame.round(3).to_string())
    print(f"predicted emotion changed on {changed} files ({100 * changed / max(int(ok.sum()), 1):.2f}%); "
          f"largest probability difference {diff.max():.2e}, mean {diff.mean():.2e}")
    if args.json:
        report = {"model": bundle.name, "seconds": seconds, "changed": changed, "max_diff": float(diff.max()),
                  "table": frame.reset_index().to_dict(orient="records")}
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
