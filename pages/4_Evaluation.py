"""Evaluation: one model's held-out results in plain words and in detail, or two side by side, and the benchmark table."""

import streamlit as st

from ser_lib.app import evaluation_view as ev
from ser_lib.app import plots
from ser_lib.app import plots_decisions as pdec
from ser_lib.app import ui as ui
from ser_lib.app.jobs import evaluation_job
from ser_lib.app.model_view import (
    class_report,
    comparison_table,
    filter_predictions,
    find_bundles,
    load_benchmarks,
    load_saved_evaluation,
    probabilities_frame,
    resolve_clip,
    with_file_names,
)
from ser_lib.bundle import Prediction
from ser_lib.config import EMOTIONS

JOBS_KEY = "evaluation_jobs"
PERCENT = st.column_config.NumberColumn(format="%.1f%%")
SAVED, FRESH = "saved with the model", "evaluated now on the data folder"

ui.page_setup("Evaluation", ":material/analytics:")
folder = ui.data_folder_sidebar()
st.title("Evaluation")
st.caption(
    "How often a model names the right emotion, measured on speakers it did not hear in training. "
    "Hover over WA, UA and macro-F1 for what each one means."
)

bundles = find_bundles()
jobs = st.session_state.setdefault(JOBS_KEY, {})


def benchmark_section() -> None:
    with ui.guard("Reading benchmarks/results.json"):
        table = load_benchmarks()
        if table is None:
            return
        table = ev.benchmark_with_bundle_names(table, [b.name for b in bundles])
        st.subheader("Model comparison (benchmarks/results.json)")
        st.caption(
            "Each model trained on the same speakers and tested on the same 22 held-out speakers; 'telephone' passes the "
            "test clips through an 8 kHz mu-law telephone channel. Models are named by the bundle each run saved."
        )
        metric = st.segmented_control(
            "Metric", ["UA", "WA", "macro_f1"], default="UA", key="evaluation_bench_metric", required=True
        )
        st.plotly_chart(plots.model_comparison(table, metric=metric), key="evaluation_bench_chart")
        st.dataframe(
            ev.percent_table(table),
            hide_index=True,
            key="evaluation_bench_table",
            column_config={m: PERCENT for m in ("WA", "UA", "macro_f1")},
        )


def cross_corpus_section() -> None:
    with ui.guard("Reading the models' cross-corpus figures"):
        table = ev.cross_corpus_table(bundles)
        if table.empty:
            return
        st.subheader("Beyond the training corpora (four classes)")
        st.caption(
            "Angry, happy, neutral (calm folded in) and sad, which every corpus labels. "
            + " ".join(f"**{p}**: {what}." for p, what in ev.CROSS_CORPUS_PROTOCOLS.items() if p in set(table["protocol"]))
        )
        st.plotly_chart(plots.cross_corpus_chart(table), key="evaluation_cross_chart")
        st.dataframe(
            ev.percent_table(table, ("UA", "WA", "macro_f1")),
            hide_index=True,
            key="evaluation_cross_table",
            column_config={m: PERCENT for m in ("WA", "UA", "macro_f1")},
        )


if not bundles:
    ui.explain_missing_model()
    benchmark_section()
    st.stop()

by_path = {str(b.path): b for b in bundles}
chosen = st.multiselect(
    "Models: pick one, or two to compare",
    list(by_path),
    default=[str(bundles[0].path)],
    max_selections=2,
    format_func=lambda p: by_path[p].name,
    key="evaluation_bundles",
)
if not chosen:
    st.info("Pick a model above.", icon=":material/info:")
    benchmark_section()
    st.stop()

scan = ui.scan_corpora(folder, durations=False)
manifest = scan.manifest if scan.ok else None

# --- results: the saved evaluation, or a fresh one on the data folder (the user picks which) -------
results, sources = {}, {}
for path in chosen:
    info = by_path[path]
    job = jobs.get(path)
    snap = job.snapshot() if job is not None else None
    with ui.guard(f"Reading {info.name}'s results"):
        saved = ui.saved_evaluation(path)
        fresh = snap.result if snap is not None and snap.state == "done" else None
        show = SAVED if saved is not None else FRESH
        if fresh is not None and saved is not None:
            show = st.segmented_control(
                f"{info.name}: results to show",
                [FRESH, SAVED],
                default=FRESH,
                key=f"evaluation_show_{info.name}",
                required=True,
                help="Go back to the figures saved with the model, or to the evaluation you just ran.",
            )
        if show == FRESH and fresh is not None:
            results[info.name], sources[info.name] = fresh, ev.fresh_source(info, fresh.predictions)
        elif saved is not None:
            results[info.name], sources[info.name] = saved, ev.evaluation_source(info)


