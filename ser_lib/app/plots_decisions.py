"""Figure builders for calibration and affect: each takes plain values or a DataFrame and returns a
plotly figure; none calls Streamlit.

- :func:`reliability_diagram`: per confidence bin, how often the model was right against how sure
  it was, before and after calibration (:func:`ser_lib.calibration.reliability_table`).
- :func:`circumplex_figure`: one prediction's valence and arousal as a point on Russell's
  circumplex, with the emotions' own points (:data:`ser_lib.affect.CIRCUMPLEX`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..affect import CIRCUMPLEX
from .plots import EMOTION_COLORS, _figure, _need

#: Colour of "uncertain" wherever an emotion would be drawn.
UNCERTAIN_COLOR = "#BDBDBD"


def reliability_diagram(
    before: pd.DataFrame,
    after: pd.DataFrame | None = None,
    *,
    ece_before: float | None = None,
    ece_after: float | None = None,
    title: str = "Reliability: how often the model is right when it is this sure",
    height: int = 380,
) -> go.Figure:
    """Accuracy against mean confidence per bin (markers sized by clip count), before and after calibration.

    Parameters
    ----------
    before, after : pd.DataFrame
        :func:`ser_lib.calibration.reliability_table` (``confidence``, ``accuracy``, ``count``);
        ``after`` may be ``None`` (no calibration).
    ece_before, ece_after : float or None
        Written into the trace names.
    """
    fig = _figure(title, height=height, xaxis_title="confidence (top probability)", yaxis_title="accuracy")
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfectly calibrated",
            line=dict(color="#999999", dash="dot"),
            hoverinfo="skip",
        )
    )
    for frame, name, ece, colour in (
        (before, "before calibration", ece_before, "#D55E00"),
        (after, "after calibration", ece_after, "#0072B2"),
    ):
        if frame is None:
            continue
        _need(frame, ("confidence", "accuracy", "count"), "reliability_diagram")
        f = frame[frame["count"] > 0]
        total = max(int(f["count"].sum()), 1)
        label = f"{name} (ECE {ece:.3f})" if ece is not None else name
        fig.add_trace(
            go.Scatter(
                x=f["confidence"].tolist(),
                y=f["accuracy"].tolist(),
                mode="lines+markers",
                name=label,
                line=dict(color=colour),
                marker=dict(size=np.clip(6 + 40 * np.sqrt(f["count"] / total), 6, 30).tolist(), color=colour),
                customdata=f["count"].tolist(),
                hovertemplate="confidence %{x:.2f}<br>right %{y:.0%} of %{customdata} clips<extra>" + name + "</extra>",
            )
        )
    fig.update_xaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


def circumplex_figure(
    valence: float,
    arousal: float,
    *,
    labels: Sequence[str] | None = None,
    name: str = "this clip",
    title: str = "Valence and arousal",
    height: int = 320,
) -> go.Figure:
    """The prediction's point on Russell's circumplex, with each emotion's point and the unit circle.

    ``labels`` limits the emotions drawn (default: every one with a point).
    """
    fig = _figure(title, legend=False, height=height, xaxis_title="valence (unpleasant - pleasant)", yaxis_title="arousal")
    a = np.linspace(0, 2 * np.pi, 121)
    fig.add_trace(go.Scatter(x=np.cos(a), y=np.sin(a), mode="lines", line=dict(color="#DDDDDD"), hoverinfo="skip", name="circle"))
    shown = [e for e in (labels or CIRCUMPLEX) if e in CIRCUMPLEX]
    fig.add_trace(
        go.Scatter(
            x=[CIRCUMPLEX[e][0] for e in shown],
            y=[CIRCUMPLEX[e][1] for e in shown],
            mode="markers+text",
            text=shown,
            textposition="top center",
            marker=dict(size=9, color=[EMOTION_COLORS.get(e, "#888") for e in shown], opacity=0.7),
            name="emotions",
            hovertemplate="%{text}: valence %{x:+.2f}, arousal %{y:+.2f}<extra></extra>",
        )
    )
    if np.isfinite(valence) and np.isfinite(arousal):
        fig.add_trace(
            go.Scatter(
                x=[valence],
                y=[arousal],
                mode="markers",
                marker=dict(size=16, color="#222222", symbol="x"),
                name=name,
                hovertemplate=f"{name}: valence %{{x:+.2f}}, arousal %{{y:+.2f}}<extra></extra>",
            )
        )
    for v in (0,):
        fig.add_hline(y=v, line=dict(color="#EEEEEE", width=1))
        fig.add_vline(x=v, line=dict(color="#EEEEEE", width=1))
    fig.update_xaxes(range=[-1.25, 1.25], zeroline=False, tickvals=[-1, 0, 1])
    fig.update_yaxes(range=[-1.25, 1.25], zeroline=False, tickvals=[-1, 0, 1], scaleanchor="x", scaleratio=1)
    return fig
