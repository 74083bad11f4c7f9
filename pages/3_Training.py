"""Training: choose data and settings, train in the background with live curves, save the bundle."""

import streamlit as st

from ser_lib.app import plots
from ser_lib.app import ui as ui
from ser_lib.app.evaluation_view import eta_text, percent_table
from ser_lib.app.jobs import keep_partial, training_job
from ser_lib.app.model_view import bundle_folder_for, models_dir, split_preview
from ser_lib.config import MODEL_TYPES
from ser_lib.training import TrainConfig

MODEL_LABELS = {
    "encoder_head": "Whisper-base encoder + small CNN head (best; needs the encoder weights)",
    "logmel_cnn": "2D CNN on log-mel spectrograms",
    "notebook_cnn1d": "The notebook's 1D CNN on 162 averaged features (fastest)",
}
SPLIT_LABELS = {
    "speaker": "Speaker-independent (honest: test speakers never heard in training)",
    "random": "Random over clips, as in the notebook (leaks speakers: optimistic)",
    "corpus": "Leave one corpus out (tests on every clip of a corpus it never heard)",
}
JOB_KEY = "training_job"

ui.page_setup("Training", ":material/model_training:")
folder = ui.data_folder_sidebar()

st.title("Training")
scan = ui.scan_corpora(folder, durations=False)
if not scan.ok:
    ui.explain_missing_corpora(folder, scan.error)
    st.stop()

job = st.session_state.get(JOB_KEY)
running = job is not None and not job.snapshot().finished

found = sorted(scan.manifest["corpus"].unique())
# corpora and split sit outside the form so the page can say what the split holds out before training starts
c1, c2 = st.columns([3, 2])
corpora = c1.multiselect("Corpora", found, default=found, key="training_corpora")
split = c2.radio("Split", list(SPLIT_LABELS), format_func=SPLIT_LABELS.get, key="training_split")
holdout = None
if split == "corpus":
    if len(corpora) < 2:
        st.warning("Leaving one corpus out needs at least two corpora: choose another above.", icon=":material/warning:")
        st.stop()
    holdout = c2.selectbox(
        "Corpus left out", corpora, key="training_holdout", help="Trained on the others, tested on all of this one."
    )
with ui.guard("Checking the split"):
    preview = split_preview(scan.manifest, split=split, corpora=corpora, holdout=holdout)
    if not preview.held_out:
        st.warning(preview.warning, icon=":material/warning:")
    else:
        st.caption(preview.text)
        if preview.warning:
            st.warning(preview.warning, icon=":material/warning:")

with st.form("training_form", border=True):
    model_type = st.selectbox(
        "Model", MODEL_TYPES, format_func=MODEL_LABELS.get, key="training_model", index=MODEL_TYPES.index("notebook_cnn1d")
    )
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("Epochs", 1, 500, 30, key="training_epochs")
    batch_size = c2.selectbox("Batch size", [16, 32, 64, 128, 256], index=2, key="training_batch")
    augment = c3.toggle(
        "Augmentation",
        value=True,
        key="training_augment",
        help="Noise, stretch and pitch copies (notebook model) or the telephone channel (others), training files only.",
    )
    c1, c2 = st.columns(2)
    mask_loss = c1.toggle(
        "Mask the loss to each corpus's emotions",
        value=True,
        key="training_mask_loss",
        help="A corpus without calm or surprise then neither rewards nor punishes the model for them: "
        "it does not teach that those emotions never happen. Matters when corpora label different emotions.",
    )
    balance = c2.toggle(
        "Balance corpora and speakers",
        value=True,
        key="training_balance",
        help="Whisper model only: draw training clips balanced across corpora (by the square root of their size) "
        "and speakers, so the largest corpus does not drown the others. Off: every clip equally likely.",
    )
    c1, c2 = st.columns([2, 1])
    name = c1.text_input("Save as", value="my-model", key="training_name", help=f"The bundle is saved to {models_dir()}/NAME.")
    overwrite = c2.checkbox(
        "Overwrite an existing bundle of that name",
        key="training_overwrite",
        help="Needed to replace the shipped 'default' model.",
    )
    start = st.form_submit_button("Start training", type="primary", disabled=running, icon=":material/play_arrow:")

if start and not running:
    with ui.guard("Starting the training"):
        target = bundle_folder_for(name, overwrite=overwrite)
        config = TrainConfig(
            model_type=model_type,
            epochs=int(epochs),
            batch_size=int(batch_size),
            split=split,
            augment=augment,
            corpora=tuple(corpora) or None,
            holdout_corpus=holdout,
            mask_loss=mask_loss,
            balance=balance,
        )
        st.session_state[JOB_KEY] = job = training_job(scan.manifest, config, save_to=target, overwrite=overwrite).start()
        running = True

if job is None:
    st.caption("Training runs in the background: you can leave this page and come back.")
    st.stop()


@st.fragment(run_every=1.0 if running else None)
def progress_panel() -> None:
    snap = job.snapshot()
    eta = eta_text(snap.eta_s)
    st.progress(snap.fraction, text=f"{snap.message} · {snap.elapsed:.0f} s" + (f" · {eta}" if eta else ""))
    if not snap.finished:
        if snap.stage == "starting":
            st.caption(
                "Training runs in its own process, which first loads TensorFlow (and, for the Whisper model, the encoder): "
                "the bar starts moving after about 20 s, when the first file is featurised."
            )
        if st.button("Cancel", key="training_cancel", icon=":material/stop:"):
            job.cancel()
            st.toast("Stopping after the current batch…")
    st.plotly_chart(plots.training_curves(snap.epochs), key="training_curves")
    if snap.finished and running:
        st.rerun(scope="app")  # draw the results and stop polling


progress_panel()
snap = job.snapshot()
if not snap.finished:
    st.stop()

if snap.state == "failed":
    st.error(snap.error or "Training failed.", icon=":material/error:")
    st.stop()
result = snap.result
if result is None:
    st.warning("Training was cancelled before the model was built.", icon=":material/cancel:")
    st.stop()

if result.saved_to:
    st.success(f"Saved to `{result.saved_to}` after {result.seconds:.0f} s of training.", icon=":material/check_circle:")
    ui.page_link("pages/4_Evaluation.py", "Open it on the Evaluation page", ":material/analytics:")
elif result.stopped:
    st.warning(f"Cancelled after {len(result.history)} epoch(s); the partial model was not saved.", icon=":material/cancel:")
    if result.partial and st.button("Save the partial model anyway", key="training_save_partial"):
        with ui.guard("Saving the model"):
            path = keep_partial(result, bundle_folder_for(name, overwrite=overwrite), overwrite=overwrite)
            st.success(f"Saved to `{path}`.", icon=":material/check_circle:")

if result.evaluation is None and not result.stopped:
    st.warning(
        "This model has no held-out evaluation: its split left no file for testing, and its card says so. "
        "Nobody can tell from it how the model does on voices it has not heard.",
        icon=":material/warning:",
    )
if result.evaluation is not None:
    st.subheader("Held-out evaluation")
    left, right = st.columns(2)
    score = st.column_config.NumberColumn(format="%.1f%%")
    left.dataframe(
        percent_table(result.evaluation.summary_table()),
        key="training_summary",
        column_config={m: score for m in ("WA", "UA", "macro_f1")},
    )
    left.caption(f"Split: {result.split}; {len(result.test_speakers)} test speaker(s) never heard in training.")
    right.plotly_chart(
        plots.confusion_matrix(result.evaluation.confusion_normalised(), normalised=True), key="training_confusion"
    )
