"""ser_lib.app.plots_timeline: the call figures, checked on the data in their traces.

The input is :func:`conftest.generated_call_analysis`: a 60 s call (agent on the left, customer on
the right) built from tables, so every bar, line point and marker has a known place and value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from conftest import GENERATED_CALL, generated_probabilities
from ser_lib.app import plots_timeline as pt
from ser_lib.app.plots import EMOTION_COLORS
from ser_lib.config import EMOTIONS, SENTIMENT_WEIGHTS


def seconds(values) -> np.ndarray:
    """A time axis's values (plotly keeps them as dates after 1970-01-01) in seconds of the call."""
    return (pd.to_datetime(np.asarray(values)) - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()


def sentiment_of(emotion: str, p: float) -> float:
    """Sentiment of a window with ``p`` on ``emotion`` (the rest spread evenly), from the documented weights."""
    probs = generated_probabilities(emotion, p)
    return float(sum(probs[i] * SENTIMENT_WEIGHTS[e] for i, e in enumerate(EMOTIONS)))


def traces(fig: go.Figure, kind: str | None = None) -> dict[str, go.BaseTraceType]:
    return {t.name: t for t in fig.data if kind is None or t.type == kind}


def expected_window_sentiments(role: str) -> list[list[float]]:
    """Per judged region of ``role``: the sentiment of each 3 s window, every 1 s (GENERATED_CALL)."""
    out = []
    for who, start, end, plan in GENERATED_CALL:
        if who != role or not plan:
            continue
        values = []
        for a in np.arange(start, end - 3.0 + 1e-9, 1.0):
            emotion, p, _ = next(x for x in plan if a + 1.5 < x[2])
            values.append(sentiment_of(emotion, p))
        out.append(values)
    return out


# --- the timeline ----------------------------------------------------------------------------------


@pytest.fixture
def timeline(call_analysis) -> go.Figure:
    r = call_analysis
    return pt.timeline_figure(
        r.segments, r.windows, roles=r.roles, duration_s=r.duration_s, worst=r.summary["worst_moments"], speech=r.speech
    )


def test_timeline_draws_each_segment_as_a_bar_on_its_partys_row(timeline):
    bars = traces(timeline, "bar")
    assert list(bars) == ["speech (too short)", "neutral", "happy", "angry"]  # canonical emotion order
    drawn = sorted(
        (role, start, round(ms / 1000, 3), name)
        for name, t in bars.items()
        if name in EMOTIONS
        for role, start, ms in zip(t.y, seconds(t.base), t.x, strict=True)
    )
    assert drawn == [
        ("agent", 1.0, 8.0, "neutral"),
        ("agent", 24.0, 6.0, "happy"),
        ("agent", 46.0, 12.0, "neutral"),
        ("customer", 10.0, 6.0, "neutral"),
        ("customer", 16.0, 6.0, "angry"),  # the switch at 16 s: midway between the last neutral and first angry window
        ("customer", 32.0, 12.0, "angry"),
    ]
    assert {name: t.marker.color for name, t in bars.items() if name in EMOTIONS} == {
        e: EMOTION_COLORS[e] for e in ("neutral", "happy", "angry")
    }
    assert all(t.orientation == "h" and t.xaxis == "x" and t.yaxis == "y" for t in bars.values())
    assert timeline.layout.yaxis.categoryarray == ("customer", "agent")  # agent on top


def test_timeline_draws_speech_too_short_to_judge_in_grey(timeline):
    short = traces(timeline)["speech (too short)"]
    assert list(short.y) == ["customer"] and list(seconds(short.base)) == [50.0]
    assert list(short.x) == pytest.approx([600.0])
    assert short.marker.color == "#DDDDDD"


def expected_regions(role: str) -> list[tuple[float, float]]:
    """Per judged region of ``role``: the first window's start and the last window's end (GENERATED_CALL)."""
    return [(start, end) for who, start, end, plan in GENERATED_CALL if who == role and plan]


def test_timeline_has_one_sentiment_line_per_party_below_the_segments(timeline):
    lines = {name: t for name, t in traces(timeline, "scatter").items() if name.endswith(" sentiment")}
    assert list(lines) == ["agent sentiment", "customer sentiment"]
    for role, line in zip(("agent", "customer"), lines.values(), strict=True):
        assert line.mode == "lines" and line.xaxis == "x2" and line.yaxis == "y2" and not line.connectgaps
        y = np.asarray(line.y, float)
        t = seconds(line.x)
        regions = expected_window_sentiments(role)
        # one break (NaN) between regions; each region drawn from its first window's start to its last window's end
        assert np.isnan(y).sum() == len(regions) - 1
        runs = np.split(np.arange(len(y)), np.flatnonzero(np.isnan(y)))
        runs = [r[~np.isnan(y[r])] for r in runs]
        assert len(runs) == len(regions)
        for run, values, (start, end) in zip(runs, regions, expected_regions(role), strict=True):
            assert len(run) >= 2  # plotly draws a line through two points or more, never through one
            assert t[run][0] == pytest.approx(start) and t[run][-1] == pytest.approx(end)
            assert y[run] == pytest.approx([values[0], *values, values[-1]])  # flat to the edges, windows at centres
            assert np.all(np.diff(t[run]) > 0)
    customer = np.asarray(lines["customer sentiment"].y, float)
    assert np.nanmin(customer) == pytest.approx(sentiment_of("angry", 0.9))
    assert timeline.layout.yaxis2.title.text == "sentiment" and timeline.layout.yaxis2.range == pt.SENTIMENT_RANGE


def test_a_turn_judged_on_one_window_is_still_a_line(call_analysis):
    """Issue 14: in a real call most turns are 1-4 s, one window each; the old line was one point per turn."""
    w = call_analysis.windows
    single = w.groupby(["role", "region"], sort=False).head(1)  # one window per region, as short turns give
    series = pt.sentiment_series(single[single["role"] == "customer"])
    regions = expected_regions("customer")
    assert series["sentiment"].isna().sum() == len(regions) - 1
    drawn = series.dropna()
    assert drawn.groupby("region").size().min() >= 2
    first = single[single["role"] == "customer"].iloc[0]
    assert list(drawn["t"][:3]) == pytest.approx([first["start_s"], (first["start_s"] + first["end_s"]) / 2, first["end_s"]])
    fig = pt.timeline_figure(call_analysis.segments, single, roles=call_analysis.roles, duration_s=60.0)
    for name in ("agent sentiment", "customer sentiment"):
        y = np.asarray(traces(fig)[name].y, float)
        assert np.isfinite(y).sum() > 1
        assert np.all(pd.Series(y).rolling(2).count().max() == 2)  # two finite points in a row: a visible segment


def test_a_partys_silences_are_joined_by_a_faint_dotted_line(timeline):
    joins = traces(timeline)["customer (not speaking)"]
    assert joins.line.dash == "dot" and joins.opacity < 1 and joins.showlegend is False
    assert joins.legendgroup == traces(timeline)["customer sentiment"].legendgroup == "customer"
    t, y = seconds(joins.x), np.asarray(joins.y, float)
    # from the end of the customer's first judged region (22 s) to the start of the next (32 s), then a break
    assert list(t[:2]) == pytest.approx([22.0, 32.0]) and np.isnan(y[2])
    assert y[0] == pytest.approx(sentiment_of("angry", 0.7)) and y[1] == pytest.approx(sentiment_of("angry", 0.9))


def test_the_legend_sits_below_the_plot_and_the_title_at_the_top_left(timeline):
    """At 800 px the legend wraps; under the plot it grows downwards instead of over the title."""
    assert timeline.layout.legend.orientation == "h" and timeline.layout.legend.yanchor == "top"
    assert timeline.layout.legend.y < 0
    assert timeline.layout.title.x == 0 and timeline.layout.title.yref == "container"


def test_timeline_marks_the_worst_moments_in_order(timeline, call_analysis):
    worst = traces(timeline)["worst moments"]
    assert worst.mode == "markers+text" and worst.marker.symbol == "triangle-down"
    assert worst.textposition == "top center" and worst.cliponaxis is False  # numbers near -1 are not cut off
    assert worst.xaxis == "x2" and worst.yaxis == "y2"
    assert list(worst.text) == ["1", "2"]
    # most negative first: the strongly angry stretch at 32-44 s, then the angry end of the first turn
    assert list(seconds(worst.x)) == pytest.approx([33.5, 16.5])  # the centre of each one's most negative window
    assert list(worst.y) == pytest.approx([sentiment_of("angry", 0.9), sentiment_of("angry", 0.7)], abs=1e-4)
    assert [c[0] for c in worst.customdata] == ["customer", "customer"]
    assert [c[1] for c in worst.customdata] == ["angry", "angry"]
    assert [c[2] for c in worst.customdata] == ["00:34", "00:16"]  # format_clock rounds to the second


def test_timeline_time_axis_is_a_clock_over_the_whole_call(timeline):
    assert timeline.layout.title.text == "Emotion over the call"
    for axis in (timeline.layout.xaxis, timeline.layout.xaxis2):
        assert axis.type == "date" and axis.tickformat == "%M:%S"
        assert list(seconds(axis.range)) == [0.0, 60.0]
    assert timeline.layout.height == 300 + 60 * 2


def test_a_live_timeline_marks_where_the_replay_is(call_analysis):
    r = call_analysis
    fig = pt.timeline_figure(r.segments, r.windows, roles=r.roles, duration_s=60.0, now_s=30.0)
    now = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]
    assert len(now) == 2 and {s.xref for s in now} == {"x", "x2"}  # across both panels
    assert seconds([s.x0 for s in now]) == pytest.approx([30.0, 30.0])


