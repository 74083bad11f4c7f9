"""Call timeline: emotion over a whole customer-care call, per party, after the fact or live."""

import time

import streamlit as st

from ser_lib.app import call_view as cv
from ser_lib.app import plots_timeline as pt
from ser_lib.app import ui as ui
from ser_lib.app.evaluation_view import describe_model
from ser_lib.calls import DEFAULT_ROLES, TimelineSettings, analyze_call, format_clock, replay
from ser_lib.config import AUDIO_EXTENSIONS

ui.page_setup("Call timeline", ":material/support_agent:")
folder = ui.data_folder_sidebar()
info = ui.model_sidebar()

st.title("Call timeline")
st.caption(
    "A call recording (WAV, FLAC, Ogg/Opus, MP3; 8-48 kHz; mono or stereo). Speech is found with a voice-activity "
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
st.sidebar.caption(f"Model: {describe_model(info)}")

with st.sidebar.expander("Analysis settings"):
    window_s = st.select_slider("Window (s)", [2.0, 2.5, 3.0, 4.0], value=3.0, key="calls_window")
    hop_s = st.select_slider("Hop (s)", [0.5, 1.0], value=1.0, key="calls_hop")
settings = TimelineSettings(window_s=window_s, hop_s=hop_s)


def show_result(result, player: bytes, mime: str, *, key: str) -> None:
    """Cards, timeline, probabilities, quarters, segments and the worst moments with a player."""
    if result.no_speech:
        st.warning(result.message, icon=":material/voice_over_off:")
        st.audio(player, format=mime)
        return
    cards = cv.party_cards(result)
    for card, col in zip(cards, st.columns(len(cards)), strict=True):
        with col:
            st.markdown(f"**{card.role}**")
            st.metric("Mostly", card.dominant, help=card.dominant_share)
            st.metric("Mean sentiment", card.mean_sentiment, delta=card.trend_delta, help=f"Trend: {card.trend}")
            st.caption(f"Speech {card.speech}; trend {card.trend}")
    worst = result.summary["worst_moments"]
    affect = st.toggle(
        "Show valence and arousal",
        key=f"{key}_affect",
        help="Derived from the emotion probabilities on Russell's circumplex: valence from unpleasant (-1) to "
        "pleasant (+1), arousal from subdued (-1) to agitated (+1).",
    )
    st.plotly_chart(
        pt.timeline_figure(
            result.segments,
            result.windows,
            roles=result.roles,
            duration_s=result.duration_s,
            worst=worst,
            speech=result.speech,
            affect=affect,
        ),
        key=f"{key}_timeline",
    )
    if result.uncertain_below > 0:
        st.caption(cv.uncertain_note(result))
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
        parties = result.roles
        if len(result.roles) > 1:
            parties = st.multiselect("Show the segments of", result.roles, default=result.roles, key=f"{key}_parties")
        table = cv.segments_table(result, parties)
        st.caption(f"{len(table)} of {len(result.segments)} segments")
        st.dataframe(
            table,
            hide_index=True,
            key=f"{key}_segments",
            column_config={
                "confidence": st.column_config.NumberColumn(format="%.2f"),
                "sentiment": st.column_config.NumberColumn(format="%+.2f"),
                "valence": st.column_config.NumberColumn(format="%+.2f"),
                "arousal": st.column_config.NumberColumn(format="%+.2f"),
            },
        )

    st.subheader("Strongest negative moments")
    table = cv.worst_table(result)
    if table.empty:
        st.info("No strongly negative moments in this call.", icon=":material/sentiment_satisfied:")
        st.audio(player, format=mime)
    else:
        st.dataframe(
            table.drop(columns="start_s"),
            hide_index=True,
            key=f"{key}_worst",
            column_config={
                "confidence": st.column_config.NumberColumn(format="%.2f"),
                "sentiment": st.column_config.NumberColumn(format="%+.2f"),
            },
        )
        pick = st.selectbox(
            "Listen to",
            table["#"].tolist(),
            format_func=lambda i: f"#{i} {table['time'][i - 1]} {table['party'][i - 1]} {table['emotion'][i - 1]}",
            key=f"{key}_pick",
        )
        st.audio(player, format=mime, start_time=int(table["start_s"][pick - 1]))
    a, b = st.columns(2)
    a.download_button(
        "Download JSON", result.to_json(), file_name="call_timeline.json", mime="application/json", key=f"{key}_json"
    )
    b.download_button(
        "Download segments (CSV)", result.to_csv(), file_name="call_segments.csv", mime="text/csv", key=f"{key}_csv"
    )


def analyse(data: bytes, name: str, roles: tuple, key: tuple, player: bytes, mime: str) -> None:
    """The whole call analysed once (with a Cancel button while it runs), shown with ``roles``.

    The analysis is stored per recording and settings, not per channel assignment: switching which
    channel is the agent relabels the stored analysis instead of analysing again.
    """
    stored = st.session_state.get("calls_result")
    if (stored is None or stored[0] != key) and st.session_state.get("calls_cancelled") != key:
        cancel_box = st.empty()
        # clicking Cancel reruns the page, which stops the analysis at its next progress report (every 30 s of audio)
        if cancel_box.button("Cancel the analysis", key="calls_cancel", icon=":material/stop:"):
            st.session_state["calls_cancelled"] = key
        else:
            bar = st.progress(0.0, text=f"Analysing {name}…")
            with ui.guard("Analysing the call"):
                result = analyze_call(
                    data,
                    bundle=bundle,
                    roles=DEFAULT_ROLES,
                    settings=settings,
                    name=name,
                    progress=lambda p: bar.progress(
                        p.fraction, text=f"Analysing {name}… {format_clock(p.done)} of {format_clock(p.total)}"
                    ),
                )
                st.session_state["calls_result"] = (key, result)
            bar.empty()
        cancel_box.empty()
        stored = st.session_state.get("calls_result")
    if st.session_state.get("calls_cancelled") == key:
        st.info(f"The analysis of {name} was cancelled.", icon=":material/cancel:")
        if st.button("Analyse it", key="calls_analyse_again", icon=":material/play_arrow:"):
            st.session_state.pop("calls_cancelled", None)
            st.rerun()
        return
    if stored is not None and stored[0] == key:
        show_result(cv.relabel(stored[1], roles), player, mime, key="calls_offline")


def live_replay(data: bytes, name: str, roles: tuple, key: tuple, player: bytes, mime: str) -> None:
    """Play the call into the live analyser, with its audio in step, and say honestly where it stands."""
    speed_name = st.selectbox(
        "Replay speed",
        list(cv.REPLAY_SPEEDS),
        key="calls_speed",
        help="How fast the recording is played into the live analyser. The audio plays along at 1x, 2x and 4x; "
        "the status line shows the speed actually achieved.",
    )
    speed = cv.REPLAY_SPEEDS[speed_name]
    state = st.session_state.get("calls_replay")
    if state is None or state.key != (key, roles):
        state = cv.ReplayProgress(key=(key, roles), asked=speed)
        st.session_state["calls_replay"] = state
    if state.state == "running":  # a click (Stop, or any other widget) reran the page, which ended that replay
        state.state = "stopped"
    if state.state == "not started":
        state.asked = speed
    label = "Start the live replay" if state.state == "not started" else "Replay again"
    go = st.session_state.pop("calls_replay_go", None) == (key, roles)  # set by the Start button's callback
    if not go:
        st.button(
            label,
            type="primary",
            icon=":material/play_arrow:",
            key="calls_live_start",
            on_click=st.session_state.__setitem__,
            args=("calls_replay_go", (key, roles)),
        )
        if state.state == "not started":
            st.info(state.text(), icon=":material/play_circle:")
        elif state.state == "finished":
            st.success(state.text() + " The full timeline is below.", icon=":material/check_circle:")
            show_result(state.result, player, mime, key="calls_replayed")
        else:
            st.info(state.text(), icon=":material/stop_circle:")
            if state.result is not None:
                st.caption(f"What the live analyser had found by {format_clock(state.position_s)}:")
                show_result(state.result, player, mime, key="calls_stopped")
        return

    # the run the Start button asked for: Start is not drawn; Stop takes its place
    state = cv.ReplayProgress(key=(key, roles), state="running", asked=speed)
    st.session_state["calls_replay"] = state
    live = st.container()
    # Streamlit keeps the previous run's Start button and status, faded, until this run ends (with the replay):
    # hide those stale leftovers meanwhile
    live.html("<style>.stElementContainer[data-stale='true'] { display: none; }</style>")
    live.button("Stop", key="calls_live_stop", icon=":material/stop:")  # a click reruns the page, which ends the replay
    sync_box = None
    if speed is not None:
        with live.container(key="calls_live_audio"):
            st.audio(player, format=mime, autoplay=True)
            sync_box = st.empty()
            with sync_box:
                ui.sync_audio("calls_live_audio", rate=speed)
    else:
        live.caption("As fast as possible: no audio (a browser cannot play sound at this speed).")
    status, cards_box, chart_box = live.empty(), live.empty(), live.empty()
    t0 = time.monotonic()
    last_status = last_draw = last_sync = 0.0
    history = []  # (time, position) over the last seconds: the speed achieved lately, for the audio
    with ui.guard("The live replay"):
        for update in replay(data, bundle=bundle, roles=roles, speed=speed, settings=settings, name=name):
            now = time.monotonic()
            state.position_s, state.duration_s, state.elapsed_s = update.position_s, update.duration_s, now - t0
            if now - last_status > 0.25 or update.done:
                status.progress(min(1.0, update.position_s / max(update.duration_s, 1e-9)), text=state.text())
                last_status = now
                history = [(t, p) for t, p in history if now - t < 4.0] + [(now, update.position_s)]
            if now - last_draw > 1.0 or update.done:
                last_draw = now
                partial = update.analyzer.result(source=name)
                state.result = partial
                with cards_box.container():
                    for card, col in zip(cv.live_cards(partial), st.columns(len(partial.roles)), strict=True):
                        col.metric(f"{card.role}: now", card.now, help=card.now_detail or None)
                        col.caption(f"{card.so_far} · mean sentiment {card.mean_sentiment} · {card.speech}")
                chart_box.plotly_chart(
                    pt.timeline_figure(
                        partial.segments,
                        partial.windows,
                        roles=partial.roles,
                        duration_s=update.duration_s,
                        speech=partial.speech,
                        now_s=update.position_s,
                        title="Emotion so far (live)",
                        empty="Nothing judged yet: a window's emotion is final about a second after its speech.",
                    ),
                    key=f"calls_live_{int(now * 1000)}",
                )
            if sync_box is not None and now - last_sync > 2.0 and len(history) > 1:
                last_sync = now
                (ta, pa), (tb, pb) = history[0], history[-1]
                lately = (pb - pa) / (tb - ta) if tb > ta else speed
                with sync_box:  # the audio follows the analysis: its position, at the speed achieved lately
                    ui.sync_audio("calls_live_audio", rate=max(0.5, min(speed, lately)), position_s=update.position_s)
            if update.done:
                state.result = update.analyzer.result(source=name)
                state.state = "finished"
    if state.state == "running":  # the replay failed (the message is shown): say where it stopped
        state.state = "stopped"
    else:
        st.rerun()


def recording(data: bytes, name: str) -> None:
    """Everything about one recording: its channels, then the analysis or the live replay."""
    facts = None
    with ui.guard(f"Reading {name}"):
        facts = cv.call_facts(data, name)
    if facts is None:
        return
    roles = DEFAULT_ROLES
    if facts.channels >= 2:
        left = st.radio(
            "Stereo: the left channel is the",
            ["agent", "customer"],
            horizontal=True,
            key="calls_left",
            help="The other channel is the other party. Switching relabels the analysis; it does not analyse again.",
        )
        roles = cv.roles_for(left)
    else:
        st.caption(
            f"{name} is mono ({format_clock(facts.duration)}, {facts.sample_rate:,} Hz): both voices are analysed as one "
            "party, 'speaker'. With a channel per party (stereo), each is followed on its own."
        )
    digest = cv.digest(data)
    cached = st.session_state.get("calls_player")
    if cached is None or cached[0] != digest:
        with ui.guard(f"Preparing {name} for the player"):
            cached = (digest, *cv.player_audio(data, name))
            st.session_state["calls_player"] = cached
    _, player, mime = cached
    mode = st.segmented_control("Mode", ["Analyse", "Live replay"], default="Analyse", key="calls_mode", required=True)
    key = (digest, window_s, hop_s, str(info.path))
    if mode == "Analyse":
        analyse(data, name, roles, key, player, mime)
    else:
        live_replay(data, name, roles, key, player, mime)


scan = ui.scan_corpora(folder, durations=False)
sources = ["Upload a recording", "Try an example call", "Record with the microphone"]
if not scan.ok:
    sources.remove("Try an example call")
source = st.segmented_control("Call", sources, default=sources[0], key="calls_source", required=True)

if source == "Upload a recording":
    limit = ui.max_upload_mb()
    upload = st.file_uploader(
        f"Call recording (up to {limit} MB)",
        type=[e.lstrip(".") for e in AUDIO_EXTENSIONS],
        key="calls_upload",
        help=cv.upload_limit_note(limit),
    )
    st.caption(cv.upload_limit_note(limit))
    if upload is None:
        st.info("Upload a call to see its emotion timeline.", icon=":material/upload_file:")
        if scan.ok:
            st.caption("No recording at hand? Choose **Try an example call** above.")
        st.stop()
    recording(upload.getvalue(), upload.name)

elif source == "Try an example call":
    example = None
    with ui.guard("Building the example call"):
        example = ui.example_call(folder, info)
    if example is None:
        st.info(
            f"No example call: the data folder holds no two held-out speakers of {info.name} with neutral and angry clips "
            "(an example built from training voices would flatter the model).",
            icon=":material/info:",
        )
        st.stop()
    st.markdown(example.note)
    with st.expander("What each turn of the example truly is"):
        st.dataframe(example.turns, hide_index=True, key="calls_example_turns")
    recording(example.data, example.name)

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
    recorded = st.audio_input("Record a turn", key=f"calls_mic_{generation}", sample_rate=16000)
    if recorded is not None:
        with ui.guard("Adding the recording"):
            conv.add(recorded.getvalue(), name=recorded.name or "the recording")
    if st.button("Start a new conversation", icon=":material/restart_alt:", key="calls_mic_reset"):
        st.session_state.pop("calls_mic_conv", None)
        st.session_state["calls_mic_generation"] = generation + 1
        st.rerun()
    if conv.turns:
        st.caption(f"{conv.turns} turn(s) recorded.")
        show_result(conv.result(), conv.wav(), "audio/wav", key="calls_mic_view")
