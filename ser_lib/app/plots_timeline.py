"""Figure builders for the call timeline: each takes the tables of a
:class:`ser_lib.calls.CallAnalysis` (or its summary dict) and returns a plotly figure; none
calls Streamlit.

- :func:`timeline_figure`: one row of segments per party, coloured by emotion (grey and hatched
  where "uncertain"), above the sentiment line of each party, with the worst moments marked, and
  optionally a row of valence and arousal.
- :func:`affect_figure`: valence and arousal per party over the call.
- :func:`sentiment_series`: one party's sentiment as a line plotly can draw (every stretch of
  speech at least two points), used by the figures below.
- :func:`probabilities_figure`: the smoothed class probabilities of one party, stacked.
- :func:`sentiment_figure`: sentiment per party over the call.
- :func:`quarters_figure`: mean sentiment per quarter of the call and party, dominant emotion on top.
- :func:`shares_figure`: share of judged time per emotion and party.

Time axes show the call clock (``mm:ss``, or ``h:mm:ss`` for long calls): seconds are drawn as
times after midnight of 1 January 1970, which plotly formats as a clock. Titles sit at the top
left and legends below the plot, so a legend that wraps on a narrow screen never covers the title.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..calls import format_clock
from ..calls.result import shown_emotions
from ..config import EMOTIONS
from ..decisions import UNCERTAIN
from .plots import EMOTION_COLORS
from .plots_decisions import UNCERTAIN_COLOR

_EPOCH = pd.Timestamp("1970-01-01")
_PARTY_COLORS = ("#4C78A8", "#E45756", "#54A24B", "#B279A2")
#: The sentiment axis: a little room above +1 and below -1 for the worst-moment numbers.
SENTIMENT_RANGE = (-1.15, 1.15)


def _layout(title: str, *, height: int, legend: bool = True, **extra) -> dict:
    """Title at the top left, the legend in one or more rows *below* the plot (under the time
    axis), so that at any width (800 px included) a legend that wraps grows into its own margin
    instead of over the title or the traces."""
    layout = dict(
        title=dict(
            text=title, x=0, xanchor="left", y=1.0, yanchor="top", yref="container", pad=dict(t=10, l=4), font=dict(size=15)
        ),
        height=height,
        margin=dict(l=10, r=10, t=44, b=10),
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.12, yanchor="top", traceorder="normal"),
        showlegend=legend,
    )
    layout.update(extra)
    return layout


def _clock(seconds) -> pd.DatetimeIndex | pd.Timestamp:
    """Seconds from the start of the call as timestamps (plotly draws them as a clock)."""
    if np.ndim(seconds) == 0:
        return _EPOCH + pd.to_timedelta(float(seconds), unit="s")
    return _EPOCH + pd.to_timedelta(np.asarray(seconds, dtype=float), unit="s")


def _time_axis(fig: go.Figure, duration_s: float, **kwargs) -> None:
    fmt = "%H:%M:%S" if duration_s >= 3600 else "%M:%S"
    fig.update_xaxes(type="date", tickformat=fmt, range=[_clock(0), _clock(max(duration_s, 1.0))], **kwargs)


def _empty(title: str, message: str, height: int = 260) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**_layout(title, height=height, legend=False))
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _labels_of(frame: pd.DataFrame, labels: Sequence[str] | None) -> list[str]:
    if labels:
        return list(labels)
    found = [c[2:] for c in frame.columns if c.startswith("p_")]
    return found or list(EMOTIONS)


def _with_gaps(windows: pd.DataFrame, columns: Sequence[str], *, fill: float | None) -> pd.DataFrame:
    """Per speech region: its first window's values from the region's start, each window's values
    at its centre, its last window's values to the region's end; between regions two rows of
    ``fill`` (NaN when None), at the end of one and the start of the next. A region judged on a
    single window is then a flat stretch over the time it covers, not a spike."""
    w = windows.sort_values("start_s")
    rows_t: list[float] = []
    rows_v: list[np.ndarray] = []
    previous_end = None
    for _, g in w.groupby("region", sort=False):
        values = g[list(columns)].to_numpy(float)
        centres = ((g["start_s"] + g["end_s"]) / 2).to_numpy(float)
        start, end = float(g["start_s"].min()), float(g["end_s"].max())
        if previous_end is not None:
            gap = np.full(len(columns), np.nan if fill is None else fill)
            rows_t += [previous_end, start]
            rows_v += [gap, gap]
        rows_t.append(start)
        rows_v.append(values[0])
        for c, v in zip(centres, values, strict=True):
            if start < c < end:
                rows_t.append(float(c))
                rows_v.append(v)
        rows_t.append(end)
        rows_v.append(values[-1])
        previous_end = end
    return pd.DataFrame(np.array(rows_v).reshape(-1, len(columns)), columns=list(columns)).assign(t=rows_t)


def sentiment_series(windows: pd.DataFrame) -> pd.DataFrame:
    """One party's sentiment as a line: per stretch of speech (region), its first window's value
    from the region's start, each window's value at its centre, and its last window's value to
    the region's end; a row of NaN between regions, so the line breaks where the party is silent.

    A region judged on one window (a turn of 1-4 s, the common case in a real call) is a flat
    line over the time it covers instead of a single point, which plotly would not draw.

    Parameters
    ----------
    windows : pd.DataFrame
        One party's windows: ``region``, ``start_s``, ``end_s``, ``sentiment``.

    Returns
    -------
    pd.DataFrame
        ``t`` (seconds), ``sentiment`` and ``region`` (NaN on the break rows), in time order.
    """
    rows: list[tuple[float, float, float]] = []
    if windows is None or windows.empty:
        return pd.DataFrame(rows, columns=["t", "sentiment", "region"])
    w = windows.sort_values("start_s")
    for n, (region, g) in enumerate(w.groupby("region", sort=False)):
        if n:
            rows.append((float(g["start_s"].iloc[0]), np.nan, np.nan))
        values = g["sentiment"].to_numpy(float)
        centres = ((g["start_s"] + g["end_s"]) / 2).to_numpy(float)
        start, end = float(g["start_s"].min()), float(g["end_s"].max())
        rows.append((start, values[0], float(region)))
        rows += [(float(c), float(v), float(region)) for c, v in zip(centres, values, strict=True) if start < c < end]
        rows.append((end, values[-1], float(region)))
    return pd.DataFrame(rows, columns=["t", "sentiment", "region"])


def _silences(series: pd.DataFrame) -> pd.DataFrame:
    """The joins between one party's stretches of speech: the last point of each region to the
    first of the next, NaN between joins (drawn faint and dotted: no speech there)."""
    rows: list[tuple[float, float]] = []
    s = series.dropna()
    if s.empty:
        return pd.DataFrame(rows, columns=["t", "sentiment"])
    firsts = s.groupby("region", sort=False).head(1)
    lasts = s.groupby("region", sort=False).tail(1)
    for (_, a), (_, b) in zip(lasts.iloc[:-1].iterrows(), firsts.iloc[1:].iterrows(), strict=True):
        rows += [(a["t"], a["sentiment"]), (b["t"], b["sentiment"]), (b["t"], np.nan)]
    return pd.DataFrame(rows, columns=["t", "sentiment"])


def _affect_traces(windows: pd.DataFrame | None, roles: Sequence[str]) -> list[go.Scatter]:
    """Per party: valence (solid) and arousal (dashed) over the call, broken where the party is silent."""
    traces: list[go.Scatter] = []
    if windows is None or windows.empty or "valence" not in windows:
        return traces
    for i, role in enumerate(roles):
        w = windows[windows["role"] == role]
        if w.empty:
            continue
        g = _with_gaps(w, ["valence", "arousal"], fill=None)
        colour = _PARTY_COLORS[i % len(_PARTY_COLORS)]
        for dim, dash in (("valence", "solid"), ("arousal", "dash")):
            traces.append(
                go.Scatter(
                    x=_clock(g["t"]),
                    y=g[dim].tolist(),
                    mode="lines",
                    name=f"{role} {dim}",
                    line=dict(color=colour, dash=dash, width=2),
                    connectgaps=False,
                    hovertemplate=f"{role} {dim} %{{y:+.2f}}<extra></extra>",
                )
            )
    return traces


def affect_figure(
    windows: pd.DataFrame,
    *,
    roles: Sequence[str],
    duration_s: float,
    title: str = "Valence and arousal over the call",
    height: int = 300,
) -> go.Figure:
    """Each party's valence (solid) and arousal (dashed) over the call, in [-1, 1] (:mod:`ser_lib.affect`)."""
    traces = _affect_traces(windows, roles)
    if not traces:
        return _empty(title, "No judged speech yet.", height)
    fig = go.Figure(traces)
    fig.add_hline(y=0, line=dict(color="#BBBBBB", width=1, dash="dot"))
    fig.update_layout(**_layout(title, height=height))
    fig.update_yaxes(range=[-1.05, 1.05], title_text="valence / arousal", tickvals=[-1, -0.5, 0, 0.5, 1])
    _time_axis(fig, duration_s)
    return fig


