"""Evaluation: one model's held-out results, or two side by side, and the benchmark table."""

import streamlit as st

from ser_lib.app import plots
from ser_lib.app import ui as ui
from ser_lib.app.jobs import evaluation_job
from ser_lib.app.model_view import (
    class_report,
    comparison_table,
    filter_predictions,
    find_bundles,
    load_benchmarks,
    probabilities_frame,
    resolve_clip,
    summarise_bundle,
    with_file_names,
)
from ser_lib.bundle import Prediction
from ser_lib.config import EMOTIONS

JOBS_KEY = "evaluation_jobs"
SCORE = st.column_config.NumberColumn(format="%.3f")

ui.page_setup("Evaluation", ":material/analytics:")
folder = ui.data_folder_sidebar()
st.title("Evaluation")
st.caption(
    "WA is plain accuracy; UA is the mean recall over emotions (each emotion counts the same); "
    "macro-F1 averages F1 over emotions. Saved results come from speakers held out of training."
)

bundles = find_bundles()
jobs = st.session_state.setdefault(JOBS_KEY, {})


def benchmark_section() -> None:
    with ui.guard("Reading benchmarks/results.json"):
        table = load_benchmarks()
        if table is None:
            return
        st.subheader("Model comparison (benchmarks/results.json)")
        metric = st.segmented_control(
            "Metric", ["UA", "WA", "macro_f1"], default="UA", key="evaluation_bench_metric", required=True
        )
        st.plotly_chart(plots.model_comparison(table, metric=metric), key="evaluation_bench_chart")
        st.dataframe(
            table, hide_index=True, key="evaluation_bench_table", column_config={m: SCORE for m in ("WA", "UA", "macro_f1")}
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

# --- results: a fresh evaluation on the data folder if one ran, else the saved one -----------------
results, sources = {}, {}
for path in chosen:
    info = by_path[path]
    job = jobs.get(path)
    snap = job.snapshot() if job is not None else None
    with ui.guard(f"Reading {info.name}'s results"):
        if snap is not None and snap.state == "done" and snap.result is not None:
            results[info.name], sources[info.name] = snap.result, "evaluated now on the data folder"
        else:
            saved = ui.saved_evaluation(path)
            if saved is not None:
                results[info.name], sources[info.name] = saved, "saved with the model (held-out speakers)"

with st.expander("Evaluate on the data folder", expanded=not results):
    if manifest is None:
        ui.explain_missing_corpora(folder, scan.error)
    else:
        st.caption(
            "Scores every file of the chosen corpora. Files the model was trained on make the figures optimistic: "
            "use a data folder of speakers it has not heard."
        )
        corpora = st.multiselect("Corpora", sorted(manifest["corpus"].unique()), key="evaluation_corpora")
        for path in chosen:
            info = by_path[path]
            job = jobs.get(path)
            busy = job is not None and not job.snapshot().finished
            if st.button(f"Evaluate {info.name}", key=f"evaluation_run_{info.name}", disabled=busy):
                with ui.guard("Starting the evaluation"):
                    subset = manifest[manifest["corpus"].isin(corpora)] if corpora else manifest
                    jobs[path] = evaluation_job(ui.load_bundle(path), subset).start()
        running = [p for p, j in jobs.items() if p in chosen and not j.snapshot().finished]

        @st.fragment(run_every=1.0 if running else None)
        def evaluation_progress() -> None:
            for p in chosen:
                if p in jobs:
                    s = jobs[p].snapshot()
                    if s.state == "failed":
                        st.error(f"{by_path[p].name}: {s.error}", icon=":material/error:")
                    elif not s.finished:
                        st.progress(s.fraction, text=f"{by_path[p].name}: {s.message}")
                        if st.button("Cancel", key=f"evaluation_cancel_{by_path[p].name}"):
                            jobs[p].cancel()
            if running and all(jobs[p].snapshot().finished for p in running):
                st.rerun(scope="app")

        evaluation_progress()

if not results:
    for path in chosen:
        st.warning(
            f"{by_path[path].name} has no saved evaluation: evaluate it on a data folder above.", icon=":material/warning:"
        )
    benchmark_section()
    st.stop()


def headline(name: str, res) -> None:
    o = res.overall
    st.markdown(f"**{name}** · {sources[name]}")
    a, b, c, d = st.columns(4)
    a.metric("WA", f"{o['WA']:.3f}")
    b.metric("UA", f"{o['UA']:.3f}")
    c.metric("macro-F1", f"{o['macro_f1']:.3f}")
    d.metric("clips", f"{o['n']:,}")


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
if len(names) == 1:
    name, res = names[0], results[names[0]]
    summary = summarise_bundle(by_path[chosen[0]])
    st.subheader(summary.description)
    headline(name, res)
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Per corpus**")
        st.dataframe(res.summary_table(), key="evaluation_summary", column_config={m: SCORE for m in ("WA", "UA", "macro_f1")})
        st.plotly_chart(plots.metrics_by_corpus(res.summary_table()), key="evaluation_by_corpus")
    with right:
        st.markdown("**Classification report**")
        st.dataframe(class_report(res), key="evaluation_report", column_config={m: SCORE for m in ("precision", "recall", "f1")})
        confusion(name, res, "evaluation_confusion")
else:
    st.subheader("Side by side")
    st.dataframe(comparison_table(results), key="evaluation_compare")
    cols = st.columns(2, gap="large")
    for col, name in zip(cols, names, strict=True):
        with col:
            headline(name, results[name])
            st.plotly_chart(
                plots.metrics_by_corpus(results[name].summary_table(), title=f"{name}: per corpus"),
                key=f"evaluation_by_corpus_{name}",
            )
            confusion(name, results[name], f"evaluation_confusion_{name}")

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
                    f"**{row['file']}**: true **{row['emotion']}**, predicted **{row['predicted']}** ({row['confidence']:.2f})"
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