def test_timeline_of_a_long_call_shows_hours(call_analysis):
    r = call_analysis
    fig = pt.timeline_figure(r.segments, r.windows, roles=r.roles, duration_s=2 * 3600)
    assert fig.layout.xaxis.tickformat == "%H:%M:%S" and list(seconds(fig.layout.xaxis.range)) == [0.0, 7200.0]
    assert "worst moments" not in traces(fig) and "speech (too short)" not in traces(fig)


def test_timeline_without_segments_says_why(call_analysis):
    r = call_analysis
    fig = pt.timeline_figure(r.segments.iloc[:0], r.windows.iloc[:0], roles=r.roles, duration_s=60.0)
    assert not fig.data
    assert fig.layout.annotations[0].text == "No speech to show: the call holds no speech the model could judge."


# --- the other figures -----------------------------------------------------------------------------


def test_probabilities_are_stacked_per_emotion_and_sum_to_one(call_analysis):
    r = call_analysis
    fig = pt.probabilities_figure(r.windows, role="customer", duration_s=r.duration_s, labels=r.labels)
    assert [t.name for t in fig.data] == list(EMOTIONS)
    assert {t.stackgroup for t in fig.data} == {"p"}
    stacked = np.sum([np.asarray(t.y, float) for t in fig.data], axis=0)
    t = seconds(fig.data[0].x)
    judged = stacked > 0  # between the two regions: a break filled with zeros
    assert (~judged).sum() == 2 and t[~judged] == pytest.approx([22.0, 32.0])  # end of one region, start of the next
    assert stacked[judged] == pytest.approx(np.ones(judged.sum()))
    # each region drawn from its first window's start to its last window's end (10-22 s, 32-44 s)
    assert t[judged][[0, -1]] == pytest.approx([10.0, 44.0])
    assert t[judged][t[judged] < 30][-1] == pytest.approx(22.0) and t[judged][t[judged] > 30][0] == pytest.approx(32.0)
    angry = np.asarray(fig.data[EMOTIONS.index("angry")].y, float)[judged]
    assert angry[t[judged] >= 32].tolist() == pytest.approx([0.9] * 12)  # the second turn: 0.9 angry throughout
    assert fig.layout.title.text == "Emotion probabilities: customer"
    assert fig.layout.yaxis.title.text == "probability" and fig.layout.yaxis.range == (0, 1)