def _add_segments(
    fig: go.Figure, segments: pd.DataFrame, roles: Sequence[str], *, row: int | None = None, legend: bool = True
) -> None:
    """Horizontal bars, one per segment, on a row per party, one trace per emotion."""
    kw = dict(row=row, col=1) if row else {}
    shown = shown_emotions(segments)
    found = set(shown)
    order = [e for e in EMOTIONS if e in found] + sorted(found - set(EMOTIONS) - {UNCERTAIN}) + [UNCERTAIN] * (UNCERTAIN in found)
    for emotion in order:
        s = segments[shown == emotion]
        duration_ms = (s["end_s"] - s["start_s"]).to_numpy(float) * 1000.0
        fig.add_trace(
            go.Bar(
                x=duration_ms,
                base=_clock(s["start_s"]),
                y=s["role"],
                orientation="h",
                name=emotion,
                legendgroup=emotion,
                showlegend=legend,
                marker_color=UNCERTAIN_COLOR if emotion == UNCERTAIN else EMOTION_COLORS.get(emotion, "#888"),
                marker_pattern_shape="/" if emotion == UNCERTAIN else "",
                customdata=np.stack(
                    [
                        s["start_s"].map(format_clock),
                        s["end_s"].map(format_clock),
                        s["confidence"],
                        s["sentiment"],
                        s["emotion"],
                    ],
                    axis=1,
                ),
                hovertemplate=(
                    "<b>uncertain</b> (%{y})<br>%{customdata[0]}-%{customdata[1]}<br>most likely %{customdata[4]}, "
                    if emotion == UNCERTAIN
                    else f"<b>{emotion}</b> (%{{y}})<br>%{{customdata[0]}}-%{{customdata[1]}}<br>"
                )
                + "confidence %{customdata[2]:.2f}<br>sentiment %{customdata[3]:+.2f}<extra></extra>",
            ),
            **kw,
        )
    fig.update_yaxes(categoryorder="array", categoryarray=list(roles)[::-1], **kw)


