"""Figure builders for the Call analytics page: each takes a frame from
:mod:`ser_lib.store.analytics` and returns a plotly figure; none calls Streamlit.

- :func:`per_day_figure`: calls per day (bars) and the share of them whose customer ended negative (line).
- :func:`quarters_figure`: the customer's mean sentiment in each quarter of the call, with the
  middle half of calls (25th-75th percentile) as whiskers.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plots_timeline import _empty, _layout

CALLS_COLOUR, NEGATIVE_COLOUR, SENTIMENT_COLOUR = "#4C78A8", "#E45756", "#54A24B"


def per_day_figure(
    per_day: pd.DataFrame, *, title: str = "Calls per day and share ending negative", height: int = 340
) -> go.Figure:
    """Bars: calls per day; line (right axis): share of the day's calls whose customer ended negative.

    Parameters
    ----------
    per_day : pd.DataFrame
        ``day``, ``calls``, ``negative_share`` (0-1, NaN when no ending was judged), ``negative_endings``.
    """
    if per_day is None or per_day.empty:
        return _empty(title, "No calls in this period.", height)
    day = pd.to_datetime(per_day["day"])
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=day,
            y=per_day["calls"],
            name="calls",
            marker_color=CALLS_COLOUR,
            opacity=0.75,
            hovertemplate="%{x|%a %d %b}: %{y} calls<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=day,
            y=per_day["negative_share"],
            name="ending negative",
            mode="lines+markers",
            line=dict(color=NEGATIVE_COLOUR, width=2),
            customdata=per_day[["negative_endings"]].to_numpy(),
            hovertemplate="%{x|%a %d %b}: %{y:.0%} ending negative (%{customdata[0]} calls)<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.update_layout(**_layout(title, height=height, bargap=0.15))
    fig.update_yaxes(title_text="calls", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="ending negative", range=[0, 1], tickformat=".0%", showgrid=False, secondary_y=True)
    fig.update_xaxes(type="date", tickformat="%d %b")
    return fig


def quarters_figure(
    quarters: pd.DataFrame, *, title: str = "Customer sentiment per quarter of the call", height: int = 340
) -> go.Figure:
    """The customer's mean sentiment per quarter (bars), whiskers from the 25th to the 75th percentile of calls.

    Parameters
    ----------
    quarters : pd.DataFrame
        ``quarter`` (1-4), ``calls``, ``mean_sentiment``, ``p25``, ``p75``, ``negative_share``.
    """
    if quarters is None or quarters.empty or quarters["mean_sentiment"].isna().all():
        return _empty(title, "No customer speech in these calls.", height)
    mean = quarters["mean_sentiment"].astype(float)
    fig = go.Figure(
        go.Bar(
            x=[f"Q{int(q)}" for q in quarters["quarter"]],
            y=mean,
            name="mean customer sentiment",
            marker_color=[SENTIMENT_COLOUR if m >= 0 else NEGATIVE_COLOUR for m in mean],
            error_y=dict(
                type="data",
                symmetric=False,
                array=(quarters["p75"] - mean).clip(lower=0),
                arrayminus=(mean - quarters["p25"]).clip(lower=0),
            ),
            text=[f"{m:+.2f}" for m in mean],
            textposition="outside",
            cliponaxis=False,
            customdata=quarters[["calls", "negative_share", "p25", "p75"]].to_numpy(),
            hovertemplate="%{x}: mean %{y:+.2f} over %{customdata[0]} calls<br>middle half %{customdata[2]:+.2f} to "
            "%{customdata[3]:+.2f}<br>%{customdata[1]:.0%} of calls negative in this quarter<extra></extra>",
        )
    )
    fig.add_hline(y=0, line=dict(color="#BBBBBB", width=1))
    fig.update_layout(**_layout(title, height=height, legend=False))
    fig.update_yaxes(range=[-1.05, 1.05], title_text="customer sentiment")
    fig.update_xaxes(title_text="quarter of the call")
    return fig
