"""What the Home and Evaluation pages say about a model's figures, computed without Streamlit.

- :func:`evaluation_source`: where a bundle's saved figures come from, in words: its own held-out
  speakers, a random split, or (for a model trained on every speaker, like the shipped
  ``default``) the held-out run of another bundle trained with the same recipe.
- :func:`fresh_source`: the same for an evaluation just run on the data folder (how many of its
  speakers the model heard in training).
- :func:`speaker_table`: each bundle's training and test speakers, per corpus.
- :func:`plain_summary`: the figures in sentences a manager can read: how often it is right on
  voices it never heard, per corpus, against chance and against the notebook's model.
- :func:`score`, :func:`percent_table`, :func:`comparison_styler`: one way of writing a score
  (a percentage with one decimal) everywhere, and coloured differences between two models.
- :func:`benchmark_with_bundle_names`: ``benchmarks/results.json`` with the bundles' names.
- :func:`calibration_view`: a calibrated bundle's reliability before and after, and its threshold.
- :func:`cross_corpus_table`: each bundle's four-class figures per corpus (held-out speakers, a corpus
  left out of training, a corpus it never heard), from its card's ``metrics.cross_corpus``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..bundle import BundleInfo
from ..cards import held_out_source
from ..errors import SERError
from ..evaluation import summary_metrics

#: What each headline figure means, for tooltips.
METRIC_HELP: dict[str, str] = {
    "WA": "Weighted accuracy: the share of all test clips whose emotion the model named correctly. "
    "Emotions with many clips count more.",
    "UA": "Unweighted (balanced) accuracy: the share right for each emotion, averaged so that every emotion counts "
    "the same. Guessing at random scores 1 / the number of emotions (12.5% with eight).",
    "macro-F1": "For each emotion, F1 balances how often the model is right when it says that emotion (precision) "
    "and how many clips of that emotion it finds (recall); macro-F1 averages it over the emotions. 100% is perfect.",
    "clips": "Test clips the figures are computed on.",
}
#: The bundles ``benchmarks/bench_models.py`` saves, by the name a benchmark row gives its model.
BENCHMARK_BUNDLES: dict[str, str] = {
    "encoder_head": "encoder-head-heldout",
    "encoder_head_pitch": "encoder-head-pitch-heldout",
    "logmel_cnn": "logmel-cnn-heldout",
    "notebook_cnn1d": "notebook-cnn1d-heldout",
    "seed_cnn1d": "notebook-cnn1d-heldout",
}
#: Benchmark rows without a bundle (no saved model), in words.
BENCHMARK_LABELS: dict[str, str] = {"linear_probe": "linear probe (no bundle)"}


def score(value: float | None) -> str:
    """A score in [0, 1] as the pages write it: a percentage with one decimal (``0.7161`` -> ``"71.6%"``)."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{100 * float(value):.1f}%"


SCORE_COLUMNS: tuple[str, ...] = ("WA", "UA", "macro_f1", "precision", "recall", "f1")


def percent_table(table: pd.DataFrame, columns: Iterable[str] = SCORE_COLUMNS) -> pd.DataFrame:
    """``table`` with its score columns as percentages (one decimal), for display."""
    out = table.copy()
    for c in columns:
        if c in out:
            out[c] = (100 * out[c].astype(float)).round(1)
    for c in ("n", "support"):
        if c in out:
            out[c] = out[c].astype(float).round().astype("Int64")
    return out


# --- where the figures come from -------------------------------------------------------------------


@dataclass
class EvaluationSource:
    """Where a set of figures comes from, said plainly.

    ``label`` is one line shown beside the figures; ``detail`` a paragraph; ``own`` is False when
    the figures were measured on another bundle; ``heard`` lists test speakers the bundle was
    trained on (its figures on them are optimistic).
    """

    label: str
    detail: str
    own: bool = True
    from_bundle: str | None = None
    test_speakers: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    warning: str | None = None