def timeline_figure(
    segments: pd.DataFrame,
    windows: pd.DataFrame | None = None,
    *,
    roles: Sequence[str],
    duration_s: float,
    worst: Sequence[dict] | None = None,
    speech: pd.DataFrame | None = None,
    now_s: float | None = None,
    title: str = "Emotion over the call",
    height: int | None = None,
    empty: str = "No speech to show: the call holds no speech the model could judge.",
    affect: bool = False,
) -> go.Figure:
    """Segments per party (coloured by emotion, grey and hatched where "uncertain") above each
    party's sentiment line, and with ``affect`` a third row of valence and arousal.

    Parameters
    ----------
    segments : pd.DataFrame
        ``role``, ``start_s``, ``end_s``, ``emotion``, ``confidence``, ``sentiment``.
    windows : pd.DataFrame or None
        ``role``, ``region``, ``start_s``, ``end_s``, ``sentiment`` (the sentiment lines, see
        :func:`sentiment_series`).
    roles : sequence of str
        Parties, top to bottom.
    duration_s : float
        Length of the call (the time axis).
    worst : list of dict or None
        Worst moments (``peak_s``, ``role``, ``emotion``, ``sentiment``), marked and numbered on
        the sentiment panel.
    speech : pd.DataFrame or None
        Speech regions; those without a segment (too short to judge) are drawn in grey.
    now_s : float or None
        During a live replay: where the replay is, drawn as a vertical line.
    empty : str
        What the figure says when there is no segment (yet).
    """
    if segments is None or segments.empty:
        return _empty(title, empty)
    if affect:
        fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.3, 0.35, 0.35], vertical_spacing=0.05)
    else:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.45, 0.55], vertical_spacing=0.06)
    if speech is not None and not speech.empty and "judged" in speech:
        unjudged = speech[~speech["judged"].astype(bool)]
        if len(unjudged):
            fig.add_trace(
                go.Bar(
                    x=(unjudged["end_s"] - unjudged["start_s"]).to_numpy(float) * 1000.0,
                    base=_clock(unjudged["start_s"]),
                    y=unjudged["role"],
                    orientation="h",
                    name="speech (too short)",
                    marker_color="#DDDDDD",
                    hovertemplate="short speech (%{y})<extra></extra>",
                ),
                row=1,
                col=1,
            )
    _add_segments(fig, segments, roles, row=1)
    for trace in _sentiment_traces(windows, roles, suffix=" sentiment"):
        fig.add_trace(trace, row=2, col=1)
    if worst:
        fig.add_trace(
            go.Scatter(
                x=_clock([m["peak_s"] for m in worst]),
                y=[m["sentiment"] for m in worst],
                mode="markers+text",
                text=[str(i + 1) for i in range(len(worst))],
                textposition="top center",
                cliponaxis=False,  # a number next to a marker near -1 is drawn whole, not cut at the axis
                marker=dict(symbol="triangle-down", size=12, color="#D55E00"),
                name="worst moments",
                customdata=[[m["role"], m["emotion"], format_clock(m["peak_s"])] for m in worst],
                hovertemplate="#%{text} %{customdata[0]} %{customdata[1]} at %{customdata[2]}"
                "<br>sentiment %{y:+.2f}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    fig.add_hline(y=0, line=dict(color="#BBBBBB", width=1, dash="dot"), row=2, col=1)
    if now_s is not None:
        fig.add_vline(x=_clock(now_s), line=dict(color="#333333", width=1.5), row="all", col=1)
    fig.update_yaxes(range=list(SENTIMENT_RANGE), title_text="sentiment", tickvals=[-1, -0.5, 0, 0.5, 1], row=2, col=1)
    if affect:
        for trace in _affect_traces(windows, roles):
            fig.add_trace(trace, row=3, col=1)
        fig.add_hline(y=0, line=dict(color="#BBBBBB", width=1, dash="dot"), row=3, col=1)
        fig.update_yaxes(range=[-1.05, 1.05], title_text="valence / arousal", tickvals=[-1, 0, 1], row=3, col=1)
    fig.update_layout(**_layout(title, height=height or 300 + 60 * len(roles) + 160 * affect, barmode="overlay", bargap=0.35))
    _time_axis(fig, duration_s)
    return fig


def probabilities_figure(
    windows: pd.DataFrame,
    *,
    role: str,
    duration_s: float,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    height: int = 300,
) -> go.Figure:
    """The smoothed probabilities of ``role``'s windows, stacked (silence shows as a gap)."""
    title = title or f"Emotion probabilities: {role}"
    w = windows[windows["role"] == role] if windows is not None and len(windows) else None
    if w is None or w.empty:
        return _empty(title, f"No judged speech from the {role}.", height)
    labels = _labels_of(w, labels)
    cols = [f"p_{lab}" for lab in labels]
    g = _with_gaps(w, cols, fill=0.0)
    fig = go.Figure()
    for lab, col in zip(labels, cols, strict=True):
        fig.add_trace(
            go.Scatter(
                x=_clock(g["t"]),
                y=g[col],
                name=lab,
                mode="lines",
                stackgroup="p",
                line=dict(width=0.5, color=EMOTION_COLORS.get(lab, "#888")),
                hovertemplate=f"{lab} %{{y:.2f}}<extra></extra>",
            )
        )
    fig.update_layout(**_layout(title, height=height, hovermode="x unified"))
    fig.update_yaxes(range=[0, 1], title_text="probability")
    _time_axis(fig, duration_s)
    return fig


def sentiment_figure(
    windows: pd.DataFrame,
    *,
    roles: Sequence[str],
    duration_s: float,
    title: str = "Sentiment over the call",
    height: int = 300,
) -> go.Figure:
    """Each party's sentiment (smoothed windows) over the call, in [-1, 1]."""
    if windows is None or windows.empty:
        return _empty(title, "No judged speech yet.", height)
    fig = go.Figure()
    for trace in _sentiment_traces(windows, roles):
        fig.add_trace(trace)
    fig.add_hline(y=0, line=dict(color="#BBBBBB", width=1, dash="dot"))
    fig.update_layout(**_layout(title, height=height))
    fig.update_yaxes(range=list(SENTIMENT_RANGE), title_text="sentiment", tickvals=[-1, -0.5, 0, 0.5, 1])
    _time_axis(fig, duration_s)
    return fig


def _sentiment_traces(windows: pd.DataFrame | None, roles, *, suffix: str = "") -> list[go.Scatter]:
    """Per party: its sentiment line (:func:`sentiment_series`), broken where it did not speak,
    and a faint dotted trace joining the breaks (no legend entry of its own)."""
    traces = []
    if windows is None or windows.empty:
        return traces
    for i, role in enumerate(roles):
        w = windows[windows["role"] == role]
        if w.empty:
            continue
        color = _PARTY_COLORS[i % len(_PARTY_COLORS)]
        series = sentiment_series(w)
        traces.append(
            go.Scatter(
                x=_clock(series["t"]),
                y=series["sentiment"],
                mode="lines",
                name=f"{role}{suffix}",
                legendgroup=role,
                line=dict(color=color, width=2.5),
                connectgaps=False,
                hovertemplate=f"{role}: %{{y:+.2f}} at %{{x|%M:%S}}<extra></extra>",
            )
        )
        joins = _silences(series)
        if len(joins):
            traces.append(
                go.Scatter(
                    x=_clock(joins["t"]),
                    y=joins["sentiment"],
                    mode="lines",
                    name=f"{role} (not speaking)",
                    legendgroup=role,
                    showlegend=False,
                    line=dict(color=color, width=1, dash="dot"),
                    opacity=0.45,
                    connectgaps=False,
                    hoverinfo="skip",
                )
            )
    return traces


def quarters_figure(summary: dict, *, title: str = "Sentiment per quarter of the call", height: int = 320) -> go.Figure:
    """Mean sentiment per quarter for each party (bars), the quarter's dominant emotion written on top."""
    parties = (summary or {}).get("parties") or {}
    if summary.get("no_speech") or not parties:
        return _empty(title, "No speech to summarise.", height)
    fig = go.Figure()
    for i, (role, party) in enumerate(parties.items()):
        q = party["quarters"]
        fig.add_trace(
            go.Bar(
                x=[f"Q{x['quarter']} ({format_clock(x['start_s'])}-{format_clock(x['end_s'])})" for x in q],
                y=[x["mean_sentiment"] if x["mean_sentiment"] is not None else 0.0 for x in q],
                name=role,
                marker_color=_PARTY_COLORS[i % len(_PARTY_COLORS)],
                text=[x["dominant"] or "no speech" for x in q],
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"{role} %{{x}}<br>mean sentiment %{{y:+.2f}}<br>mostly %{{text}}<extra></extra>",
            )
        )
    fig.add_hline(y=0, line=dict(color="#BBBBBB", width=1))
    fig.update_layout(**_layout(title, height=height, barmode="group"))
    fig.update_yaxes(range=[-1.15, 1.15], title_text="mean sentiment")
    return fig


def shares_figure(summary: dict, *, title: str = "Share of speaking time per emotion", height: int | None = None) -> go.Figure:
    """For each party (and overall), the share of its judged time in each emotion."""
    parties = dict((summary or {}).get("parties") or {})
    if summary.get("no_speech") or not parties:
        return _empty(title, "No speech to summarise.", height or 220)
    rows = list(parties.items())
    if len(rows) > 1:
        rows.append(("whole call", summary["overall"]))
    fig = go.Figure()
    labels = list(next(iter(parties.values()))["shares"])
    for lab in labels:
        fig.add_trace(
            go.Bar(
                y=[name for name, _ in rows],
                x=[p["shares"].get(lab, 0.0) for _, p in rows],
                name=lab,
                orientation="h",
                marker_color=EMOTION_COLORS.get(lab, "#888"),
                hovertemplate=f"{lab}: %{{x:.0%}}<extra></extra>",
            )
        )
    fig.update_layout(**_layout(title, height=height or 200 + 45 * len(rows), barmode="stack"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    return fig
