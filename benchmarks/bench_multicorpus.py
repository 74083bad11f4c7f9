"""Beyond acted English: held-out speakers and leave-one-corpus-out, four-corpus default against the new recipe.

Runs (each saved as ``<out>/<run>.json`` when done, so an interrupted benchmark keeps what it has and a
second call skips finished runs):

- ``default``: the shipped four-corpus default (``--default``, trained on every speaker of RAVDESS,
  SAVEE, TESS, CREMA-D) on URDU, ASED and EMOVO, which it never heard (so a leave-one-corpus-out
  figure for each), plus its held-out run's per-file predictions on the four (``evaluation.json``);
- ``heldout``: the new recipe (every corpus, loss masked per corpus, balanced sampling, telephone
  and pitch views) with speakers held out in every corpus (the same speakers as before for the four);
- ``heldout-uniform``: the same without balanced sampling (every training clip equally likely);
- ``loco-<CORPUS>``: the new recipe trained without CORPUS, tested on all of it (by default on the
  held-out run's training speakers of the other corpora: see ``--loco-train``);
- ``four-loco-<CORPUS>``: the four-corpus recipe trained without one of the four, tested on it;
- ``all``: the multi-corpus recipe on every speaker (``--save-all``, default ``models/multicorpus``: the
  second head of the shipped default), carrying ``--multi-heldout``'s held-out figures.

``--combine`` then scores the combined model (the four-corpus and multi-corpus heads, log-linear
average) from the runs' saved per-file predictions, and ``--write-cards`` records the four-class figures
in the bundles' cards.

Every run is scored on eight classes per corpus (as before) and on four classes (angry, happy,
neutral with calm folded in, sad: :func:`ser_lib.evaluation.four_class_metrics`), which every
corpus labels. The table at the end compares what is there.

Usage::

    python benchmarks/time_frames.py --data ../shared/corpora          # fills the frame cache (optional)
    python benchmarks/bench_multicorpus.py --data ../shared/corpora --runs default heldout loco-URDU ...
        [--epochs 12] [--out benchmarks/multicorpus] [--save-heldout models/multicorpus-heldout]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from ser_lib.corpora import ACTED_ENGLISH, OTHER_CORPORA, find_corpora
from ser_lib.evaluation import four_class_metrics, summary_metrics
from ser_lib.training import TrainConfig, split_manifest, train

ROOT = Path(__file__).resolve().parent.parent


def _scores(pred: pd.DataFrame) -> dict:
    eight = {c: summary_metrics(g["emotion"], g["predicted"]) for c, g in pred.groupby("corpus", sort=True)}
    acted = pred[pred["corpus"].isin(ACTED_ENGLISH)]
    return {
        "eight": {
            "overall": summary_metrics(pred["emotion"], pred["predicted"]),
            "per_corpus": eight,
            "acted_four_corpora": summary_metrics(acted["emotion"], acted["predicted"]) if len(acted) else None,
        },
        "four": four_class_metrics(pred),
    }


def run_default(manifest: pd.DataFrame, bundle_dir: Path, predictions: Path | None = None) -> dict:
    from ser_lib.bundle import ModelBundle
    from ser_lib.featurize import EncoderExtractor, featurize_files

    bundle = ModelBundle.load(bundle_dir)
    unseen = manifest[manifest["corpus"].isin(OTHER_CORPORA)].reset_index(drop=True)
    t0 = time.time()
    # the encoder frames from the training cache (as train() scores its test files): no second encoding
    frames, failures = featurize_files(list(unseen["path"]), EncoderExtractor("whisper-base", "clean"), n_jobs=2, desc="frames")
    ok = [i for i, f in enumerate(frames) if f is not None]
    probs = bundle.probabilities_from_features([frames[i].astype("float32") for i in ok])
    new = unseen.iloc[ok][["path", "corpus", "speaker", "emotion"]].reset_index(drop=True)
    new["predicted"] = [bundle.labels[k] for k in probs.argmax(axis=1)]
    for k, lab in enumerate(bundle.labels):
        new[f"p_{lab}"] = probs[:, k]
    heldout = pd.DataFrame(json.loads((bundle_dir / "evaluation.json").read_text())["predictions"])
    # the URDU speakers the new recipe holds out: the same rows, for a like-for-like figure
    split = split_manifest(manifest.reset_index(drop=True), split="speaker", seed=0)
    test_paths = set(manifest.reset_index(drop=True)["path"].iloc[split.test])
    urdu_test = new[(new["corpus"] == "URDU") & new["path"].isin(test_paths)]
    if predictions is not None:  # the held-out run's predictions on the four, then every clip of the others
        save_predictions(pd.concat([heldout, new], ignore_index=True), predictions)
    return {
        "model": str(bundle_dir),
        "unseen": _scores(new),
        "heldout_acted": _scores(heldout),
        "urdu_heldout_speakers": four_class_metrics(urdu_test),
        "seconds": round(time.time() - t0, 1),
    }


def keep_frames_in_memory() -> None:
    """Load each file's frames once per process: the runs of one call share them (the training code
    reads them through ``ser_lib.training._features``). Reading the cache back costs minutes per
    run (about 40,000 files of frames), training a leave-one-corpus-out head about five."""
    import ser_lib.training as training

    original = training._features
    memo: dict[str, dict] = {}

    def cached(extractor, paths, progress, n_jobs, label):
        key = json.dumps(extractor.settings(), sort_keys=True, default=str)
        values, failed = memo.setdefault(key, ({}, {}))
        todo = [p for p in dict.fromkeys(paths) if p not in values]
        if todo:
            got, failures = original(extractor, todo, progress, n_jobs, label)
            values.update(zip(todo, got, strict=True))
            failed.update(dict(failures))
        return [values[p] for p in paths], [(p, failed[p]) for p in paths if p in failed]

    training._features = cached


def save_predictions(pred: pd.DataFrame, path: Path) -> None:
    """Per-file probabilities of a run (``<run>.predictions.csv.gz``), so that models can be compared
    or combined file by file later without training again (``--combine``)."""
    cols = ["path", "corpus", "speaker", "emotion", "predicted"] + [c for c in pred.columns if c.startswith("p_")]
    pred[cols].round(5).to_csv(path, index=False)


def run_training(manifest: pd.DataFrame, cfg: TrainConfig, save: Path | None = None, predictions: Path | None = None) -> dict:
    result = train(manifest, cfg)
    pred = result.evaluation.predictions
    if predictions is not None:
        save_predictions(pred, predictions)
    out = {
        "config": {k: v for k, v in vars(cfg).items() if not k.startswith("_")},
        "seconds": round(result.seconds, 1),
        "epochs_run": int(len(result.history)),
        **_scores(pred),
    }
    if cfg.split == "speaker":
        out["urdu_heldout_speakers"] = (
            four_class_metrics(pred[pred["corpus"] == "URDU"]) if (pred["corpus"] == "URDU").any() else None
        )
        if result.telephone is not None:
            out["telephone"] = _scores(result.telephone.predictions)
    if save is not None:
        folder = result.bundle.save(save, evaluation=result.evaluation.to_json(), overwrite=True)
        out["saved"] = str(folder)
    return out


def run_combined(out: Path, multi_heldout: Path, weights: list[float] | None) -> None:
    """The combined model (the shipped default: the four-corpus and the multi-corpus heads, their
    probabilities' log-linear average), scored from the runs' saved per-file predictions, no training:

    - ``combined-heldout``: the four-corpus recipe's held-out predictions (and its predictions on the
      corpora it never heard) with ``multi_heldout``'s held-out predictions, on the clips both have;
    - ``combined-loco-C``: two members that never heard C: ``four-loco-C`` (or, for a corpus outside
      the four, the four-corpus default) with ``loco-C``.
    """
    from ser_lib.ensemble import combine_predictions, read_predictions

    def table(name: str) -> pd.DataFrame | None:
        f = out / f"{name}.predictions.csv.gz"
        return read_predictions(f) if f.is_file() else None

    four = table("default")
    if four is None:
        raise SystemExit(f"no {out}/default.predictions.csv.gz: run --runs default first")
    labels = [c[2:] for c in four.columns if c.startswith("p_")]
    pairs = {"combined-heldout": (four, read_predictions(multi_heldout))}
    for f in sorted(out.glob("loco-*.predictions.csv.gz")):
        corpus = f.name.removeprefix("loco-").removesuffix(".predictions.csv.gz")
        other = table(f"four-loco-{corpus}") if corpus in ACTED_ENGLISH else four[four["corpus"] == corpus]
        if other is not None and len(other):
            pairs[f"combined-loco-{corpus}"] = (other, read_predictions(f))
    for name, (a, b) in pairs.items():
        pred = combine_predictions([a, b], labels, weights)
        res = {"members": ["four-corpus", "multi-corpus"], "weights": weights or [0.5, 0.5], **_scores(pred)}
        if name == "combined-heldout":
            res["urdu_heldout_speakers"] = four_class_metrics(pred[pred["corpus"] == "URDU"])
        (out / f"{name}.json").write_text(json.dumps(res, indent=1, default=float))
        print(f"{name}: {len(pred):,} clips, four-class UA {res['four']['UA']:.3f}")


def loco_manifest(manifest: pd.DataFrame, holdout: str, args) -> pd.DataFrame:
    """The files a leave-one-corpus-out run sees: all of ``holdout`` (the test set) and, with
    ``--loco-train heldout-train``, only the *training* speakers of the held-out run for the other
    corpora (their augmented frames are then already cached: no encoding beyond the held-out run's);
    ``all`` trains on every other file."""
    if args.loco_train == "all":
        return manifest
    m = manifest.reset_index(drop=True)
    split = split_manifest(m, split="speaker", seed=0)
    keep = (m["corpus"] == holdout).to_numpy().copy()
    keep[split.train] = True
    return m[keep].reset_index(drop=True)


def _rows(metrics_per_corpus: dict, protocol: str) -> list[dict]:
    return [
        {"corpus": c, "protocol": protocol, **{k: round(float(m[k]), 4) for k in ("UA", "WA", "macro_f1")}, "n": int(m["n"])}
        for c, m in sorted(metrics_per_corpus.items())
    ]


def write_cards(out: Path, four_dir: Path, multi_dir: Path, combined_dir: Path) -> None:
    """Record the four-class figures in the bundles' cards (``metrics.cross_corpus``), for the Evaluation
    page: the four-corpus model, the multi-corpus held-out bundle and the combined default, each with its
    recipe's held-out speakers and its leave-one-corpus-out runs."""
    from ser_lib.cards import read_card
    from ser_lib.io import atomic_write_text, dumps_json

    runs = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    note = "four classes: angry, happy, neutral (calm folded in), sad; benchmarks/bench_multicorpus.py"

    def left_out(prefix: str) -> list[dict]:
        return [
            row
            for name, r in runs.items()
            if name.startswith(prefix)
            for row in _rows({name.removeprefix(prefix): r["four"]}, "corpus left out")
        ]

    blocks = {}
    if "default" in runs:
        d = runs["default"]
        rows = _rows(d["heldout_acted"]["four"]["per_corpus"], "held-out speakers")
        rows += _rows(d["unseen"]["four"]["per_corpus"], "corpus left out")  # the four-corpus model never heard them
        blocks[four_dir] = rows + left_out("four-loco-")
    if "heldout" in runs:
        blocks[multi_dir] = _rows(runs["heldout"]["four"]["per_corpus"], "held-out speakers") + left_out("loco-")
    if "combined-heldout" in runs:
        blocks[combined_dir] = _rows(runs["combined-heldout"]["four"]["per_corpus"], "held-out speakers") + left_out(
            "combined-loco-"
        )
    for folder, rows in blocks.items():
        if not (folder / "card.json").is_file():
            print(f"{folder}: no bundle there, skipped")
            continue
        card = read_card(folder)
        card.setdefault("metrics", {})["cross_corpus"] = {"note": note, "rows": rows}
        atomic_write_text(folder / "card.json", dumps_json(card))
        print(f"{folder}: {len(rows)} cross-corpus rows written to its card")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "corpora"))
    p.add_argument("--runs", nargs="+", default=["default", "heldout"])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--four-corpus",
        dest="default",
        default=str(ROOT / "models" / "four-corpus"),
        help="the four-corpus model, scored on the corpora it never heard; its evaluation.json holds its recipe's "
        "held-out predictions on the four (default models/four-corpus)",
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "multicorpus"))
    p.add_argument("--save-heldout", help="save the held-out run's bundle here")
    p.add_argument(
        "--save-all",
        default=str(ROOT / "models" / "multicorpus"),
        help="run 'all' (the multi-corpus recipe on every speaker) saves its bundle here (default models/multicorpus)",
    )
    p.add_argument("--all-epochs", type=int, default=20, help="epochs of run 'all' (default 20, as the held-out run)")
    p.add_argument("--force", action="store_true", help="rerun finished runs")
    p.add_argument(
        "--loco-train",
        choices=["heldout-train", "all"],
        default="heldout-train",
        help="leave-one-corpus-out runs train on the held-out run's training speakers of the other corpora (default), or all",
    )
    p.add_argument(
        "--write-cards",
        action="store_true",
        help="record the four-class figures in the cards of the four-corpus model, --multi-heldout and --combined, then stop",
    )
    p.add_argument("--combined", default=str(ROOT / "models" / "default"), help="the combined bundle (default models/default)")
    p.add_argument(
        "--combine",
        action="store_true",
        help="score the combined model (four-corpus + multi-corpus heads) from the saved predictions, then stop",
    )
    p.add_argument(
        "--multi-heldout",
        default=str(ROOT / "models" / "multicorpus-heldout"),
        help="the multi-corpus held-out bundle whose evaluation.json --combine uses (default models/multicorpus-heldout)",
    )
    p.add_argument("--weights", nargs=2, type=float, help="--combine: weights of the four-corpus and multi-corpus members")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.write_cards:
        write_cards(out, Path(args.default), Path(args.multi_heldout), Path(args.combined))
        return
    if args.combine:
        run_combined(out, Path(args.multi_heldout), args.weights)
        print_table(out)
        return
    manifest = find_corpora(args.data).manifest
    keep_frames_in_memory()
    for run in args.runs:
        path = out / f"{run}.json"
        if path.exists() and not args.force:
            print(f"{run}: done before ({path})")
            continue
        t0 = time.time()
        common = dict(epochs=args.epochs, n_jobs=2, telephone_eval=run == "heldout")
        preds = out / f"{run}.predictions.csv.gz"
        if run == "default":
            res = run_default(manifest, Path(args.default), preds)
        elif run == "heldout":
            res = run_training(
                manifest, TrainConfig(split="speaker", **common), Path(args.save_heldout) if args.save_heldout else None, preds
            )
        elif run == "heldout-uniform":  # the same without balanced sampling (every clip equally likely)
            res = run_training(
                manifest,
                TrainConfig(split="speaker", balance=False, **{**common, "telephone_eval": True}),
                Path(args.save_heldout) if args.save_heldout else None,
                preds,
            )
        elif run == "all":  # the multi-corpus recipe on every speaker, carrying --multi-heldout's figures
            from ser_lib.cards import carry_held_out_figures, read_card

            cfg = TrainConfig(split="none", **{**common, "epochs": args.all_epochs, "telephone_eval": False})
            result = train(manifest, cfg)
            evaluation = carry_held_out_figures(result.bundle.card, read_card(args.multi_heldout), args.multi_heldout)
            result.bundle.card["training"]["command"] = (
                f"python benchmarks/bench_multicorpus.py --runs all --all-epochs {args.all_epochs}"
            )
            folder = result.bundle.save(args.save_all, evaluation=evaluation, overwrite=True)
            res = {
                "config": {k: v for k, v in vars(cfg).items() if not k.startswith("_")},
                "seconds": round(result.seconds, 1),
                "epochs_run": int(len(result.history)),
                "saved": str(folder),
            }
        elif run.startswith("loco-"):
            res = run_training(
                loco_manifest(manifest, run[5:], args),
                TrainConfig(split="corpus", holdout_corpus=run[5:], **common),
                predictions=preds,
            )
        elif run.startswith("four-loco-"):
            cfg = TrainConfig(split="corpus", holdout_corpus=run[10:], corpora=ACTED_ENGLISH, **common)
            res = run_training(loco_manifest(manifest, run[10:], args), cfg, predictions=preds)
        else:
            raise SystemExit(f"unknown run {run!r}: default, heldout, loco-CORPUS or four-loco-CORPUS")
        res["wall_s"] = round(time.time() - t0, 1)
        res["load_average"] = os.getloadavg()[0]
        path.write_text(json.dumps(res, indent=1, default=float))
        print(f"{run}: {res['wall_s']} s", flush=True)
    print_table(out)