def test_probabilities_of_a_one_window_turn_are_a_block_not_a_spike(call_analysis):
    w = call_analysis.windows.groupby(["role", "region"], sort=False).head(1)
    fig = pt.probabilities_figure(w, role="agent", duration_s=60.0, labels=call_analysis.labels)
    t = seconds(fig.data[0].x)
    stacked = np.sum([np.asarray(tr.y, float) for tr in fig.data], axis=0)
    first = w[w["role"] == "agent"].iloc[0]
    assert t[:3] == pytest.approx([first["start_s"], (first["start_s"] + first["end_s"]) / 2, first["end_s"]])
    assert stacked[:3] == pytest.approx([1.0, 1.0, 1.0])


def test_probabilities_of_a_silent_party_say_so(call_analysis):
    fig = pt.probabilities_figure(call_analysis.windows, role="supervisor", duration_s=60.0)
    assert not fig.data and fig.layout.annotations[0].text == "No judged speech from the supervisor."


def test_sentiment_figure_has_one_line_per_party_that_spoke(call_analysis):
    r = call_analysis
    fig = pt.sentiment_figure(r.windows, roles=["agent", "customer", "supervisor"], duration_s=r.duration_s)
    lines = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in lines] == ["agent", "customer"]  # nobody on a third channel: no line
    for t in lines:
        y = np.asarray(t.y, float)
        assert (~np.isnan(y)).sum() > 1
        assert y[~np.isnan(y)] == pytest.approx(
            [v for region in expected_window_sentiments(t.name) for v in (region[0], *region, region[-1])]
        )
    assert lines[0].line.color != lines[1].line.color
    assert fig.layout.yaxis.title.text == "sentiment" and fig.layout.xaxis.tickformat == "%M:%S"
    empty = pt.sentiment_figure(r.windows.iloc[:0], roles=r.roles, duration_s=60.0)
    assert not empty.data and empty.layout.annotations[0].text == "No judged speech yet."