def _n(count: int, word: str) -> str:
    """``3 speakers``, ``1 speaker``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _speakers(training: dict, key: str) -> list[str]:
    return [str(s) for s in (training.get(key) or [])]


def _recipe_differences(own: dict, run: dict) -> list[str]:
    """Settings in which a held-out run's training differs from the bundle's (split aside)."""
    a, b = own.get("config") or {}, run.get("config") or {}
    return [f"{k} {b[k]} there, {a[k]} here" for k in sorted(set(a) & set(b)) if k != "split" and a[k] != b[k]]


def evaluation_source(info: BundleInfo) -> EvaluationSource:
    """Where the figures saved with a bundle (``card.json`` metrics, ``evaluation.json``) come from."""
    card = info.card or {}
    training = card.get("training") or {}
    metrics = card.get("metrics") or {}
    name = info.name
    train, test = _speakers(training, "train_speakers"), _speakers(training, "test_speakers")
    split = training.get("split") or metrics.get("protocol")
    run = training.get("held_out_run") or {}
    source = str(metrics.get("source") or "")
    if run or source.startswith("held-out run"):
        sibling = held_out_source(card) or "another bundle"
        run_train, run_test = _speakers(run, "train_speakers"), _speakers(run, "test_speakers")
        heard = sorted(set(run_test) & set(train)) if train else run_test
        n = (metrics.get("overall") or {}).get("n")
        differences = _recipe_differences(training, run)
        members = [m.get("name", "?") for m in (training.get("ensemble") or {}).get("members") or [] if isinstance(m, dict)]
        measured_on = (
            f"a bundle trained with the same recipe on {len(run_train)} speakers, on the {len(run_test)} speakers it held out"
            if not members
            else f"the held-out runs of its {len(members)} combined heads ({', '.join(members)}), trained with the same "
            f"recipes on {len(run_train)} speakers and combined the same way, on the {len(run_test)} speakers they held out"
        )
        detail = (
            f"**{name}** was trained on {len(train) or 'all the'} speakers"
            + (" with no test set" if not test else "")
            + f", so it cannot be measured on voices it never heard. The figures shown were measured on **{sibling}**, "
            + measured_on
            + (f" ({n:,} clips)" if n else "")
            + f". They describe how this recipe does on new voices, not {name} itself: {name} heard "
            + (f"all {len(heard)} of those speakers in training." if len(heard) == len(run_test) else f"{len(heard)} of them.")
        )
        if differences:
            detail += " Settings that differ: " + "; ".join(differences) + "."
        return EvaluationSource(
            label=f"figures of {sibling} (same recipe, {_n(len(run_test), 'held-out speaker')}), not of {name} itself",
            detail=detail,
            own=False,
            from_bundle=sibling,
            test_speakers=run_test,
            heard=heard,
        )
    if split == "speaker" and (test or metrics.get("overall")):
        if not test:  # figures on the card, but no speaker lists to show
            return EvaluationSource(
                label="figures on held-out speakers of its own training run (the card does not list them)",
                detail=f"**{name}**'s card holds speaker-independent figures but does not list its training and test speakers.",
            )
        return EvaluationSource(
            label=f"figures on held-out speakers of its own training run ({_n(len(test), 'speaker')} never heard in training)",
            detail=f"**{name}** was trained on {_n(len(train), 'speaker')} and tested on {len(test)} others it never heard.",
            test_speakers=test,
        )
    if split == "random":
        return EvaluationSource(
            label="figures on a random split over clips (the same speakers on both sides: optimistic)",
            detail=f"**{name}** was tested on clips chosen at random, so its test speakers were also heard in training; "
            "expect lower figures on new voices.",
            test_speakers=test,
            heard=test,
            warning="Random split: every test speaker was also heard in training, so these figures are optimistic.",
        )
    return EvaluationSource(
        label="no held-out figures",
        detail=f"**{name}** was trained on every speaker it was given, with no test set: it has no figures on unseen voices.",
        warning=f"{name} has no held-out evaluation: its training left no speaker out.",
    )


def fresh_source(info: BundleInfo, predictions: pd.DataFrame) -> EvaluationSource:
    """Where the figures of an evaluation just run on the data folder come from: which of its
    speakers the bundle heard in training (their clips make the figures optimistic)."""
    training = (info.card or {}).get("training") or {}
    train = set(_speakers(training, "train_speakers"))
    speakers = sorted(predictions["speaker"].astype(str).unique()) if "speaker" in predictions else []
    heard = [s for s in speakers if s in train]
    label = f"figures evaluated now on the data folder ({_n(len(speakers), 'speaker')})"
    warning = None
    if heard:
        label += f"; {info.name} heard {len(heard)} of them in training"
        warning = (
            f"{info.name} was trained on {len(heard)} of the {len(speakers)} speakers in this evaluation "
            f"({', '.join(heard[:6])}{', ...' if len(heard) > 6 else ''}): the figures are optimistic."
        )
    return EvaluationSource(label, label + ".", test_speakers=speakers, heard=heard, warning=warning)


def _per_corpus(speakers: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in speakers:
        corpus, _, who = s.rpartition("_")
        out.setdefault(corpus or "?", []).append(who or s)
    return out


def speaker_table(info: BundleInfo) -> pd.DataFrame:
    """Per corpus: the speakers a bundle was trained on and those held out for its test, and,
    for a bundle whose figures come from a held-out run, the same for that run.

    Returns
    -------
    pd.DataFrame
        Columns ``run``, ``corpus``, ``trained on``, ``held out (test)``; each cell is the number of
        speakers then their ids (``"4: 11, 14, 15, 21"``).
    """
    card = info.card or {}
    training = card.get("training") or {}
    runs = [(info.name, training)]
    if training.get("held_out_run"):
        sibling = held_out_source(card) or "held-out run"
        runs.append((f"{sibling} (where the figures come from)", training["held_out_run"]))
    rows = []
    for run, t in runs:
        train, test = _per_corpus(_speakers(t, "train_speakers")), _per_corpus(_speakers(t, "test_speakers"))
        for corpus in sorted(set(train) | set(test) | set(t.get("corpora") or [])):
            a, b = train.get(corpus, []), test.get(corpus, [])
            rows.append(
                {
                    "run": run,
                    "corpus": corpus,
                    "trained on": f"{len(a)}: {', '.join(a)}" if a else "0",
                    "held out (test)": f"{len(b)}: {', '.join(b)}" if b else "none",
                }
            )
    return pd.DataFrame(rows, columns=["run", "corpus", "trained on", "held out (test)"])


#: What each model type is, in words.
MODEL_KINDS: dict[str, str] = {
    "encoder_head": "Whisper-base encoder + CNN head",
    "logmel_cnn": "2D CNN on log-mel spectrograms",
    "notebook_cnn1d": "the notebook's 1D CNN on 162 features",
    "seed_cnn1d": "the notebook's 1D CNN on 162 features",
}


def describe_model(info: BundleInfo) -> str:
    """One line naming a bundle, what it is and its headline UA with where that comes from:
    ``"default: Whisper-base encoder + CNN head · UA 71.6% for its recipe (measured on
    encoder-head-pitch-heldout)"`` (unlike :meth:`ModelBundle.describe`, never a sibling's figure
    as the bundle's own)."""
    card = info.card or {}
    kind = MODEL_KINDS.get(str(card.get("model_type")), str(card.get("model_type", "model")))
    ua = ((card.get("metrics") or {}).get("overall") or {}).get("UA")
    source = evaluation_source(info)
    if not isinstance(ua, (int, float)):
        tail = " · no held-out figures"
    elif not source.own:
        tail = f" · UA {score(ua)} for its recipe (measured on {source.from_bundle})"
    elif source.heard:
        tail = f" · UA {score(ua)} (optimistic: its test speakers were heard in training)"
    else:
        tail = f" · UA {score(ua)} on unseen speakers"
    return f"{info.name}: {kind}{tail}"