def print_table(out: Path) -> None:
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    rows = []
    if "default" in runs:
        d = runs["default"]
        for c, m in d["heldout_acted"]["four"].get("per_corpus", {}).items():
            rows.append(
                ("four-corpus default", "held-out speakers", c, m["UA"], d["heldout_acted"]["eight"]["per_corpus"][c]["UA"])
            )
        acted = d["heldout_acted"]["eight"]["acted_four_corpora"]
        rows.append(
            ("four-corpus default", "held-out speakers", "the four acted corpora", d["heldout_acted"]["four"]["UA"], acted["UA"])
        )
        for c, m in d["unseen"]["four"].get("per_corpus", {}).items():
            rows.append(("four-corpus default", "corpus unseen", c, m["UA"], None))
        rows.append(("four-corpus default", "held-out speakers", "URDU (test speakers)", d["urdu_heldout_speakers"]["UA"], None))
    names = {"heldout": "multi-corpus", "heldout-uniform": "multi-corpus, uniform sampling", "combined-heldout": "combined"}
    for run_name, who in names.items():
        if run_name not in runs:
            continue
        h = runs[run_name]
        for c, m in h["four"]["per_corpus"].items():
            rows.append((who, "held-out speakers", c, m["UA"], h["eight"]["per_corpus"][c]["UA"]))
        rows.append((who, "held-out speakers", "all corpora", h["four"]["UA"], h["eight"]["overall"]["UA"]))
        acted = h["eight"]["acted_four_corpora"]
        rows.append((who, "held-out speakers", "the four acted corpora", None, acted["UA"] if acted else None))
        if h.get("urdu_heldout_speakers"):
            rows.append((who, "held-out speakers", "URDU (test speakers)", h["urdu_heldout_speakers"]["UA"], None))
    recipes = {"four-loco-": "four-corpus recipe", "loco-": "multi-corpus", "combined-loco-": "combined"}
    for name, r in runs.items():
        for prefix, who in recipes.items():
            if name.startswith(prefix):
                rows.append((who, "corpus left out", name.removeprefix(prefix), r["four"]["UA"], None))
    cols = ["model", "protocol", "corpus", "UA (4 classes)", "UA (8 classes)"]
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt(v) for v in r) + " |")


if __name__ == "__main__":
    main()