def evaluate_section(expanded: bool) -> None:
    with st.expander("Evaluate on the data folder", expanded=expanded):
        if manifest is None:
            ui.explain_missing_corpora(folder, scan.error)
            return
        corpora = st.multiselect("Corpora", sorted(manifest["corpus"].unique()), key="evaluation_corpora")
        subset = manifest[manifest["corpus"].isin(corpora)] if corpora else manifest
        whisper = any((by_path[p].card or {}).get("model_type") == "encoder_head" for p in chosen)
        estimate = f" Expect about {ev.eta_text(3.0 * len(subset)).removesuffix(' left')} per Whisper model." if whisper else ""
        st.caption(
            f"Scores every file of the chosen corpora ({len(subset):,} clips). It takes a while: about 3 s a clip with "
            f"the Whisper models on a laptop CPU, less with the others.{estimate} The bar shows the time left once the "
            "first clips are done. Files the model was trained on make the figures optimistic: the result says how many."
        )
        for path in chosen:
            info = by_path[path]
            job = jobs.get(path)
            busy = job is not None and not job.snapshot().finished
            if st.button(f"Evaluate {info.name}", key=f"evaluation_run_{info.name}", disabled=busy):
                with ui.guard("Starting the evaluation"):
                    jobs[path] = evaluation_job(ui.load_bundle(path), subset).start()
        running = [p for p, j in jobs.items() if p in chosen and not j.snapshot().finished]

        @st.fragment(run_every=1.0 if running else None)
        def evaluation_progress() -> None:
            for p in chosen:
                if p in jobs:
                    s = jobs[p].snapshot()
                    if s.state == "failed":
                        st.error(f"{by_path[p].name}: {s.error}", icon=":material/error:")
                    elif s.state == "cancelled":
                        st.info(f"{by_path[p].name}: evaluation {s.message}.", icon=":material/cancel:")
                    elif not s.finished:
                        eta = ev.eta_text(s.eta_s)
                        st.progress(
                            s.fraction, text=f"{by_path[p].name}: {s.message} · {s.elapsed:.0f} s" + (f" · {eta}" if eta else "")
                        )
                        if st.button("Cancel", key=f"evaluation_cancel_{by_path[p].name}"):
                            jobs[p].cancel()
            if running and all(jobs[p].snapshot().finished for p in running):
                st.rerun(scope="app")

        evaluation_progress()


if not results:
    evaluate_section(expanded=True)
    for path in chosen:
        st.warning(
            f"{by_path[path].name} has no saved evaluation: evaluate it on a data folder above.", icon=":material/warning:"
        )
    benchmark_section()
    st.stop()

reference = None
with ui.guard("Finding the notebook's model"):
    first = sources[next(iter(results))]
    reference = ev.notebook_reference(bundles, first.test_speakers)


def where_from(name: str, info) -> None:
    """The figures' source in one line, the details and every run's speakers in an expander."""
    source = sources[name]
    st.markdown(f"**{name}** · {source.label}")
    if source.warning:
        st.warning(source.warning, icon=":material/warning:")
    with st.expander(f"Where {name}'s figures come from, and who it was trained and tested on"):
        st.markdown(source.detail)
        st.dataframe(ev.speaker_table(info), hide_index=True, key=f"evaluation_speakers_{name}")


def headline(name: str, res) -> None:
    o = res.overall
    a, b, c, d = st.columns(4)
    a.metric("WA", ev.score(o["WA"]), help=ev.METRIC_HELP["WA"])
    b.metric("UA", ev.score(o["UA"]), help=ev.METRIC_HELP["UA"])
    c.metric("macro-F1", ev.score(o["macro_f1"]), help=ev.METRIC_HELP["macro-F1"])
    d.metric("clips", f"{int(o['n']):,}", help=ev.METRIC_HELP["clips"])


def confusion(name: str, res, key: str) -> None:
    normalised = st.toggle("Normalise rows", value=True, key=f"{key}_norm")
    matrix = res.confusion_normalised() if normalised else res.confusion
    st.plotly_chart(plots.confusion_matrix(matrix, normalised=normalised), key=f"{key}_chart")
    st.download_button(
        "Confusion matrix as PNG",
        lambda: plots.figure_png(plots.confusion_matrix_static(matrix, normalised=normalised, title=f"{name}: confusion")),
        file_name=f"{name}-confusion.png",
        mime="image/png",
        key=f"{key}_png",
        icon=":material/download:",
    )