# --- in plain words --------------------------------------------------------------------------------


@dataclass
class Reference:
    """A model to compare with in the summary (the notebook's), and its held-out UA."""

    name: str
    ua: float
    same_speakers: bool
    #: The speakers its figures were measured on.
    test_speakers: tuple[str, ...] = ()


def notebook_reference(bundles: Iterable[BundleInfo], test_speakers: Sequence[str]) -> Reference | None:
    """The notebook's model among ``bundles`` (``notebook_cnn1d`` with speaker-independent figures)."""
    for b in bundles:
        card = b.card or {}
        metrics = card.get("metrics") or {}
        ua = (metrics.get("overall") or {}).get("UA")
        if card.get("model_type") in ("notebook_cnn1d", "seed_cnn1d") and ua is not None and metrics.get("protocol") == "speaker":
            theirs = set(_speakers(card.get("training") or {}, "test_speakers"))
            return Reference(b.name, float(ua), bool(theirs) and theirs == set(test_speakers), tuple(sorted(theirs)))
    return None


def plain_summary(result, source: EvaluationSource, *, name: str, reference: Reference | None = None) -> list[str]:
    """The figures of ``result`` (an :class:`~ser_lib.evaluation.EvaluationResult`) in sentences.

    How often the model is right on the test voices (WA), the same with every emotion counted
    equally (UA) against guessing, per corpus, and against the notebook's model when known. The
    subject is the recipe, not the bundle, when the figures come from another bundle.
    """
    o = result.overall
    preds = result.predictions
    labels = list(result.labels) if getattr(result, "labels", None) else []
    n_emotions = len(labels) or 8
    speakers = preds["speaker"].nunique() if "speaker" in preds and len(preds) else len(source.test_speakers)
    if source.own and not source.heard:
        who = f"**{name}**"
        voices = f"{speakers} speakers it never heard" if speakers else "speakers it never heard"
    elif not source.own:
        who = f"**{name}'s recipe** (measured on {source.from_bundle}, trained without these speakers)"
        voices = f"{speakers} speakers that run never heard"
    else:
        who = f"**{name}**"
        voices = f"{speakers} speakers, {len(source.heard)} of them heard in training"
    lines = [
        f"{who} names the right emotion in **{score(o['WA'])}** of {int(o['n']):,} clips from {voices}. "
        f"Counting every emotion the same (UA) it gets **{score(o['UA'])}** right, where guessing among "
        f"{n_emotions} emotions would get **{score(1 / n_emotions)}**."
    ]
    per = result.per_corpus if isinstance(result.per_corpus, dict) else {}
    if len(per) > 1:
        parts = []
        for corpus, m in sorted(per.items()):
            k = preds.loc[preds["corpus"] == corpus, "emotion"].nunique() if "corpus" in preds and len(preds) else 0
            parts.append(f"{corpus} **{score(m['UA'])}**" + (f" (chance {score(1 / k)})" if k else ""))
        lines.append("Per corpus (UA): " + ", ".join(parts) + ".")
    if reference is not None and reference.name != name:
        theirs = set(reference.test_speakers)
        ours = set(preds["speaker"].astype(str)) if "speaker" in preds else set()
        if not reference.same_speakers and theirs and theirs < ours:  # ours covers theirs: compare on theirs
            sub = preds[preds["speaker"].astype(str).isin(theirs)]
            ua_here = float(summary_metrics(sub["emotion"], sub["predicted"])["UA"])
            diff = 100 * (ua_here - reference.ua)
            lines.append(
                f"The notebook's model ({reference.name}) gets **{score(reference.ua)}** UA on the same speakers "
                f"(the {len(theirs)} of these it held out): {abs(diff):.1f} points {'lower' if diff >= 0 else 'higher'} "
                f"than the **{score(ua_here)}** measured here on them."
            )
            return lines
        diff = 100 * (float(o["UA"]) - reference.ua)
        where = "on the same speakers" if reference.same_speakers else "on its own held-out speakers"
        lines.append(
            f"The notebook's model ({reference.name}) gets **{score(reference.ua)}** UA {where}: "
            f"{abs(diff):.1f} points {'lower' if diff >= 0 else 'higher'}."
        )
    return lines


