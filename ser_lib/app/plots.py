"""Figure builders: each takes a DataFrame and returns a figure; none calls Streamlit.

Interactive figures are plotly (``plotly.graph_objects.Figure``); :func:`confusion_matrix_static`
returns a matplotlib figure (seaborn heatmap) for exported reports. Emotions keep one colour
everywhere (:data:`EMOTION_COLORS`) so a reader can follow "angry" from chart to chart.
The frames come from :mod:`ser_lib.dataset_view`, :mod:`ser_lib.model_view`,
:mod:`ser_lib.evaluation` and :mod:`ser_lib.jobs`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import EMOTIONS
from ..errors import ParameterError

#: One colour per emotion (colour-blind-friendly, after Okabe & Ito, plus two neutrals).
EMOTION_COLORS: dict[str, str] = {
    "neutral": "#9E9E9E",
    "calm": "#56B4E9",
    "happy": "#E69F00",
    "sad": "#0072B2",
    "angry": "#D55E00",
    "fear": "#CC79A7",
    "disgust": "#009E73",
    "surprise": "#F0E442",
}
CORPUS_COLORS: dict[str, str] = {"RAVDESS": "#4C78A8", "TESS": "#F58518", "SAVEE": "#54A24B", "CREMA-D": "#B279A2"}
GENDER_COLORS: dict[str, str] = {"female": "#E45756", "male": "#4C78A8", "unknown": "#BAB0AC"}
METRIC_LABELS: dict[str, str] = {"WA": "WA (accuracy)", "UA": "UA (balanced accuracy)", "macro_f1": "macro-F1"}

def _layout(title: str | None, *, legend: bool = True, subplots: bool = False, **extra) -> dict:
    """The house layout: title top left; a horizontal legend between the title and the plot
    (above the subplot titles when there are some), so neither overlaps the other."""
    top = 40 + (34 if legend else 0) + (18 if subplots else 0)
    layout = dict(
        title=dict(
            text=title, x=0, xanchor="left", y=1.0, yanchor="top", yref="container", pad=dict(t=10, l=4), font=dict(size=15)
        ),
        margin=dict(l=10, r=10, t=top, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.08 if subplots else 1.0, x=0, traceorder="normal"),
        showlegend=legend,
    )
    layout.update(extra)
    return layout


def _figure(title: str | None = None, *, legend: bool = True, **layout) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**_layout(title, legend=legend, **layout))
    return fig


def _need(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ParameterError(f"{what} needs columns {list(columns)}; the frame lacks {missing} (has {list(frame.columns)})")


def _empty(title: str, message: str) -> go.Figure:
    fig = _figure(title, legend=False)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# --- datasets ------------------------------------------------------------------------------------


def class_distribution(counts: pd.DataFrame, *, normalise: bool = False, title: str | None = None) -> go.Figure:
    """Stacked bars of files per emotion for each corpus (and ``all corpora``).

    Parameters
    ----------
    counts : pd.DataFrame
        Rows (corpus, emotion, files, share) from :func:`ser_lib.dataset_view.counts_long`.
    normalise : bool
        Show each corpus's emotion shares (bars of height 1) instead of file counts.
    """
    _need(counts, ("corpus", "emotion", "files", "share"), "class_distribution")
    title = title or ("Emotion shares per corpus" if normalise else "Files per corpus and emotion")
    if counts.empty:
        return _empty(title, "No files")
    value = "share" if normalise else "files"
    fig = _figure(title, barmode="stack", yaxis_title="share of files" if normalise else "files", xaxis_title=None)
    corpora = list(dict.fromkeys(counts["corpus"]))
    for emotion in [e for e in EMOTIONS if e in set(counts["emotion"])]:
        part = counts[counts["emotion"] == emotion].set_index("corpus").reindex(corpora)
        fig.add_bar(
            x=corpora,
            y=part[value].fillna(0),
            name=emotion,
            marker_color=EMOTION_COLORS.get(emotion),
            customdata=np.stack([part["files"].fillna(0), part["share"].fillna(0)], axis=1),
            hovertemplate=f"{emotion}<br>%{{x}}: %{{customdata[0]:,}} files (%{{customdata[1]:.1%}})<extra></extra>",
        )
    if normalise:
        fig.update_yaxes(tickformat=".0%", range=[0, 1])
    return fig


def speakers_chart(speakers: pd.DataFrame, *, title: str = "Speakers per corpus and gender") -> go.Figure:
    """Bars of speakers per corpus, stacked by gender; hover shows the files too.

    ``speakers``: rows (corpus, gender, speakers, files) from :func:`ser_lib.dataset_view.speakers_by_gender`.
    """
    _need(speakers, ("corpus", "gender", "speakers", "files"), "speakers_chart")
    if speakers.empty:
        return _empty(title, "No files")
    fig = _figure(title, barmode="stack", yaxis_title="speakers")
    for gender, part in speakers.groupby("gender", sort=True):
        fig.add_bar(
            x=part["corpus"],
            y=part["speakers"],
            name=gender,
            marker_color=GENDER_COLORS.get(gender, "#888"),
            customdata=part[["files"]].to_numpy(),
            hovertemplate=f"{gender}<br>%{{x}}: %{{y}} speakers, %{{customdata[0]:,}} files<extra></extra>",
        )
    most = int(speakers.groupby("corpus")["speakers"].sum().max())
    fig.update_yaxes(dtick=1 if most <= 10 else None, rangemode="tozero")
    return fig


def duration_histogram(hist: pd.DataFrame, *, title: str = "Clip durations") -> go.Figure:
    """Overlaid per-corpus histograms of clip duration.

    ``hist``: rows (corpus, start, end, files) from :func:`ser_lib.dataset_view.duration_histogram`.
    """
    _need(hist, ("corpus", "start", "end", "files"), "duration_histogram")
    if hist.empty:
        return _empty(title, "No durations")
    fig = _figure(title, barmode="overlay", xaxis_title="seconds", yaxis_title="files", bargap=0)
    for corpus, part in hist.groupby("corpus", sort=True):
        fig.add_bar(
            x=(part["start"] + part["end"]) / 2,
            y=part["files"],
            width=(part["end"] - part["start"]),
            name=corpus,
            opacity=0.6,
            marker_color=CORPUS_COLORS.get(corpus),
            customdata=part[["start", "end"]].to_numpy(),
            hovertemplate=f"{corpus}<br>%{{customdata[0]:.2f}}-%{{customdata[1]:.2f}} s: %{{y}} files<extra></extra>",
        )
    return fig


# --- one clip -------------------------------------------------------------------------------------


def waveform(
    frame: pd.DataFrame, *, title: str = "Waveform", color: str = "#4C78A8", height: int = 220, peak: float | None = None
) -> go.Figure:
    """The min/max envelope from :func:`ser_lib.dataset_view.waveform_frame` as a filled band.

    ``peak`` fixes the amplitude axis to ``[-peak, peak]`` (a little more), so two waveforms drawn
    side by side (before and after an augmentation) share one scale; default: this clip's own peak.
    """
    _need(frame, ("time", "min", "max"), "waveform")
    fig = _figure(title, legend=False, height=height, xaxis_title="seconds", yaxis_title="amplitude")
    fig.add_scatter(x=frame["time"], y=frame["max"], mode="lines", line=dict(width=0.8, color=color), hoverinfo="skip")
    fig.add_scatter(
        x=frame["time"],
        y=frame["min"],
        mode="lines",
        line=dict(width=0.8, color=color),
        fill="tonexty",
        fillcolor=color,
        hovertemplate="%{x:.2f} s<extra></extra>",
    )
    if peak is None:
        peak = float(np.nanmax(np.abs(frame[["min", "max"]].to_numpy()))) if len(frame) else 1.0
    lim = max(float(peak), 1e-3) * 1.05
    fig.update_yaxes(range=[-lim, lim], zeroline=True)
    return fig


def spectrogram(frame: pd.DataFrame, *, title: str = "Spectrogram (log frequency)", height: int = 300) -> go.Figure:
    """A log-frequency spectrogram heatmap.

    ``frame``: index = frequency (Hz, ascending), columns = time (s), values = dB, from
    :func:`ser_lib.dataset_view.spectrogram_frame`.
    """
    if frame.empty:
        return _empty(title, "No audio")
    fig = _figure(title, legend=False, height=height, xaxis_title="seconds", yaxis_title="frequency")
    fig.add_heatmap(
        z=frame.to_numpy(),
        x=np.asarray(frame.columns, dtype=float),
        y=np.asarray(frame.index, dtype=float),
        colorscale="Viridis",  # not Magma: Streamlit draws its near-black low end as pink
        zmin=float(np.nanmin(frame.to_numpy())),
        zmax=0.0,
        colorbar=dict(title="dB", thickness=10),
        hovertemplate="%{x:.2f} s, %{y:.0f} Hz: %{z:.0f} dB<extra></extra>",
    )
    lo, hi = float(frame.index.min()), float(frame.index.max())
    ticks = [f for f in FREQUENCY_TICKS if lo <= f <= hi * 1.001]
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[frequency_label(f) for f in ticks], minor=dict(showgrid=False))
    return fig


#: Where the spectrogram's log-frequency axis is labelled (Hz).
FREQUENCY_TICKS: tuple[int, ...] = (50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000, 24000)


def frequency_label(hz: float) -> str:
    """``500`` -> ``"500 Hz"``, ``2000`` -> ``"2 kHz"``: how frequency axes are labelled."""
    return f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz:g} Hz"


#: Chroma bins in the notebook's features, C first (librosa's order).
PITCH_CLASSES: tuple[str, ...] = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B")
#: Axis titles of a feature matrix, by front end kind.
MATRIX_AXES: dict[str, tuple[str, str]] = {
    "encoder": ("encoder frame (20 ms each)", "encoder dimension"),
    "logmel": ("frame", "mel band (low to high frequency)"),
}


def feature_values(frame: pd.DataFrame, *, title: str = "What the model sees", kind: str | None = None) -> go.Figure:
    """The model's input for one clip, with every axis labelled.

    ``frame`` from :func:`ser_lib.dataset_view.feature_frame`: for the notebook's 162 features
    (columns feature, group, index, value) one bar panel per group (zero-crossing rate, the twelve
    chroma pitch classes and RMS energy; MFCC 1-20; 128 mel bands); for a matrix (log-mel or
    encoder frames, ``kind`` ``"logmel"`` or ``"encoder"``) a heatmap of dimension by frame.
    """
    if {"feature", "group", "value"} <= set(frame.columns):
        panels = [
            ("Zero-crossing rate, chroma (energy per pitch class), RMS energy", ["zcr", "chroma", "rms"], "value"),
            ("MFCC (timbre): coefficients 1-20", ["mfcc"], "value"),
            ("Mel spectrum: mean power per band, low to high frequency", ["mel"], "power (log)"),
        ]
        fig = make_subplots(rows=3, cols=1, subplot_titles=[p[0] for p in panels], vertical_spacing=0.16)
        palette = {"zcr": "#72B7B2", "rms": "#E45756", "chroma": "#F58518", "mfcc": "#4C78A8", "mel": "#54A24B"}
        order = {"zcr": 0, "chroma": 1, "rms": 2, "mfcc": 0, "mel": 0}
        for row, (_, groups, unit) in enumerate(panels, start=1):
            part = frame[frame["group"].isin(groups)].copy()
            part["_o"] = part["group"].map(order)
            part = part.sort_values(["_o", "index"], kind="stable")
            if row == 1:
                x = [
                    PITCH_CLASSES[int(i) - 1] if g == "chroma" else {"zcr": "ZCR", "rms": "RMS"}[g]
                    for g, i in zip(part["group"], part["index"], strict=True)
                ]
            else:
                x = part["index"].astype(int).tolist()
            fig.add_bar(
                x=x,
                y=part["value"],
                marker_color=[palette.get(g, "#888") for g in part["group"]],
                showlegend=False,
                customdata=part[["feature"]].to_numpy(),
                hovertemplate="%{customdata[0]}: %{y:.4g}<extra></extra>",
                row=row,
                col=1,
            )
            fig.update_yaxes(title_text=unit, row=row, col=1)
        fig.update_xaxes(type="category", tickangle=0, row=1, col=1)
        fig.update_xaxes(title_text="coefficient", dtick=1, row=2, col=1)
        fig.update_xaxes(title_text="mel band", dtick=16, tick0=1, row=3, col=1)
        fig.update_yaxes(type="log", row=3, col=1)  # a few low bands hold most of the power: a log axis shows the rest
        fig.update_layout(**_layout(title, legend=False, subplots=True, height=600))
        return fig
    if frame.empty:
        return _empty(title, "No features")
    x_title, y_title = MATRIX_AXES.get(kind or "", ("frame", frame.index.name or "dimension"))
    fig = _figure(title, legend=False, height=320, xaxis_title=x_title, yaxis_title=y_title)
    fig.add_heatmap(
        z=frame.to_numpy(),
        colorscale="Viridis",
        colorbar=dict(thickness=10, title="value"),
        hovertemplate=f"{x_title} %{{x}}, {y_title} %{{y}}: %{{z:.3g}}<extra></extra>",
    )
    return fig


# --- models ----------------------------------------------------------------------------------------


def probabilities(probs: pd.DataFrame, *, title: str = "Probabilities", height: int = 300) -> go.Figure:
    """Horizontal bars of class probabilities, most likely on top.

    ``probs``: rows (emotion, probability), e.g. :func:`ser_lib.model_view.probabilities_frame`.
    """
    _need(probs, ("emotion", "probability"), "probabilities")
    p = probs.sort_values("probability", ascending=True, kind="stable")
    fig = _figure(title, legend=False, height=height, xaxis_title="probability")
    fig.add_bar(
        x=p["probability"],
        y=p["emotion"],
        orientation="h",
        marker_color=[EMOTION_COLORS.get(e, "#888") for e in p["emotion"]],
        text=[f"{v:.0%}" for v in p["probability"]],
        textposition="outside",
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    )
    fig.update_xaxes(range=[0, 1.12], tickformat=".0%")
    return fig


def confusion_matrix(confusion: pd.DataFrame, *, normalised: bool = False, title: str | None = None) -> go.Figure:
    """Heatmap of a confusion matrix (rows: true emotion, columns: predicted), with the values written in.

    ``confusion``: :attr:`EvaluationResult.confusion` or :meth:`EvaluationResult.confusion_normalised`.
    """
    title = title or ("Confusion matrix (% of each true emotion)" if normalised else "Confusion matrix (files)")
    if confusion.empty:
        return _empty(title, "No predictions")
    z = confusion.to_numpy(dtype=float)
    text = [[f"{100 * v:.0f}%" if normalised else f"{int(v)}" for v in row] for row in z]
    fig = _figure(title, legend=False, height=max(320, 48 * len(confusion) + 120), xaxis_title="predicted", yaxis_title="true")
    fig.add_heatmap(
        z=z,
        x=list(confusion.columns),
        y=list(confusion.index),
        text=text,
        texttemplate="%{text}",
        colorscale="Blues",
        zmin=0,
        zmax=1 if normalised else None,
        colorbar=dict(thickness=10),
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="bottom")
    return fig


def confusion_matrix_static(confusion: pd.DataFrame, *, normalised: bool = False, title: str | None = None):
    """The same confusion matrix as a static matplotlib figure (seaborn heatmap), for reports.

    Uses :class:`matplotlib.figure.Figure` directly (no pyplot state), so it is safe in a server.
    Save it with ``fig.savefig(path)``.
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    title = title or ("Confusion matrix (row-normalised)" if normalised else "Confusion matrix (files)")
    n = max(len(confusion), 1)
    fig = Figure(figsize=(1.0 + 0.75 * n, 0.6 + 0.65 * n), layout="constrained")
    ax = fig.add_subplot()
    sns.heatmap(
        confusion.astype(float),
        annot=True,
        fmt=".2f" if normalised else ".0f",
        cmap="Blues",
        vmin=0,
        vmax=1 if normalised else None,
        cbar=False,
        square=True,
        ax=ax,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig


def training_curves(history: pd.DataFrame, *, title: str = "Training curves") -> go.Figure:
    """Loss and accuracy per epoch, training and validation, side by side.

    ``history``: one row per epoch with ``epoch`` (column or index) and any of ``loss``,
    ``val_loss``, ``accuracy``, ``val_accuracy`` (Keras' history, or the live epoch events).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss", "accuracy"], horizontal_spacing=0.1)
    fig.update_layout(**_layout(title, subplots=True, height=340))
    if history.empty:
        fig.add_annotation(text="Waiting for the first epoch", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    h = history.reset_index() if "epoch" not in history else history
    x = h["epoch"] if "epoch" in h else np.arange(1, len(h) + 1)
    styles = {"": dict(color="#4C78A8"), "val_": dict(color="#F58518", dash="dash")}
    for col, metric in ((1, "loss"), (2, "accuracy")):
        for prefix, line in styles.items():
            key = prefix + metric
            if key in h:
                fig.add_scatter(
                    x=x,
                    y=h[key],
                    mode="lines+markers",
                    name="validation" if prefix else "training",
                    line=line,
                    legendgroup=prefix or "train",
                    showlegend=col == 1,
                    row=1,
                    col=col,
                )
    if not any(c.startswith("val_") for c in h.columns):
        fig.add_annotation(
            text="No validation curve: the split left no speaker for validation",
            showarrow=False,
            x=1.0,
            xanchor="right",
            y=1.0,
            yanchor="bottom",
            xref="paper",
            yref="paper",
            font=dict(size=12, color="#666666"),
        )
    fig.update_xaxes(title_text="epoch", dtick=max(1, len(h) // 10))
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    return fig


def metrics_by_corpus(summary: pd.DataFrame, *, title: str = "WA, UA and macro-F1 per corpus") -> go.Figure:
    """Grouped bars of WA, UA and macro-F1 for each corpus and overall.

    ``summary``: :meth:`EvaluationResult.summary_table` (index = corpus, columns WA, UA, macro_f1, n).
    """
    _need(summary, ("WA", "UA", "macro_f1"), "metrics_by_corpus")
    fig = _figure(title, barmode="group", yaxis_title="score", height=340)
    palette = {"WA": "#4C78A8", "UA": "#F58518", "macro_f1": "#54A24B"}
    for metric in ("WA", "UA", "macro_f1"):
        fig.add_bar(
            x=[str(i) for i in summary.index],
            y=summary[metric].astype(float),
            name=METRIC_LABELS[metric],
            marker_color=palette[metric],
            hovertemplate=f"%{{x}}: {METRIC_LABELS[metric]} %{{y:.1%}}<extra></extra>",
        )
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def model_comparison(results: pd.DataFrame, *, metric: str = "UA", title: str | None = None) -> go.Figure:
    """Bars of one metric per model and corpus, clean beside telephone.

    ``results``: rows (model, protocol, condition, corpus, WA, UA, macro_f1), e.g. from
    :func:`ser_lib.model_view.load_benchmarks`.
    """
    _need(results, ("model", "corpus", metric), "model_comparison")
    title = title or f"{METRIC_LABELS.get(metric, metric)} by model and corpus"
    if results.empty:
        return _empty(title, "No benchmark rows")
    df = results.copy()
    df["condition"] = df.get("condition", pd.Series("clean", index=df.index)).fillna("clean").replace("", "clean")
    if "protocol" in df and df["protocol"].nunique() > 1:
        df["model"] = df["model"].astype(str) + " · " + df["protocol"].astype(str)
    corpora = sorted(dict.fromkeys(df["corpus"]), key=lambda c: (c in ("overall", "all"), c))  # overall last
    fig = make_subplots(rows=1, cols=len(corpora), subplot_titles=corpora, shared_yaxes=True, horizontal_spacing=0.03)
    palette = {"clean": "#4C78A8", "telephone": "#E45756"}
    seen = set()
    for c, corpus in enumerate(corpora, start=1):
        part = df[df["corpus"] == corpus]
        for condition, rows in part.groupby("condition", sort=True):
            fig.add_bar(
                x=rows["model"],
                y=rows[metric],
                name=condition,
                marker_color=palette.get(condition, "#888"),
                legendgroup=condition,
                showlegend=condition not in seen,
                hovertemplate=f"%{{x}} ({condition}, {corpus}): %{{y:.1%}}<extra></extra>",
                row=1,
                col=c,
            )
            seen.add(condition)
    fig.update_layout(**_layout(title, subplots=True, barmode="group", height=440))
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_xaxes(tickangle=-35)
    return fig


def figure_png(fig, *, dpi: int = 150) -> bytes:
    """A matplotlib figure (e.g. :func:`confusion_matrix_static`) as PNG bytes, for a download."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def cross_corpus_chart(table: pd.DataFrame) -> go.Figure:
    """Four-class UA per corpus, one bar per model, a panel per protocol (held-out speakers, corpus left out,
    corpus unseen): how a model holds up beyond the speakers and corpora it learned from.

    ``table``: rows (model, corpus, protocol, UA), e.g. :func:`ser_lib.app.evaluation_view.cross_corpus_table`.
    """
    title = "Four classes (angry, happy, neutral, sad): UA per corpus"
    _need(table, ("model", "corpus", "protocol", "UA"), "cross_corpus_chart")
    if table.empty:
        return _empty(title, "No model has cross-corpus figures")
    protocols = list(dict.fromkeys(table["protocol"]))
    fig = make_subplots(rows=1, cols=len(protocols), subplot_titles=protocols, shared_yaxes=True, horizontal_spacing=0.04)
    models = list(dict.fromkeys(table["model"]))
    colours = dict(zip(models, ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756"] * 4, strict=False))
    for c, protocol in enumerate(protocols, start=1):
        part = table[table["protocol"] == protocol]
        for model in models:
            rows = part[part["model"] == model]
            if rows.empty:
                continue
            fig.add_bar(
                x=rows["corpus"],
                y=rows["UA"],
                name=model,
                marker_color=colours[model],
                legendgroup=model,
                showlegend=c == 1 or model not in set(table.loc[table["protocol"].isin(protocols[: c - 1]), "model"]),
                hovertemplate=f"{model}, %{{x}} ({protocol}): %{{y:.1%}}<extra></extra>",
                row=1,
                col=c,
            )
    fig.add_hline(y=0.25, line_dash="dot", line_color="#999", annotation_text="chance (4 classes)")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(title=title, barmode="group", height=380, margin=dict(t=70, b=40))
    return fig
