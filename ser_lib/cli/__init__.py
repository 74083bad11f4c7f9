"""The command line: ``python -m ser_lib <command> --help`` explains each command.

Commands: ``corpora``, ``train``, ``evaluate``, ``calibrate``, ``predict`` (and ``analyze-call``,
``analyze-calls`` for whole calls). Errors print one clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import __version__
from ..cards import read_card
from ..config import MODEL_TYPE_ALIASES, MODEL_TYPES, MODELS_DIR, SPLITS, default_model_path
from ..errors import SERError
from ..io import check_writable, release_folder, reserve_folder
from .common import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, add_uncertain_below, number

logger = logging.getLogger("ser_lib")


def _write_json(data: dict, out: str) -> None:
    from ..io import write_json

    write_json(out, data)
    print(f"wrote {out}")


def cmd_corpora(args) -> int:
    from ..corpora import find_corpora

    scan = find_corpora(args.data)
    m = scan.manifest
    print(f"Corpora under {scan.root}: {len(m)} files, {m['speaker'].nunique()} speakers, {m['duration'].sum() / 3600:.2f} h")
    print(scan.counts().to_string())
    print()
    print(m.groupby("corpus").agg(speakers=("speaker", "nunique"), mean_s=("duration", "mean")).round(2).to_string())
    if scan.skipped:
        print(f"\nSkipped {len(scan.skipped)} audio file(s):")
        for path, why in scan.skipped[: args.show_skipped]:
            print(f"  {path}: {why}")
        if len(scan.skipped) > args.show_skipped:
            print(f"  ... and {len(scan.skipped) - args.show_skipped} more (--show-skipped N)")
    return 0


def _epoch_printer():
    from tqdm.auto import tqdm

    state = {"bar": None}

    def progress(step) -> None:
        if step.stage == "featurise":
            if state["bar"] is None or state["bar"].desc != step.info.get("desc"):
                if state["bar"] is not None:
                    state["bar"].close()
                state["bar"] = tqdm(total=step.total, desc=step.info.get("desc", "featurising"), unit="file")
            state["bar"].update(step.done - state["bar"].n)
        elif step.stage == "epoch":
            if state["bar"] is None or state["bar"].desc != "training":
                if state["bar"] is not None:
                    state["bar"].close()
                state["bar"] = tqdm(total=step.total, desc="training", unit="epoch")
            bar = state["bar"]
            bar.update(1)
            bar.set_postfix(
                {k: f"{step.info[k]:.3f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in step.info}
            )
        elif step.stage in ("evaluate", "done") and state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    return progress


def cmd_train(args) -> int:
    out = Path(args.out)
    if out.resolve() == default_model_path().resolve() and not args.overwrite:
        raise SERError(f"{out} is the shipped default model: pass --overwrite to replace it, or choose another --out.")
    held_out = read_card(args.metrics_from) if args.metrics_from else None  # checked before hours of training
    # claim the name now: a second training asking for it is told so at once, not after its work
    token = reserve_folder(out, overwrite=args.overwrite, hint="pass --overwrite")
    try:
        return _train_into(args, out, held_out)
    finally:
        release_folder(out, token)  # a no-op once the saved bundle replaced the claim


def _train_into(args, out: Path, held_out: dict | None) -> int:
    from ..corpora import find_corpora
    from ..training import TrainConfig, train

    manifest = find_corpora(args.data).manifest
    cfg = TrainConfig(
        model_type=args.model_type,
        epochs=args.epochs,
        batch_size=args.batch_size,
        test_size=args.test_size,
        augment=not args.no_augment,
        seed=args.seed,
        corpora=tuple(args.corpora) if args.corpora else None,
        encoder_views=tuple(args.encoder_views),
        mask_loss=not args.no_loss_masking,
        balance=not args.no_balance,
        split="corpus" if args.holdout_corpus else args.split,
        holdout_corpus=args.holdout_corpus,
    )
    result = train(manifest, cfg, progress=_epoch_printer())
    evaluation = result.evaluation.to_json() if result.evaluation else None
    if held_out is not None:  # a final model trained on everything carries the held-out run's figures
        from ..cards import carry_held_out_figures

        evaluation = carry_held_out_figures(result.bundle.card, held_out, args.metrics_from) or evaluation
    result.bundle.card["training"]["command"] = " ".join(["python -m ser_lib", *args.argv])
    folder = result.bundle.save(out, evaluation=evaluation, overwrite=args.overwrite)  # replaces the claim
    print(f"saved {folder} ({result.seconds / 60:.1f} min)")
    if result.evaluation is not None:
        print(result.evaluation.summary_table().round(3).to_string())
    if result.telephone is not None:
        print("through the telephone channel:")
        print(result.telephone.summary_table().round(3).to_string())
    return 0


def cmd_evaluate(args) -> int:
    from tqdm.auto import tqdm

    from ..bundle import ModelBundle
    from ..corpora import find_corpora
    from ..evaluation import evaluate_bundle

    if args.json:
        check_writable(args.json, what="--json")
    bundle = ModelBundle.load(args.model)
    manifest = find_corpora(args.data).manifest
    with tqdm(total=len(manifest), desc="evaluating", unit="file") as bar:
        result = evaluate_bundle(bundle, manifest, progress=lambda step: bar.update(step.done - bar.n))
    print(f"model: {bundle.describe()}")
    print(result.summary_table().round(3).to_string())
    print()
    print(result.per_class.round(3).to_string())
    result.meta["temperature"] = bundle.temperature  # its probabilities are calibrated: `calibrate` undoes this
    if args.json:
        _write_json(result.to_json(include_predictions=not args.no_predictions), args.json)
    return 0


def cmd_predict(args) -> int:
    from ..bundle import ModelBundle
    from ..decisions import uncertain_below

    if args.json:
        check_writable(args.json, what="--json")
    bundle = ModelBundle.load(args.model)
    bundle.uncertain_below = uncertain_below(bundle.card, override=args.uncertain_below)
    table = bundle.predict_files(args.files)
    print(f"model: {bundle.describe()}")
    if bundle.uncertain_below > 0:
        print(f"'uncertain' below a confidence of {bundle.uncertain_below:.2f}")
    for _, row in table.iterrows():
        print(predict_line(row, bundle.labels))
    if args.json:
        _write_json(
            {
                "model": bundle.describe(),
                "uncertain_below": bundle.uncertain_below,
                "predictions": table.to_dict(orient="records"),
            },
            args.json,
        )
    failed = table["error"].astype(bool) & ~table["no_speech"].fillna(False).astype(bool)
    return EXIT_SOME_FAILED if failed.any() else EXIT_OK


def predict_line(row, labels) -> str:
    """One file's line of ``predict``: its verdict (emotion, "uncertain" or "no speech found"), confidence,
    the next two emotions, and valence and arousal."""
    if row["no_speech"] is True or row["no_speech"] == 1:
        why = str(row["message"] or "the voice-activity detector heard no speech in it")
        return f"{row['path']}: no speech found ({why.split(': ', 1)[-1]})"
    if row["error"]:
        return f"{row['path']}: ERROR {row['error']}"
    top = sorted(((row[f"p_{lab}"], lab) for lab in labels), reverse=True)[:3]
    others = ", ".join(f"{lab} {p:.2f}" for p, lab in top[1:])
    head = (
        f"uncertain (most likely {row['emotion']} {row['confidence']:.2f}"
        if row["uncertain"]
        else (f"{row['emotion']} ({row['confidence']:.2f}")
    )
    return f"{row['path']}: {head}; then {others}; valence {row['valence']:+.2f}, arousal {row['arousal']:+.2f})"


def cmd_calibrate(args) -> int:
    from ..calibration import calibrate_bundle

    for folder in args.bundles:
        r = calibrate_bundle(folder, write=not args.dry_run)
        print(f"{folder}: fitted on {r.fitted_on}: {r.n} clips")
        shipped = (
            f"temperature {r.temperature:.3f}"
            if r.applied
            else (f"temperature 1 (the fitted {r.fitted_temperature:.3f} did not lower ECE on the other half of the speakers)")
        )
        print(f"  {shipped}; ECE {r.ece_before:.4f} -> {r.ece_after:.4f} (15 bins, top label)")
        for f in r.folds:
            th = f["threshold"]
            print(
                f"  fold {f['fold']}: fitted on {f['fit_speakers']} speakers, measured on {f['test_speakers']} "
                f"({f['n_test']} clips): T {f['temperature']:.3f}, ECE {f['ece_before']:.4f} -> {f['ece_after']:.4f}; "
                f"uncertain below {th['uncertain_below']:.3f}: coverage {th['coverage']:.1%}, "
                f"accepted accuracy {th['accepted_accuracy']:.1%} (all: {th['overall_accuracy']:.1%})"
            )
        t = r.threshold
        print(
            f"  'uncertain' below {t.uncertain_below:.3f}: coverage {t.coverage:.1%}, accepted accuracy "
            f"{t.accepted_accuracy:.1%} (all: {t.overall_accuracy:.1%})"
        )
        print("  (dry run: card not changed)" if args.dry_run else f"  wrote calibration and decision into {folder}/card.json")
    return EXIT_OK


def cmd_combine(args) -> int:
    from ..ensemble import combine_bundles

    bundle, evaluation = combine_bundles(args.members, weights=args.weights, predictions=args.predictions)
    bundle.card["training"]["command"] = " ".join(["python -m ser_lib", *args.argv])
    folder = bundle.save(args.out, evaluation=evaluation.to_json() if evaluation else None, overwrite=args.overwrite)
    weights = bundle.card["training"]["ensemble"]["weights"]
    print(f"saved {folder}: {' + '.join(f'{w:g} x {Path(m).name}' for w, m in zip(weights, args.members, strict=True))}")
    if evaluation is None:
        print("no held-out figures: not every member has held-out predictions (evaluation.json or --predictions)")
        return EXIT_OK
    print(
        f"held-out figures from the members' held-out predictions, combined on the {evaluation.overall['n']:,} clips they share:"
    )
    print(evaluation.summary_table().round(3).to_string())
    print(f"next: python -m ser_lib calibrate {folder}   (temperature and 'uncertain' threshold for the combined model)")
    return EXIT_OK


def cmd_export_onnx(args) -> int:
    from ..export import export_bundle

    for folder in args.bundles:
        target, diff = export_bundle(folder, force=args.force)
        note = f"Keras and ONNX agree within {diff:.1e}" if diff else "already converted"
        print(f"{target}: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ser_lib",
        epilog=EXIT_CODES_HELP,
        description="Speech emotion recognition: find corpora, train and evaluate models, predict emotions, analyse calls.",
    )
    p.add_argument("--version", action="version", version=f"ser_lib {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "corpora",
        epilog=EXIT_CODES_HELP,
        help="list the corpora found under a data folder",
        description=(
            "Find RAVDESS, TESS, SAVEE and CREMA-D under DIR by their file-name patterns; print counts "
            "per corpus and emotion, and files that were skipped."
        ),
    )
    c.add_argument("--data", help="folder holding the corpora (default: $SER_DATA_DIR, then data/)")
    c.add_argument(
        "--show-skipped", type=number(int, low=0), default=20, metavar="N", help="list at most N skipped files (default 20)"
    )
    c.set_defaults(func=cmd_corpora)

    t = sub.add_parser(
        "train",
        epilog=EXIT_CODES_HELP,
        help="featurise, train, evaluate and save a model bundle",
        description=(
            "Train a model on the corpora under DIR. By default speakers are split (about 20% of each "
            "corpus's speakers held out), the training side is augmented, and the held-out figures go "
            "into the bundle's card. Features are cached, so a second run skips featurising."
        ),
    )
    t.add_argument("--data", help="folder holding the corpora (default: $SER_DATA_DIR, then data/)")
    t.add_argument(
        "--model-type",
        choices=[*MODEL_TYPES, *MODEL_TYPE_ALIASES],
        default="encoder_head",
        metavar="{" + ",".join(MODEL_TYPES) + "}",
        help=(
            "encoder_head: CNN head on Whisper-base frames (default, best); logmel_cnn: 2D CNN on "
            "log-mel (fast); notebook_cnn1d: the notebook's 1D CNN on 162 features (reference; "
            "seed_cnn1d is its old name)"
        ),
    )
    t.add_argument("--out", default=str(MODELS_DIR / "my-model"), help="bundle folder to write (default models/my-model)")
    t.add_argument("--epochs", type=number(int, low=1, high=10_000), default=30)
    t.add_argument("--batch-size", type=number(int, low=1, high=4096), default=64)
    t.add_argument(
        "--split",
        choices=SPLITS,
        default="speaker",
        help=(
            "speaker: speaker-independent (honest); random: the notebook's random split (speakers on "
            "both sides); none: train on everything"
        ),
    )
    t.add_argument(
        "--test-size",
        type=number(float, low=0.0, high=0.9, low_open=True),
        default=0.2,
        help="share of each corpus's speakers held out (default 0.2)",
    )
    t.add_argument(
        "--corpora",
        nargs="+",
        metavar="NAME",
        help=(
            "train on these corpora only (of RAVDESS SAVEE TESS CREMA-D URDU ASED EMOVO; the four-corpus "
            "recipe: --corpora RAVDESS SAVEE TESS CREMA-D)"
        ),
    )
    t.add_argument(
        "--holdout-corpus",
        metavar="NAME",
        help="leave one corpus out: test on every file of NAME, train on the others (replaces --split)",
    )
    t.add_argument(
        "--no-loss-masking",
        action="store_true",
        help="do not mask the loss to the emotions each corpus labels (by default, a corpus without calm "
        "does not teach that calm never happens)",
    )
    t.add_argument(
        "--no-balance",
        action="store_true",
        help="encoder_head: draw training clips uniformly instead of balanced across corpora and speakers",
    )
    t.add_argument("--no-augment", action="store_true", help="train without augmentation")
    t.add_argument(
        "--encoder-views",
        nargs="+",
        default=["telephone", "pitch"],
        choices=["telephone", "pitch", "pitch+telephone"],
        help=(
            "encoder_head: augmented copies of each training clip besides the clean one, one drawn at "
            "random each time (default: telephone pitch)"
        ),
    )
    t.add_argument("--seed", type=number(int, low=0), default=0)
    t.add_argument(
        "--metrics-from",
        metavar="BUNDLE",
        help="copy held-out metrics and evaluation from this bundle (for a final model trained with --split none)",
    )
    t.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out (needed for models/default)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate",
        epilog=EXIT_CODES_HELP,
        help="score a bundle on every corpus file under a folder",
        description=(
            "Score a model on every corpus file under DIR (all of it treated as test data): WA, UA, "
            "macro-F1 overall and per corpus, per-class report, confusion matrix."
        ),
    )
    e.add_argument("--data", help="folder holding the corpora (default: $SER_DATA_DIR, then data/)")
    e.add_argument("--model", help="bundle folder (default: the shipped models/default)")
    e.add_argument("--json", metavar="OUT", help="write overall, per_corpus, per_class, confusion and predictions to OUT")
    e.add_argument("--no-predictions", action="store_true", help="leave per-file predictions out of the JSON")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        epilog=EXIT_CODES_HELP,
        help="predict the emotion of audio files",
        description="Print the emotion and its probability for each FILE (wav, flac, ogg/opus, mp3).",
    )
    pr.add_argument("files", nargs="+", metavar="FILE")
    pr.add_argument("--model", help="bundle folder (default: the shipped models/default)")
    pr.add_argument("--json", metavar="OUT", help="write emotion and probabilities per file to OUT")
    add_uncertain_below(pr, says="say 'uncertain'")
    pr.set_defaults(func=cmd_predict)

    cal = sub.add_parser(
        "calibrate",
        epilog=EXIT_CODES_HELP,
        help="fit a bundle's calibration and 'uncertain' threshold on its held-out speakers",
        description=(
            "Fit temperature scaling on the held-out speakers' per-file predictions in BUNDLE/evaluation.json, "
            "check it across speakers (fitted on one half, measured on the other, both ways), choose the "
            "confidence below which predictions are 'uncertain', and record both in BUNDLE/card.json "
            "(the model files are not touched)."
        ),
    )
    cal.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle folders, e.g. models/default")
    cal.add_argument("--dry-run", action="store_true", help="print the figures without changing the card")
    cal.set_defaults(func=cmd_calibrate)

    cb = sub.add_parser(
        "combine",
        epilog=EXIT_CODES_HELP,
        help="combine bundles into one model (log-linear average of their probabilities)",
        description=(
            "Make one bundle that runs every MEMBER on the same input and returns the weighted geometric mean "
            "of their probabilities, renormalised. Members need the same labels and front end. Its held-out "
            "figures (card and evaluation.json) combine the members' held-out predictions file by file, on the "
            "clips they all predicted; calibrate it afterwards. The shipped default is made this way."
        ),
    )
    cb.add_argument("members", nargs="+", metavar="MEMBER", help="bundle folders, e.g. models/four-corpus models/multicorpus")
    cb.add_argument("--out", required=True, metavar="DIR", help="folder for the combined bundle")
    cb.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight per member (default: equal)")
    cb.add_argument(
        "--predictions",
        nargs="+",
        metavar="FILE",
        help="one per member: its held-out predictions (an evaluation.json, a bundle folder or a predictions CSV); "
        "default: each member's evaluation.json",
    )
    cb.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    cb.set_defaults(func=cmd_combine)

    x = sub.add_parser(
        "export-onnx",
        epilog=EXIT_CODES_HELP,
        help="convert bundles saved before ONNX (adds model.onnx)",
        description=(
            "Add model.onnx to each BUNDLE folder saved with only model.keras (bundles from before "
            "ser_lib 0.2), check that ONNX Runtime gives the same probabilities as Keras (within 1e-4), "
            "and record its hash in the card. Needs TensorFlow (requirements.txt installs it)."
        ),
    )
    x.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle folders, e.g. models/my-model")
    x.add_argument("--force", action="store_true", help="export again even when model.onnx matches the card")
    x.set_defaults(func=cmd_export_onnx)

    from .calls import add_call_commands

    add_call_commands(sub)
    from .service import add_service_commands  # noqa: I001 - the live-service commands (serve, simulate-calls)

    add_service_commands(sub)
    from .store import add_store_commands  # noqa: I001 - the call-store commands (calls list/info/export)

    add_store_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the command as given, recorded in a trained model's card
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or EXIT_OK)
    except SERError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