# --- tables ----------------------------------------------------------------------------------------


def comparison_styler(table: pd.DataFrame):
    """:func:`ser_lib.app.model_view.comparison_table` for display: scores as percentages with one
    decimal, the ``Δ`` columns in percentage points, green where the second model is better and red
    where it is worse."""
    shown = table.copy()
    for col in shown.columns:
        if col[-1] == "n":
            shown[col] = shown[col].round().astype("Int64")
        else:
            shown[col] = 100 * shown[col].astype(float)
    deltas = [c for c in shown.columns if c[0] == "Δ"]

    def colour(v: float) -> str:
        if not np.isfinite(v) or abs(v) < 0.05:
            return "color: #666666"
        return "color: #1A7F37; font-weight: 600" if v > 0 else "color: #CF222E; font-weight: 600"

    scores = [c for c in shown.columns if c[-1] != "n" and c[0] != "Δ"]
    styler = shown.style.format("{:.1f}%", subset=scores).format("{:+.1f} pts", subset=deltas)
    return styler.map(colour, subset=deltas)


def benchmark_with_bundle_names(table: pd.DataFrame, bundle_names: Iterable[str]) -> pd.DataFrame:
    """``benchmarks/results.json`` with the ``model`` column naming the bundle each row was saved as
    (``encoder_head_pitch`` -> ``encoder-head-pitch-heldout``) when that bundle is here, and the
    original name in ``benchmark``."""
    names = set(bundle_names)

    def label(model: str) -> str:
        bundle = BENCHMARK_BUNDLES.get(model)
        if bundle in names:
            return bundle
        return BENCHMARK_LABELS.get(model, model)

    out = table.copy()
    out.insert(1, "benchmark", out["model"])
    out["model"] = out["model"].astype(str).map(label)
    return out


def eta_text(seconds: float | None) -> str:
    """A remaining time for a progress bar: ``"about 4 min left"``; empty when unknown."""
    if seconds is None or not np.isfinite(seconds):
        return ""
    if seconds < 60:
        return f"about {max(5, int(round(seconds / 5) * 5))} s left"
    if seconds < 3600:
        return f"about {int(round(seconds / 60))} min left"
    return f"about {seconds / 3600:.1f} h left"


@dataclass
class CalibrationView:
    """A calibrated bundle's reliability before and after, and its "uncertain" threshold, in words."""

    before: pd.DataFrame
    after: pd.DataFrame
    ece_before: float
    ece_after: float
    temperature: float
    lines: list[str] = field(default_factory=list)


