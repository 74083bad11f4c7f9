"""Augmentation preview: one clip before and after an augmentation, heard and seen side by side."""

import streamlit as st

from ser_lib.app import dataset_view as dv
from ser_lib.app import plots
from ser_lib.app import ui as ui
from ser_lib.app.model_view import MAX_UPLOAD_MB, UPLOAD_TYPES, named_source
from ser_lib.audio import load_audio, to_wav_bytes
from ser_lib.augment import AUGMENTATIONS
from ser_lib.config import EMOTIONS, MAX_CLIP_SECONDS, SAMPLE_RATE

LABELS = {
    "noise": "Background noise",
    "shift": "Time shift",
    "stretch": "Time stretch (slower)",
    "pitch": "Pitch shift (up)",
    "telephone": "Telephone channel (8 kHz, mu-law)",
}
HELP = {
    "noise": "White noise; strength 1 adds noise at 7 % of the clip's peak.",
    "shift": "Rolls the clip by up to 0.6 s at strength 1 (the part pushed off one end wraps round).",
    "stretch": "Slows the clip to 60 % of its tempo at strength 1; pitch unchanged.",
    "pitch": "Raises the pitch by up to 4 semitones at strength 1; length unchanged.",
    "telephone": "300-3400 Hz band at 8 kHz; strength 0 skips the mu-law codec, any other value applies it.",
}

ui.page_setup("Augmentation preview", ":material/tune:")
folder = ui.data_folder_sidebar()

st.title("Augmentation preview")
st.caption("What the training augmentations do to a clip. Pick a clip, an augmentation and its strength.")

scan = ui.scan_corpora(folder, durations=False)
sources = (["corpus", "upload"] if scan.ok else ["upload"])
source = st.segmented_control(
    "Clip from",
    sources,
    format_func={"corpus": "the data folder", "upload": "an upload"}.get,
    default=sources[0],
    key="augment_source",
    required=True,
)

y = None
with ui.guard("Reading the clip"):
    if source == "corpus":
        c1, c2, c3 = st.columns([1, 1, 3])
        corpus = c1.selectbox("Corpus", sorted(scan.manifest["corpus"].unique()), key="augment_corpus")
        emotion = c2.selectbox("Emotion", [e for e in EMOTIONS if e in set(scan.manifest["emotion"])], key="augment_emotion")
        files = dv.file_table(dv.filter_manifest(scan.manifest, corpora=[corpus], emotions=[emotion]), folder)
        choice = c3.selectbox("File", files["file"].head(500), key="augment_file")
        if choice is not None:
            y, _ = ui.load_clip(files.loc[files["file"] == choice, "path"].iloc[0])
    else:
        if not scan.ok:
            with st.expander("No corpora found: where to get them"):
                ui.explain_missing_corpora(folder, scan.error)
        upload = st.file_uploader("Audio clip", type=list(UPLOAD_TYPES), key="augment_upload", max_upload_size=MAX_UPLOAD_MB)
        if upload is not None:
            # through named_source: libsndfile's messages would otherwise show the UploadedFile's repr
            y = load_audio(named_source(upload.getvalue(), upload.name), sr=SAMPLE_RATE, max_seconds=MAX_CLIP_SECONDS)

c1, c2, c3 = st.columns([2, 3, 1])
name = c1.selectbox("Augmentation", AUGMENTATIONS, format_func=LABELS.get, key="augment_name")
strength = c2.slider("Strength", 0.0, 1.0, 0.5, 0.05, key="augment_strength", help=HELP[name])
seed = int(c3.number_input("Seed", 0, 10_000, 0, key="augment_seed", help="Same seed, same random draw."))

if y is None:
    st.info("Choose a clip to preview.", icon=":material/info:")
    st.stop()

with ui.guard("Applying the augmentation"):
    preview = dv.augmentation_preview(y, sr=SAMPLE_RATE, name=name, strength=strength, seed=seed)
    peak = dv.shared_peak(preview.before, preview.after)  # one amplitude scale for both waveforms
    st.caption(f"`{preview.description}` · both waveforms share one amplitude scale (peak {peak:.2f}).")
    before, after = st.columns(2, gap="large")
    for col, title, signal, color, key in (
        (before, "Before", preview.before, "#4C78A8", "augment_before"),
        (after, f"After: {LABELS[name].lower()}, strength {strength:.2f}", preview.after, "#E45756", "augment_after"),
    ):
        with col:
            st.markdown(f"**{title}** · {len(signal) / SAMPLE_RATE:.2f} s")
            st.audio(to_wav_bytes(signal, sr=SAMPLE_RATE), format="audio/wav")
            st.plotly_chart(plots.waveform(dv.waveform_frame(signal, sr=SAMPLE_RATE), color=color, peak=peak), key=f"{key}_wave")
            st.plotly_chart(plots.spectrogram(dv.spectrogram_frame(signal, sr=SAMPLE_RATE)), key=f"{key}_spec")
