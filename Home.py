"""Home: what the app does, which corpora and which model it found, and where to go next."""

import streamlit as st

from ser_lib.app import ui as ui
from ser_lib.app.evaluation_view import METRIC_HELP, describe_model, evaluation_source, score
from ser_lib.app.model_view import summarise_bundle
from ser_lib.corpora import emotion_counts

ui.page_setup("Home", ":material/home:")
folder = ui.data_folder_sidebar()
model = ui.model_sidebar()

st.title("Speech emotion recognition")
st.markdown(
    "Hear which emotion a voice carries. This app lets you **explore** the emotional-speech "
    "corpora (acted English: RAVDESS, TESS, SAVEE, CREMA-D; Urdu talk shows, Amharic, Italian), "
    "**preview** the augmentations used in training, "
    "**train** and **evaluate** models with a speaker-independent protocol, and **predict** the "
    "emotion of your own clips, uploaded or recorded."
)

left, right = st.columns([3, 2], gap="large")

with left, ui.guard("Reading the data folder"):
    st.subheader("Corpora in the data folder")
    scan = ui.scan_corpora(folder, durations=False)
    if not scan.ok:
        ui.explain_missing_corpora(folder, scan.error)
    else:
        counts = emotion_counts(scan.manifest)
        st.caption(f"{len(scan.manifest):,} files under `{folder}`" + (f"; {len(scan.skipped)} skipped" if scan.skipped else ""))
        st.table(counts)  # static: Home stays as light as a page can be; charts are on Datasets
        ui.page_link("pages/1_Datasets.py", "Class balance, speakers and durations on the Datasets page", ":material/bar_chart:")

with right, ui.guard("Reading the model card"):
    st.subheader("Active model")
    if model is None:
        ui.explain_missing_model()
    else:
        summary = summarise_bundle(model)
        st.markdown(f"**{describe_model(model)}**")
        m = summary.metrics
        source = evaluation_source(model)
        if m:
            a, b, c = st.columns(3)
            a.metric("WA", score(m["WA"]), help=METRIC_HELP["WA"])
            b.metric("UA", score(m["UA"]), help=METRIC_HELP["UA"])
            c.metric("macro-F1", score(m["macro_f1"]), help=METRIC_HELP["macro-F1"])
            n = f"{m['n']:,} clips" if isinstance(m.get("n"), int) else "held-out clips"
            st.caption(f"On {n}: {source.label}. Speaker-independent means no test speaker was heard in training.")
        else:
            st.caption(f"This model's card holds no held-out figures ({source.label}).")
        st.markdown(
            f"- type: `{summary.model_type}`\n- emotions: {', '.join(summary.labels)}\n"
            f"- trained on: {', '.join(summary.corpora) or 'unknown'}\n- created: {summary.created}"
        )

st.subheader("Where next")
cols = st.columns(3)
with cols[0]:
    ui.page_link("pages/1_Datasets.py", "Datasets: browse the corpora", ":material/dataset:")
    ui.page_link("pages/2_Augmentation.py", "Augmentation preview", ":material/tune:")
with cols[1]:
    ui.page_link("pages/3_Training.py", "Training: train a model", ":material/model_training:")
    ui.page_link("pages/4_Evaluation.py", "Evaluation: how good is it?", ":material/analytics:")
with cols[2]:
    ui.page_link("pages/5_Predict.py", "Predict: upload or record a clip", ":material/mic:")
    ui.page_link(ui.CALL_TIMELINE_PAGE, "Call timeline: emotion over a call", ":material/timeline:")
