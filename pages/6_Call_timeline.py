"""Call timeline: emotion over a whole customer-care call, per party, after the fact or live."""

import time

import streamlit as st

from ser_lib.app import call_view as cv
from ser_lib.app import plots_timeline as pt
from ser_lib.app import ui as ui
from ser_lib.calls import TimelineSettings, analyze_call, format_clock, replay
from ser_lib.config import AUDIO_EXTENSIONS

ui.page_setup("Call timeline", ":material/support_agent:")
info = ui.model_sidebar()

st.title("Call timeline")
st.caption(
    "Upload a call recording (WAV, FLAC, Ogg/Opus, MP3; 8-48 kHz; any length). Speech is found with a voice-activity "
    "detector, so silence and hold get no emotion; within speech, windows are scored, smoothed and joined into segments. "
    "Stereo calls are analysed per channel, one party each."
)

if info is None:
    ui.explain_missing_model()
    st.stop()

bundle = None
with ui.guard("Loading the model"):
    bundle = ui.load_bundle(info.path)
if bundle is None:
    st.stop()
st.sidebar.caption(f"Model: {bundle.describe()}")

with st.sidebar.expander("Analysis settings"):
    window_s = st.select_slider("Window (s)", [2.0, 2.5, 3.0, 4.0], value=3.0, key="calls_window")
    hop_s = st.select_slider("Hop (s)", [0.5, 1.0], value=1.0, key="calls_hop")
settings = TimelineSettings(window_s=window_s, hop_s=hop_s)


def show_result(result, audio: bytes, *, key: str) -> None:
    """Cards, timeline, probabilities, quarters and the worst moments with a player."""
    if result.no_speech:
        st.warning(result.message, icon=":material/voice_over_off:")
        st.audio(audio)
        return
    cards = cv.party_cards(result)
    for card, col in zip(cards, st.columns(len(cards)), strict=True):
        with col:
            st.markdown(f"**{card.role}**")
            st.metric("Mostly", card.dominant, help=card.dominant_share)
            st.metric("Mean sentiment", card.mean_sentiment, delta=card.trend_delta, help=f"Trend: {card.trend}")
            st.caption(f"Speech {card.speech}; trend {card.trend}")
    worst = result.summary["worst_moments"]
    st.plotly_chart(
        pt.timeline_figure(
            result.segments, result.windows, roles=result.roles, duration_s=result.duration_s, worst=worst, speech=result.speech
        ),
        key=f"{key}_timeline",
    )
    tabs = st.tabs([f"Probabilities: {r}" for r in result.roles] + ["Quarters", "Segments"])
    for tab, role in zip(tabs, result.roles, strict=False):  # the last two tabs are not per role
        with tab:
            st.plotly_chart(
                pt.probabilities_figure(result.windows, role=role, duration_s=result.duration_s, labels=result.labels),
                key=f"{key}_p_{role}",
            )
    with tabs[len(result.roles)]:
        left, right = st.columns(2)
        left.plotly_chart(pt.quarters_figure(result.summary), key=f"{key}_quarters")
        right.plotly_chart(pt.shares_figure(result.summary), key=f"{key}_shares")
    with tabs[len(result.roles) + 1]:
        st.dataframe(cv.segments_table(result), hide_index=True, key=f"{key}_segments")

    st.subheader("Strongest negative moments")
    table = cv.worst_table(result)
    if table.empty:
        st.info("No strongly negative moments in this call.", icon=":material/sentiment_satisfied:")
        st.audio(audio)
    else:
        st.dataframe(table.drop(columns="start_s"), hide_index=True, key=f"{key}_worst")
        pick = st.selectbox(
            "Listen to",
            table["#"].tolist(),
            format_func=lambda i: f"#{i} {table['time'][i - 1]} {table['party'][i - 1]} {table['emotion'][i - 1]}",
            key=f"{key}_pick",
        )
        st.audio(audio, start_time=int(table["start_s"][pick - 1]))
    a, b = st.columns(2)
    a.download_button(
        "Download JSON", result.to_json(), file_name="call_timeline.json", mime="application/json", key=f"{key}_json"
    )
    b.download_button(
        "Download segments (CSV)", result.to_csv(), file_name="call_segments.csv", mime="text/csv", key=f"{key}_csv"
    )


source = st.segmented_control(
    "Call", ["Upload a recording", "Record with the microphone"], default="Upload a recording", key="calls_source", required=True
)

