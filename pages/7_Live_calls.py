"""Live calls: the calls the live call service is analysing now, each party's emotion as it happens."""

import streamlit as st

from ser_lib.app import live_view as lv
from ser_lib.app import plots_timeline as pt
from ser_lib.app import ui as ui

ui.page_setup("Live calls", ":material/call:")

st.title("Live calls")
st.caption(
    "The calls the live call service (`python -m ser_lib serve`) is analysing now: each party's current emotion and "
    "sentiment, a sentiment sparkline, and alerts (highlighted rows). Choose a call to watch its timeline grow. "
    "The page refreshes on its own."
)

url = st.sidebar.text_input(
    "Service URL", value=lv.service_url(), key="live_url", help="Where the live call service answers ($SER_SERVICE_URL)."
)
token = st.sidebar.text_input(
    "Token",
    value=lv.service_token() or "",
    type="password",
    key="live_token",
    help="The service's token, if it has one ($SER_SERVICE_TOKEN).",
)
every = st.sidebar.select_slider("Refresh every (s)", [1, 2, 5, 10], value=2, key="live_every")


@st.fragment(run_every=every)
def wallboard() -> None:
    try:
        overview = lv.calls_overview(url, token=token or None)
    except lv.ServiceUnavailable as exc:
        st.warning(str(exc), icon=":material/cloud_off:")
        st.markdown(lv.how_to_start(lv.service_url(url)))
        return
    table = lv.calls_table(overview)
    a, b, c = st.columns(3)
    a.metric("Active calls", overview.get("active", 0))
    b.metric("Calls with alerts", int((table["alerts"] > 0).sum()))
    c.metric("Calls listed", len(table))
    if table.empty:
        st.info("The service is running but has no calls yet.", icon=":material/call_end:")
        st.markdown(lv.how_to_start(lv.service_url(url)))
        return
    config = {}
    for role in lv.parties_of(overview):
        config[f"{role} sentiment"] = st.column_config.NumberColumn(f"{role} sentiment", format="%+.2f")
        config[f"{role} trend"] = st.column_config.LineChartColumn(f"{role} trend", y_min=-1.0, y_max=1.0)
    st.dataframe(lv.highlight_alerts(table), column_config=config, hide_index=True)

    rows = {r["call"]: r for r in table.to_dict(orient="records")}
    call_id = st.selectbox("Call", list(rows), format_func=lambda c: lv.call_label(rows[c]), key="live_call")
    detail = None
    with ui.guard("Reading the call"):
        detail = lv.call_detail(call_id, url, token=token or None)
    if detail is None:
        return
    for card, col in zip(lv.party_summary(detail), st.columns(max(1, len(detail.get("roles", [])))), strict=False):
        col.metric(f"{card['role']}: mostly", card["dominant"], help=f"Speech {card['speech']}")
        col.caption(f"Mean sentiment {card['mean_sentiment']}, trend {card['trend']}")
    data = lv.timeline_data(detail)
    st.plotly_chart(
        pt.timeline_figure(
            data.segments, data.windows, roles=data.roles, duration_s=data.duration_s, worst=data.worst, speech=data.speech
        ),
        key="live_timeline",
    )
    alerts = lv.alerts_table(detail)
    if alerts.empty:
        st.caption("No alerts on this call.")
    else:
        st.subheader("Alerts")
        st.dataframe(alerts, hide_index=True)


wallboard()