names = list(results)
info_of = {by_path[p].name: by_path[p] for p in chosen}
if len(names) == 1:
    name, res = names[0], results[names[0]]
    st.subheader(ev.describe_model(info_of[name]))
    with st.container(border=True, key="evaluation_plain"):
        st.markdown("#### In plain words")
        for line in ev.plain_summary(res, sources[name], name=name, reference=reference):
            st.markdown(line)
    where_from(name, info_of[name])
    headline(name, res)
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Per corpus**")
        st.dataframe(
            ev.percent_table(res.summary_table()),
            key="evaluation_summary",
            column_config={m: PERCENT for m in ("WA", "UA", "macro_f1")},
        )
        st.plotly_chart(plots.metrics_by_corpus(res.summary_table()), key="evaluation_by_corpus")
    with right:
        st.markdown("**Classification report**")
        st.dataframe(
            ev.percent_table(class_report(res)),
            key="evaluation_report",
            column_config={m: PERCENT for m in ("precision", "recall", "f1")},
        )
        confusion(name, res, "evaluation_confusion")
    with ui.guard("Reading the calibration"):
        calib = ev.calibration_view(info_of[name], load_saved_evaluation(info_of[name].path))
        if calib is not None:
            st.markdown("#### Calibration: can its confidence be trusted?")
            for line in calib.lines:
                st.markdown(line)
            st.plotly_chart(
                pdec.reliability_diagram(calib.before, calib.after, ece_before=calib.ece_before, ece_after=calib.ece_after),
                key="evaluation_reliability",
            )
else:
    st.subheader("Side by side")
    with st.container(border=True, key="evaluation_plain"):
        st.markdown("#### In plain words")
        for name in names:
            st.markdown(ev.plain_summary(results[name], sources[name], name=name)[0])
        a, b = names
        diff = 100 * (results[b].overall["UA"] - results[a].overall["UA"])
        st.markdown(
            f"On UA, **{b}** is **{abs(diff):.1f} points {'better' if diff > 0 else 'worse'}** than **{a}**."
            if abs(diff) >= 0.05
            else f"On UA, **{a}** and **{b}** are level."
        )
    st.caption("Scores in %; Δ is the second model minus the first, in percentage points: green better, red worse.")
    st.dataframe(ev.comparison_styler(comparison_table(results)), key="evaluation_compare")
    cols = st.columns(2, gap="large")
    for col, name in zip(cols, names, strict=True):
        with col:
            where_from(name, info_of[name])
            headline(name, results[name])
            st.plotly_chart(
                plots.metrics_by_corpus(results[name].summary_table(), title=f"{name}: per corpus"),
                key=f"evaluation_by_corpus_{name}",
            )
            confusion(name, results[name], f"evaluation_confusion_{name}")

evaluate_section(expanded=False)

# --- per-file predictions ------------------------------------------------------------------------
st.subheader("Per-file predictions")
name = names[0] if len(names) == 1 else st.selectbox("Model", names, key="evaluation_files_model")
preds = results[name].predictions
if preds.empty:
    st.info("This evaluation was saved without per-file predictions.", icon=":material/info:")
else:
    f1, f2, f3 = st.columns(3)
    corpora = f1.multiselect("Corpus", sorted(preds["corpus"].unique()), key="evaluation_f_corpus")
    true = f2.multiselect("True emotion", [e for e in EMOTIONS if e in set(preds["emotion"])], key="evaluation_f_true")
    predicted = f3.multiselect(
        "Predicted emotion", [e for e in EMOTIONS if e in set(preds["predicted"])], key="evaluation_f_pred"
    )
    f1, f2 = st.columns([1, 2])
    wrong = f1.toggle("Misclassified only", key="evaluation_f_wrong")
    low = f2.slider(
        "Confidence at most",
        0.0,
        1.0,
        1.0,
        0.05,
        key="evaluation_f_conf",
        help="Lower it to see the answers the model was unsure of.",
    )
    shown = filter_predictions(
        preds,
        corpora=corpora,
        true=true,
        predicted=predicted,
        misclassified_only=wrong,
        max_confidence=None if low >= 1.0 else low,
    )
    st.caption(f"{len(shown):,} of {len(preds):,} files")
    columns = [
        c for c in ("file", "corpus", "speaker", "emotion", "predicted", "confidence", "correct") if c in shown or c == "file"
    ]
    row = ui.pick_row(
        with_file_names(shown),
        key="evaluation_files",
        label="Clip",
        column="path",
        show=columns,
        column_config={"confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f")},
    )
    if row is not None:
        with ui.guard("Playing the clip"):
            left, right = st.columns(2)
            with left:
                clip = resolve_clip(row["path"], manifest)
                st.markdown(
                    f"**{row['file']}**: true **{row['emotion']}**, predicted **{row['predicted']}** "
                    f"({ev.score(row['confidence'])} sure)"
                )
                if clip is None:
                    st.info("The file is not in the current data folder, so it cannot be played.", icon=":material/music_off:")
                else:
                    y, wav = ui.load_clip(clip)
                    st.audio(wav, format="audio/wav")
            with right:
                probs = {c[2:]: float(row[c]) for c in row.index if c.startswith("p_")}
                if probs:
                    pred = Prediction(str(row["predicted"]), float(row["confidence"]), probs)
                    st.plotly_chart(plots.probabilities(probabilities_frame(pred), height=260), key="evaluation_clip_probs")

benchmark_section()
cross_corpus_section()