if source == "Upload a recording":
    upload = st.file_uploader("Call recording", type=[e.lstrip(".") for e in AUDIO_EXTENSIONS], key="calls_upload")
    left = st.radio(
        "Stereo: the left channel is the",
        ["agent", "customer"],
        horizontal=True,
        key="calls_left",
        help="The other channel is the other party. Mono recordings are analysed as one mix ('speaker').",
    )
    roles = cv.roles_for(left)
    if upload is None:
        st.info("Upload a call to see its emotion timeline.", icon=":material/upload_file:")
        st.stop()
    data = upload.getvalue()
    mode = st.segmented_control("Mode", ["Analyse", "Live replay"], default="Analyse", key="calls_mode", required=True)
    run_key = (cv.digest(data), roles, window_s, hop_s, str(info.path))

    if mode == "Analyse":
        stored = st.session_state.get("calls_result")
        if stored is None or stored[0] != run_key:
            bar = st.progress(0.0, text="Analysing the call…")
            with ui.guard("Analysing the call"):
                result = analyze_call(
                    data,
                    bundle=bundle,
                    roles=roles,
                    settings=settings,
                    name=upload.name,
                    progress=lambda p: bar.progress(
                        p.fraction, text=f"Analysing the call… {format_clock(p.done)} of {format_clock(p.total)}"
                    ),
                )
                st.session_state["calls_result"] = (run_key, result)
            bar.empty()
            stored = st.session_state.get("calls_result")
        if stored is not None and stored[0] == run_key:
            show_result(stored[1], data, key="calls_offline")
    else:
        speed_name = st.selectbox(
            "Replay speed",
            list(cv.REPLAY_SPEEDS),
            key="calls_speed",
            help="How fast the recording is played into the live analyser.",
        )
        if st.button("Start the live replay", type="primary", icon=":material/play_arrow:", key="calls_live_start"):
            status, cards_box, chart_box = st.empty(), st.empty(), st.empty()
            last_draw, n_draw, shown = 0.0, 0, 0
            with ui.guard("The live replay"):
                for update in replay(data, bundle=bundle, roles=roles, speed=cv.REPLAY_SPEEDS[speed_name], settings=settings):
                    status.progress(
                        min(1.0, update.position_s / max(update.duration_s, 1e-9)),
                        text=f"Live: {format_clock(update.position_s)} of {format_clock(update.duration_s)} · "
                        f"{len(update.analyzer.results)} windows · last update {1000 * update.compute_s:.0f} ms",
                    )
                    if (update.new and time.monotonic() - last_draw > 0.5) or update.done:
                        partial = update.analyzer.result(source=upload.name)
                        if len(partial.windows) != shown or update.done:
                            shown, n_draw, last_draw = len(partial.windows), n_draw + 1, time.monotonic()
                            with cards_box.container():
                                for card, col in zip(cv.party_cards(partial), st.columns(len(partial.roles)), strict=True):
                                    col.metric(f"{card.role}: mostly", card.dominant, delta=card.trend_delta)
                            chart_box.plotly_chart(
                                pt.timeline_figure(
                                    partial.segments,
                                    partial.windows,
                                    roles=partial.roles,
                                    duration_s=update.duration_s,
                                    speech=partial.speech,
                                ),
                                key=f"calls_live_{n_draw}",
                            )
                    if update.done:
                        st.session_state["calls_result"] = (run_key, update.analyzer.result(source=upload.name))
            status.empty()
            cards_box.empty()
            chart_box.empty()
        stored = st.session_state.get("calls_result")
        if stored is not None and stored[0] == run_key:
            st.success("Replay finished: the full timeline is below.", icon=":material/check_circle:")
            show_result(stored[1], data, key="calls_replayed")

else:
    st.markdown(
        "Record a turn, stop, and it is appended to the conversation and analysed; record the next turn to continue. "
        "The microphone is one party ('speaker')."
    )
    conv = st.session_state.get("calls_mic_conv")
    if conv is None or conv.bundle is not bundle:
        conv = cv.MicConversation(bundle, settings=settings)
        st.session_state["calls_mic_conv"] = conv
    generation = st.session_state.setdefault("calls_mic_generation", 0)  # a new widget for a new conversation
    recording = st.audio_input("Record a turn", key=f"calls_mic_{generation}", sample_rate=16000)
    if recording is not None:
        with ui.guard("Adding the recording"):
            conv.add(recording.getvalue())
    if st.button("Start a new conversation", icon=":material/restart_alt:", key="calls_mic_reset"):
        st.session_state.pop("calls_mic_conv", None)
        st.session_state["calls_mic_generation"] = generation + 1
        st.rerun()
    if conv.turns:
        st.caption(f"{conv.turns} turn(s) recorded.")
        show_result(conv.result(), conv.wav(), key="calls_mic_view")
