"""Predict: upload or record clips and see which emotion the model hears."""

import streamlit as st

from ser_lib.app import dataset_view as dv
from ser_lib.app import plots
from ser_lib.app import plots_decisions as pdec
from ser_lib.app import ui as ui
from ser_lib.app.evaluation_view import describe_model
from ser_lib.app.model_view import (
    MAX_UPLOAD_MB,
    UPLOAD_TYPES,
    affect_text,
    judged_table,
    probabilities_frame,
    rejudged,
    results_table,
    uncertain_text,
)
from ser_lib.audio import to_wav_bytes
from ser_lib.config import MAX_CLIP_SECONDS

ui.page_setup("Predict", ":material/mic:")
ui.data_folder_sidebar()
model = ui.model_sidebar()

st.title("Predict")
if model is None:
    ui.explain_missing_model()
    st.stop()

bundle = None
with ui.guard(f"Loading {model.name}"):
    bundle = ui.load_bundle(model.path)
if bundle is None:
    st.stop()
st.caption(f"Answering: **{describe_model(model)}** · emotions: {', '.join(bundle.labels)}")

left, right = st.columns(2, gap="large")
uploads = left.file_uploader(
    f"Upload clips ({', '.join(UPLOAD_TYPES)}; up to {MAX_CLIP_SECONDS:.0f} s and {MAX_UPLOAD_MB} MB each)",
    type=list(UPLOAD_TYPES),
    accept_multiple_files=True,
    key="predict_uploads",
    max_upload_size=MAX_UPLOAD_MB,
)
recording = right.audio_input("Or record from the microphone", key="predict_recording")

clips = [(f.name, f.getvalue()) for f in uploads or []]
if recording is not None:
    clips.append(("microphone recording.wav", recording.getvalue()))
if not clips:
    st.info("Upload a clip or record one to hear what the model makes of it.", icon=":material/info:")
    st.stop()

threshold = st.sidebar.slider(
    "Say 'uncertain' below this confidence",
    min_value=0.0,
    max_value=1.0,
    value=float(bundle.uncertain_below),
    step=0.01,
    key="predict_uncertain_below",
    help="Chosen on validation speakers and stored with the model; 0 always names an emotion.",
)

results = []
with ui.guard("Predicting"):
    results = rejudged([ui.predict_clip(model.path, data, name) for name, data in clips], threshold)

for r in results:
    if r.too_long:
        st.warning(r.error, icon=":material/schedule:")
        ui.page_link(ui.CALL_TIMELINE_PAGE, "Open the Call timeline page", ":material/timeline:")
    elif r.error:
        st.error(r.error, icon=":material/error:")
    elif r.no_speech:
        st.warning(r.prediction.message, icon=":material/voice_over_off:")

good = [r for r in results if r.ok and not r.no_speech]
if len(results) > 1:
    st.caption(
        f"{len(good)} of {len(results)} files judged"
        + (f"; {len(results) - len(good)} could not be (the messages above say why)." if len(good) < len(results) else ".")
    )
    if good:
        st.dataframe(
            judged_table(good, bundle.labels),
            hide_index=True,
            key="predict_table",
            column_config={
                "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
                "seconds": st.column_config.NumberColumn(format="%.1f"),
                **{f"p_{e}": st.column_config.NumberColumn(format="%.2f") for e in bundle.labels},
            },
        )
    st.download_button(
        "Download every file as CSV (with an error column)",
        results_table(results, bundle.labels).to_csv(index=False),
        file_name="predictions.csv",
        mime="text/csv",
        key="predict_csv",
        icon=":material/download:",
    )

if not good:
    st.stop()
if len(good) > 1:
    pick = st.selectbox("Details for", [r.name for r in good], key="predict_detail")
    clip = next(r for r in good if r.name == pick)
else:
    clip = good[0]

with ui.guard("Drawing the result"):
    p = clip.prediction
    st.subheader(f"{clip.name}: {p.verdict}")
    a, b, c = st.columns(3)
    a.metric("Emotion", "Uncertain" if p.uncertain else p.emotion)
    b.metric("Confidence", f"{p.confidence:.0%}", help="Calibrated: of clips given this confidence, about this share is right.")
    c.metric("Length", f"{clip.seconds:.1f} s")
    if p.uncertain:
        st.info(uncertain_text(p, threshold), icon=":material/help:")
    left, right = st.columns(2, gap="large")
    with left:
        st.plotly_chart(plots.probabilities(probabilities_frame(p)), key="predict_probs")
        st.plotly_chart(pdec.circumplex_figure(p.valence, p.arousal, labels=bundle.labels), key="predict_circumplex")
        st.caption(affect_text(p))
    with right:
        st.plotly_chart(plots.waveform(dv.waveform_frame(clip.y, sr=clip.sr)), key="predict_wave")
        st.audio(to_wav_bytes(clip.y, sr=clip.sr), format="audio/wav")
    st.caption(f"Model: {describe_model(model)}")
