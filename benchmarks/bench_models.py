"""Compare the models under the same protocol, side by side, and write benchmarks/results.json.

Rows (each: WA, UA, macro-F1 overall and per corpus, clean and through the telephone channel):

- ``notebook_cnn1d`` on the notebook's random split (leaky, as the notebook reported it)
- ``notebook_cnn1d`` speaker-independent (the honest floor)
- ``logmel_cnn`` speaker-independent (the fast CNN option)
- ``linear_probe``: logistic regression on the mean and std of Whisper-base frames
- ``encoder_head``: the CNN head on Whisper-base frames (the shipped default's recipe)

Usage::

    python benchmarks/bench_models.py --data ../shared/corpora [--only encoder_head linear_probe] [--epochs-notebook 50]

Every run prints its figures and its time; results.json is updated row by row (re-running one
model replaces only its rows).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from ser_lib.corpora import find_corpora
from ser_lib.evaluation import evaluate_predictions
from ser_lib.featurize import EncoderExtractor, featurize_files
from ser_lib.training import TrainConfig, split_manifest, train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"


def rows_from(model: str, protocol: str, condition: str, evaluation, seconds: float, extra: dict | None = None) -> list[dict]:
    out = []
    for corpus, m in [("overall", evaluation.overall), *evaluation.per_corpus.items()]:
        out.append({"model": model, "protocol": protocol, "condition": condition, "corpus": corpus,
                    "WA": round(m["WA"], 4), "UA": round(m["UA"], 4), "macro_f1": round(m["macro_f1"], 4), "n": m["n"],
                    "train_seconds": round(seconds, 1), **(extra or {})})
    return out


def save_rows(rows: list[dict]) -> None:
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    keys = {(r["model"], r["protocol"], r["condition"]) for r in rows}
    kept = [r for r in old if (r["model"], r["protocol"], r["condition"]) not in keys]
    RESULTS.write_text(json.dumps(kept + rows, indent=1))


def show(rows: list[dict]) -> None:
    for r in rows:
        print(
            f"  {r['model']:<14} {r['protocol']:<8} {r['condition']:<10} {r['corpus']:<8} "
            f"WA {r['WA']:.3f}  UA {r['UA']:.3f}  F1 {r['macro_f1']:.3f}  n {r['n']}"
        )


def run_trained(
    manifest,
    model_type: str,
    split: str,
    epochs: int,
    save_dir: str | None = None,
    *,
    augment: bool = True,
    label: str | None = None,
    views: tuple[str, ...] = ("telephone",),
) -> list[dict]:
    t = time.time()
    def report(event: dict) -> None:
        if event.get("stage") == "epoch":
            logs = " ".join(f"{k} {event[k]:.3f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in event)
            print(f"  epoch {event['epoch']}/{event['epochs']} {time.time() - t:.0f} s  {logs}", flush=True)

    cfg = TrainConfig(
        model_type=model_type,
        split=split,
        epochs=epochs,
        augment=augment,
        telephone_eval=model_type == "encoder_head",
        encoder_views=views,
    )
    res = train(manifest, cfg, progress=report)
    secs = time.time() - t
    print(f"{model_type} / {split}: {secs:.0f} s in all, {len(res.history)} epochs")
    if save_dir and augment:
        name = f"{(label or model_type).replace('_', '-')}-{'heldout' if split == 'speaker' else split}"
        res.bundle.card["training"]["command"] = "python " + " ".join(sys.argv)
        folder = res.bundle.save(Path(save_dir) / name, evaluation=res.evaluation.to_json(), overwrite=True)
        res.history.to_csv(folder / "history.csv")
        print(f"saved {folder}")
    name = label or model_type
    rows = rows_from(name, split, "clean", res.evaluation, secs, {"epochs": len(res.history)})
    if res.telephone is not None:
        rows += rows_from(name, split, "telephone", res.telephone, secs, {"epochs": len(res.history)})
    return rows


def run_probe(manifest) -> list[dict]:
    """Mean+std of encoder frames, standardised, multinomial logistic regression (no augmentation)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t = time.time()
    split = split_manifest(manifest, split="speaker")
    rows = []
    pooled = {}
    for view in ("clean", "telephone"):
        ids = list(split.train) + list(split.test) if view == "clean" else list(split.test)
        vals, _ = featurize_files([manifest["path"].iloc[i] for i in ids], EncoderExtractor(view=view), desc=f"frames {view}")
        pooled[view] = {
            i: np.concatenate([v.astype(np.float32).mean(0), v.astype(np.float32).std(0)])
            for i, v in zip(ids, vals, strict=True)
            if v is not None
        }
    tr = [i for i in split.train if i in pooled["clean"]]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    clf.fit(np.stack([pooled["clean"][i] for i in tr]), manifest["emotion"].iloc[tr])
    secs = time.time() - t
    for view in ("clean", "telephone"):
        te = [i for i in split.test if i in pooled[view]]
        table = manifest.iloc[te][["path", "corpus", "speaker", "emotion"]].reset_index(drop=True)
        table["predicted"] = clf.predict(np.stack([pooled[view][i] for i in te]))
        ev = evaluate_predictions(table, list(clf.classes_))
        rows += rows_from("linear_probe", "speaker", view, ev, secs)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument(
        "--only", nargs="+", default=["encoder_head", "linear_probe", "notebook_cnn1d", "notebook_random", "logmel_cnn"]
    )
    ap.add_argument("--epochs-notebook", type=int, default=50, help="the notebook trained 50 epochs")
    ap.add_argument("--epochs-logmel", type=int, default=20)
    ap.add_argument("--epochs-head", type=int, default=30)
    ap.add_argument("--save-dir", help="also save each trained bundle here as <model-type>-heldout (or -random)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    manifest = find_corpora(args.data, durations=False).manifest
    print(f"{len(manifest)} clips under {args.data}")
    for what in args.only:
        if what == "linear_probe":
            rows = run_probe(manifest)
        elif what == "notebook_random":
            rows = run_trained(manifest, "notebook_cnn1d", "random", args.epochs_notebook, args.save_dir)
        elif what == "notebook_cnn1d":
            rows = run_trained(manifest, "notebook_cnn1d", "speaker", args.epochs_notebook, args.save_dir)
        elif what == "logmel_cnn":
            rows = run_trained(manifest, "logmel_cnn", "speaker", args.epochs_logmel, args.save_dir)
        elif what == "encoder_head":
            rows = run_trained(manifest, "encoder_head", "speaker", args.epochs_head, args.save_dir)
        elif what == "encoder_head_noaug":  # ablation: what the telephone-channel augmentation buys
            rows = run_trained(manifest, "encoder_head", "speaker", args.epochs_head, augment=False, label=what)
        elif what == "encoder_head_pitch":  # adds pitch-shifted copies (other voices) to the telephone ones
            rows = run_trained(
                manifest, "encoder_head", "speaker", args.epochs_head, args.save_dir, label=what, views=("telephone", "pitch")
            )
        else:
            raise SystemExit(f"unknown --only {what}")
        show(rows)
        save_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
