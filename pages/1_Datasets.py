"""Datasets: class balance, speakers, durations, and any file heard, seen and featurised."""

import streamlit as st

from ser_lib.app import dataset_view as dv
from ser_lib.app import plots
from ser_lib.app import ui as ui
from ser_lib.config import EMOTIONS, SAMPLE_RATE
from ser_lib.corpora import emotion_counts

ui.page_setup("Datasets", ":material/dataset:")
folder = ui.data_folder_sidebar()
model = ui.model_sidebar()

st.title("Datasets")
scan = ui.scan_corpora(folder)
if not scan.ok:
    ui.explain_missing_corpora(folder, scan.error)
    st.stop()
manifest = scan.manifest

a, b, c, d = st.columns(4)
a.metric("Files", f"{len(manifest):,}")
b.metric("Corpora", manifest["corpus"].nunique())
c.metric("Speakers", manifest["speaker"].nunique())
d.metric("Hours of speech", f"{manifest['duration'].sum() / 3600:.1f}")

view = st.segmented_control("View", ["Overview", "Files"], default="Overview", key="datasets_view", required=True)

if view == "Overview":
    with ui.guard("Drawing the overview"):
        left, right = st.columns(2, gap="large")
        with left:
            mode = st.radio("Emotions", ["stacked counts", "normalised"], horizontal=True, key="datasets_norm")
            counts = dv.counts_long(emotion_counts(manifest))
            st.plotly_chart(plots.class_distribution(counts, normalise=mode == "normalised"), key="datasets_classes")
        with right:
            st.plotly_chart(plots.speakers_chart(dv.speakers_by_gender(manifest)), key="datasets_speakers")
            st.caption("CREMA-D genders need VideoDemographics.csv beside its audio; without it they show as unknown.")
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.plotly_chart(plots.duration_histogram(dv.duration_histogram(manifest)), key="datasets_durations")
        with right:
            st.markdown("**Durations (seconds)**")
            seconds = st.column_config.NumberColumn(format="%.2f")
            st.dataframe(
                dv.duration_stats(manifest),
                key="datasets_duration_stats",
                column_config={
                    "files": st.column_config.NumberColumn(format="%d"),
                    "hours": st.column_config.NumberColumn(format="%.2f"),
                    "mean_s": seconds,
                    "min_s": seconds,
                    "max_s": seconds,
                },
            )
        st.markdown("**Corpora**")
        st.dataframe(
            dv.corpus_table(manifest),
            hide_index=True,
            key="datasets_corpora",
            column_config={"hours": st.column_config.NumberColumn(format="%.2f")},
        )
        st.caption(
            "Training masks each clip's loss to the emotions its corpus labels, so a corpus without calm "
            "does not teach the model that calm never happens."
        )
        with st.expander("Speakers"):
            st.dataframe(dv.speaker_summary(manifest), hide_index=True, key="datasets_speaker_table")
        if scan.skipped:
            with st.expander(f"{len(scan.skipped)} audio files skipped"):
                st.dataframe({"path": [p for p, _ in scan.skipped], "why": [w for _, w in scan.skipped]}, key="datasets_skipped")

else:
    f1, f2, f3, f4 = st.columns([2, 2, 1, 2])
    corpora = f1.multiselect("Corpus", sorted(manifest["corpus"].unique()), key="datasets_f_corpus")
    emotions = f2.multiselect("Emotion", [e for e in EMOTIONS if e in set(manifest["emotion"])], key="datasets_f_emotion")
    genders = f3.multiselect("Gender", sorted(manifest["gender"].unique()), key="datasets_f_gender")
    text = f4.text_input("Name contains", key="datasets_f_text", placeholder="e.g. Actor_01 or _ANG_")
    shown = dv.file_table(dv.filter_manifest(manifest, corpora=corpora, emotions=emotions, genders=genders, text=text), folder)
    st.caption(f"{len(shown):,} of {len(manifest):,} files")
    row = ui.pick_row(
        shown,
        key="datasets_files",
        label="Clip",
        column="file",
        show=list(dv.FILE_TABLE_COLUMNS),
        column_config={"duration": st.column_config.NumberColumn("duration (s)", format="%.2f")},
    )
    if row is not None:
        with ui.guard("Reading the clip"):
            y, wav = ui.load_clip(row["path"])
            st.subheader(row["file"])
            st.caption(f"{row['corpus']} · {row['speaker']} ({row['gender']}) · {row['emotion']} · {len(y) / SAMPLE_RATE:.2f} s")
            st.audio(wav, format="audio/wav")
            left, right = st.columns(2)
            left.plotly_chart(plots.waveform(dv.waveform_frame(y, sr=SAMPLE_RATE)), key="datasets_wave")
            right.plotly_chart(plots.spectrogram(dv.spectrogram_frame(y, sr=SAMPLE_RATE)), key="datasets_spec")
            sources = {"notebook": "The notebook's 162 features (no model needed)"}
            if model is not None:
                sources["model"] = f"The input of {model.name}"
            source = st.segmented_control(
                "Features", list(sources), format_func=sources.get, default="notebook", key="datasets_features", required=True
            )
            x, kind = ui.clip_features(row["path"], model.path if source == "model" else None)
            st.plotly_chart(plots.feature_values(dv.feature_frame(x, kind=kind), kind=kind), key="datasets_feature_plot")