def calibration_view(info: BundleInfo, evaluation) -> CalibrationView | None:
    """The Evaluation page's calibration section for ``info``, from its saved held-out predictions.

    ``evaluation`` is the bundle's saved :class:`~ser_lib.evaluation.EvaluationResult` (its
    ``evaluation.json``: the model's own probabilities). ``None`` when the card records no
    calibration or there are no per-file predictions.
    """
    from ..calibration import apply_temperature, expected_calibration_error, predictions_arrays, reliability_table, uncalibrated

    cal = info.card.get("calibration") or {}
    if cal.get("method") != "temperature" or evaluation is None or evaluation.predictions.empty:
        return None
    labels = list(info.card["labels"])
    try:
        preds = uncalibrated(evaluation.predictions, labels, (evaluation.meta or {}).get("temperature"))
        probs, y, _, _ = predictions_arrays(preds, labels)
    except SERError:
        return None
    t = float(cal["temperature"])
    after = apply_temperature(probs, t)
    ece_b, ece_a = expected_calibration_error(probs, y), expected_calibration_error(after, y)
    cross = cal.get("cross_fitted") or {}
    lines = [
        f"**Calibration** ({cal.get('fitted_on', 'held-out speakers')}): temperature {t:.2f}. Expected calibration error "
        f"(the gap between how sure the model is and how often it is right, 15 bins) **{ece_b:.1%} before, {ece_a:.1%} after**."
    ]
    if not cal.get("applied", True) or t == 1.0:
        lines[0] = (
            f"**Calibration** ({cal.get('fitted_on', 'held-out speakers')}): none applied: the fitted temperature "
            f"{cal.get('fitted_temperature', float('nan')):.2f} did not lower the calibration error on speakers it was not "
            f"fitted on. Expected calibration error {ece_b:.1%}."
        )
    if "ece_before" in cross:
        lines.append(
            f"Fitted on one half of the held-out speakers and measured on the other (both ways): {cross['ece_before']:.1%} "
            f"before, {cross['ece_after']:.1%} after."
        )
    decision = info.card.get("decision") or {}
    if "uncertain_below" in decision:
        lines.append(
            f"Below a confidence of **{decision['uncertain_below']:.0%}** the product says 'uncertain' instead of naming "
            f"an emotion: on these speakers it then names one for {decision.get('coverage', float('nan')):.0%} of clips, "
            f"right {decision.get('accepted_accuracy', float('nan')):.0%} of the time (all clips: "
            f"{decision.get('overall_accuracy', float('nan')):.0%})."
        )
    return CalibrationView(reliability_table(probs, y), reliability_table(after, y), ece_b, ece_a, t, lines)


#: The order protocols are shown in, and what each means.
CROSS_CORPUS_PROTOCOLS: dict[str, str] = {
    "held-out speakers": "speakers of a corpus the model trained on, held out of training",
    "corpus left out": "a whole corpus left out of training (leave one corpus out), the rest of the recipe unchanged",
    "corpus unseen": "a corpus the model never heard (it was not among its training corpora)",
}


def cross_corpus_table(infos: Iterable[BundleInfo]) -> pd.DataFrame:
    """Four-class figures (angry, happy, neutral with calm folded in, sad) per model, corpus and protocol.

    Read from each bundle card's ``metrics.cross_corpus.rows`` (written by
    ``benchmarks/bench_multicorpus.py --write-cards``); bundles without them are left out.

    Returns
    -------
    pd.DataFrame
        Columns ``model``, ``corpus``, ``protocol``, ``UA``, ``WA``, ``macro_f1``, ``n``, sorted by
        protocol (:data:`CROSS_CORPUS_PROTOCOLS` order), corpus and model; empty when no bundle has any.
    """
    cols = ["model", "corpus", "protocol", "UA", "WA", "macro_f1", "n"]
    rows = []
    for info in infos:
        block = ((info.card or {}).get("metrics") or {}).get("cross_corpus") or {}
        for r in block.get("rows") or []:
            if isinstance(r, dict) and {"corpus", "protocol", "UA"} <= set(r):
                rows.append({"model": info.name, **{k: r.get(k) for k in cols[1:]}})
    table = pd.DataFrame(rows, columns=cols)
    if table.empty:
        return table
    order = {p: i for i, p in enumerate(CROSS_CORPUS_PROTOCOLS)}
    table["_p"] = table["protocol"].map(order).fillna(len(order))
    return table.sort_values(["_p", "corpus", "model"]).drop(columns="_p").reset_index(drop=True)