def test_quarters_figure_shows_each_partys_mean_sentiment_and_dominant_emotion(call_analysis):
    fig = pt.quarters_figure(call_analysis.summary)
    bars = traces(fig, "bar")
    assert list(bars) == ["agent", "customer"]
    quarters = ["Q1 (00:00-00:15)", "Q2 (00:15-00:30)", "Q3 (00:30-00:45)", "Q4 (00:45-01:00)"]
    assert list(bars["agent"].x) == quarters == list(bars["customer"].x)
    neutral, happy = sentiment_of("neutral", 0.7), sentiment_of("happy", 0.7)
    angry, very_angry = sentiment_of("angry", 0.7), sentiment_of("angry", 0.9)
    # agent: neutral, happy, silent (drawn at 0), neutral
    assert list(bars["agent"].text) == ["neutral", "happy", "no speech", "neutral"]
    assert list(bars["agent"].y) == pytest.approx([neutral, happy, 0.0, neutral], abs=1e-4)
    # customer: neutral from 10 s; 15-30 s is 1 s neutral and 6 s angry; 32-44 s angry; only a "yes" after 45 s
    assert list(bars["customer"].text) == ["neutral", "angry", "angry", "no speech"]
    assert list(bars["customer"].y) == pytest.approx([neutral, (neutral + 6 * angry) / 7, very_angry, 0.0], abs=1e-4)
    assert fig.layout.yaxis.title.text == "mean sentiment" and fig.layout.barmode == "group"


def test_shares_figure_splits_each_partys_judged_time_by_emotion(call_analysis):
    fig = pt.shares_figure(call_analysis.summary)
    assert [t.name for t in fig.data] == list(EMOTIONS)
    for t in fig.data:
        assert list(t.y) == ["agent", "customer", "whole call"] and t.orientation == "h"
    share = {t.name: dict(zip(t.y, t.x, strict=True)) for t in fig.data}
    # agent: 20 s neutral, 6 s happy; customer: 6 s neutral, 18 s angry (its 0.6 s "yes" is not judged)
    assert (share["neutral"]["agent"], share["happy"]["agent"]) == pytest.approx((20 / 26, 6 / 26), abs=1e-4)
    assert (share["neutral"]["customer"], share["angry"]["customer"]) == pytest.approx((6 / 24, 18 / 24), abs=1e-4)
    assert share["angry"]["whole call"] == pytest.approx(18 / 50, abs=1e-4)
    for who in ("agent", "customer", "whole call"):
        assert sum(share[e][who] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
    assert fig.layout.barmode == "stack" and fig.layout.xaxis.tickformat == ".0%"


def test_summaries_without_speech_give_labelled_empty_figures(call_analysis):
    summary = {**call_analysis.summary, "no_speech": True}
    assert pt.quarters_figure(summary).layout.annotations[0].text == "No speech to summarise."
    assert pt.shares_figure(summary).layout.annotations[0].text == "No speech to summarise."
