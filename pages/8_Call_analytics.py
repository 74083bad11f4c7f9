"""Call analytics: the calls in the call store, compared over a period, by queue and by agent."""

import streamlit as st

from ser_lib.app import analytics_view as av
from ser_lib.app import plots_analytics as pa
from ser_lib.app import plots_timeline as pt
from ser_lib.app import ui as ui
from ser_lib.errors import ParameterError
from ser_lib.store.analytics import WORST_BY

ui.page_setup("Call analytics", ":material/monitoring:")
st.title("Call analytics")
st.caption(
    "Every call analysed into the call store: how many ended with an unhappy customer, whether customers leave happier "
    "than they came, and which queues and agents see the most distress. Choose a call below to see its timeline."
)


# cached per store state (its file's time and size): calls a running batch writes appear on the next interaction
@st.cache_data(show_spinner=False, max_entries=8)
def options(path: str, stamp: tuple) -> dict:
    return av.load_options(path)


@st.cache_data(show_spinner="Querying the call store…", max_entries=64)
def dashboard(path: str, stamp: tuple, filters, worst_by: str):
    return av.load_dashboard(path, filters, worst_by=worst_by)


@st.cache_data(show_spinner=False, max_entries=32)
def stored_call(path: str, stamp: tuple, analysis_id: str):
    return av.load_call(path, analysis_id)


@st.cache_data(show_spinner=False, max_entries=64)
def moment(source: str, stamp: tuple, start_s: float, end_s: float) -> bytes:
    return av.moment_audio(source, start_s=start_s, end_s=end_s)


default = str(av.store_path())
typed = st.sidebar.text_input(
    "Call store",
    value=default,
    key="ca_store",
    help="The DuckDB file `analyze-calls` writes ($SER_CALL_STORE, default data/calls.duckdb). Another store must lie "
    "in the folders this dashboard may read.",
)
try:
    path = av.store_path(typed)
except ParameterError as exc:
    st.sidebar.error(str(exc), icon=":material/block:")
    path = av.store_path()
stamp = av.store_stamp(path)
if stamp is None:
    st.info(av.no_store_message(path), icon=":material/database:")
    st.stop()

opts = None
with ui.guard(f"Reading the call store {path}"):
    opts = options(str(path), stamp)
if opts is None:
    st.stop()
if not opts["models"]:
    st.info(f"The call store {path} holds no calls yet.\n\n" + av.no_store_message(path), icon=":material/database:")
    st.stop()

models = opts["models"]
model = st.sidebar.selectbox(
    "Model", list(models), format_func=models.get, key="ca_model", help="One model at a time; the most recent first."
)
left, mid, right = st.columns([1.2, 1, 1])
period = left.date_input(
    "Period",
    value=(opts["first_day"], opts["last_day"]),
    min_value=opts["first_day"],
    max_value=opts["last_day"],
    key="ca_period",
)
queues = mid.multiselect("Queues", opts["queues"], key="ca_queues", placeholder="All queues")
agents = right.multiselect("Agents", opts["agents"], key="ca_agents", placeholder="All agents")

d = None
with ui.guard("Querying the call store"):
    filters = av.filters_from(period, queues, agents, model)
    worst_by = st.session_state.get("ca_worst_by") or WORST_BY[0]
    d = dashboard(str(path), stamp, filters, worst_by)
if d is None:
    st.stop()

for card, col in zip(av.headline_cards(d.headline), st.columns(4), strict=True):
    col.metric(card["label"], card["value"], help=card["help"])
if d.headline["calls"] == 0:
    st.info(
        "No calls match these filters: widen the period or clear the queue and agent filters.", icon=":material/filter_alt_off:"
    )
    st.stop()

a, b = st.columns(2)
a.plotly_chart(pa.per_day_figure(d.per_day), key="ca_per_day")
b.plotly_chart(pa.quarters_figure(d.quarters), key="ca_quarters")

st.subheader("Agents")
agents_table = av.agents_display(d.agents)
st.dataframe(
    agents_table,
    hide_index=True,
    key="ca_agents_table",
    column_config={
        "mean customer sentiment": st.column_config.NumberColumn(format="%+.2f"),
        "mean change (first→last quarter)": st.column_config.NumberColumn(format="%+.2f"),
        "ends negative": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        "worsening": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
    },
)

st.subheader("Worst calls")
st.segmented_control(
    "Worst by",
    list(WORST_BY),
    default=WORST_BY[0],
    key="ca_worst_by",
    required=True,
    format_func={"sentiment": "lowest customer sentiment", "alerts": "most alerts"}.get,
)
worst = av.worst_display(d.worst)
row = ui.pick_row(
    worst,
    key="ca_worst",
    label="Open the timeline of",
    column="call",
    show=[c for c in worst.columns if c != "analysis_id"],
    column_config={
        "mean sentiment": st.column_config.NumberColumn(format="%+.2f"),
        "change": st.column_config.NumberColumn(format="%+.2f"),
    },
    height=300,
)
x, y, _ = st.columns([1, 1, 2])
x.download_button("Agents (CSV)", av.csv_bytes(agents_table), file_name="call_agents.csv", mime="text/csv", key="ca_csv_agents")
y.download_button(
    "Worst calls (CSV)",
    av.csv_bytes(worst.drop(columns="analysis_id")),
    file_name="worst_calls.csv",
    mime="text/csv",
    key="ca_csv_worst",
)
st.download_button(
    "Calls per day (CSV)", av.csv_bytes(d.per_day), file_name="calls_per_day.csv", mime="text/csv", key="ca_csv_days"
)

if row is not None:
    call = None
    with ui.guard(f"Reading the call {row['call']}"):
        call = stored_call(str(path), stamp, row["analysis_id"])
    if call is not None:
        st.subheader(f"Call {row['call']}")
        st.caption(f"{row['started']} · {row['agent']} · {row['queue']} · {row['duration']}")
        if call.has_timeline:
            st.plotly_chart(
                pt.timeline_figure(
                    call.segments, call.windows, roles=call.roles, duration_s=call.duration_s, worst=av.timeline_worst(call)
                ),
                key="ca_timeline",
            )
        else:
            st.info("The store kept only this call's summary, not its timeline.", icon=":material/timeline:")
        if call.worst.empty:
            st.caption("No strongly negative moments in this call.")
        else:
            st.dataframe(av.moments_display(call.worst), hide_index=True, key="ca_moments")
            why = av.audio_reachable(call.call.get("source"))
            if why:
                st.caption(why + " The worst moments cannot be played.")
            else:
                for m in call.worst.itertuples():
                    with ui.guard(f"Reading the recording of worst moment #{m.rank}"):
                        st.caption(f"#{m.rank} · {m.role} {m.emotion} ({m.sentiment:+.2f})")
                        st.audio(moment(str(call.call["source"]), stamp, float(m.start_s), float(m.end_s)), format="audio/wav")
