"""Plot builders: each takes a frame and returns a figure whose data says what the frame said."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from ser_lib.app import dataset_view as dv
from ser_lib.app import plots
from ser_lib.app.model_view import probabilities_frame
from ser_lib.bundle import Prediction
from ser_lib.config import EMOTIONS
from ser_lib.corpora import emotion_counts
from ser_lib.errors import ParameterError


@pytest.fixture
def manifest() -> pd.DataFrame:
    rows = []
    for corpus, speakers, emotions, gender in (
        ("RAVDESS", ["RAVDESS_01", "RAVDESS_02"], EMOTIONS, None),
        ("TESS", ["TESS_OAF"], ("angry", "sad", "surprise"), "female"),
    ):
        for s, spk in enumerate(speakers):
            for k, emo in enumerate(emotions):
                rows.append(
                    {
                        "path": f"/data/{corpus}/{spk}_{emo}.wav",
                        "corpus": corpus,
                        "speaker": spk,
                        "gender": gender or ("male" if s == 0 else "female"),
                        "emotion": emo,
                        "duration": 1.0 + 0.25 * k,
                    }
                )
    return pd.DataFrame(rows)


def test_class_distribution_stacks_files_per_corpus(manifest):
    counts = dv.counts_long(emotion_counts(manifest))
    fig = plots.class_distribution(counts)
    assert isinstance(fig, go.Figure) and fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == list(EMOTIONS)  # canonical order, one colour each
    assert fig.data[EMOTIONS.index("angry")].marker.color == plots.EMOTION_COLORS["angry"]
    totals = np.sum([np.asarray(t.y, float) for t in fig.data], axis=0)
    assert dict(zip(fig.data[0].x, totals, strict=True)) == {"RAVDESS": 16, "TESS": 3, "all corpora": 19}


def test_class_distribution_normalised_bars_sum_to_one(manifest):
    fig = plots.class_distribution(dv.counts_long(emotion_counts(manifest)), normalise=True)
    totals = np.sum([np.asarray(t.y, float) for t in fig.data], axis=0)
    assert np.allclose(totals, 1.0)
    assert tuple(fig.layout.yaxis.range) == (0, 1)


def test_builders_name_missing_columns():
    with pytest.raises(ParameterError, match=r"class_distribution needs columns .*lacks \['share'\]"):
        plots.class_distribution(pd.DataFrame(columns=["corpus", "emotion", "files"]))
    with pytest.raises(ParameterError, match="waveform needs"):
        plots.waveform(pd.DataFrame({"t": [0.0]}))


def test_empty_frames_give_a_labelled_empty_figure():
    fig = plots.class_distribution(pd.DataFrame(columns=["corpus", "emotion", "files", "share"]))
    assert not fig.data and fig.layout.annotations[0].text == "No files"


def test_speakers_chart_one_trace_per_gender(manifest):
    fig = plots.speakers_chart(dv.speakers_by_gender(manifest))
    by_gender = {t.name: dict(zip(t.x, t.y, strict=True)) for t in fig.data}
    assert by_gender == {"female": {"RAVDESS": 1, "TESS": 1}, "male": {"RAVDESS": 1}}


def test_duration_histogram_counts_every_clip(manifest):
    fig = plots.duration_histogram(dv.duration_histogram(manifest, bins=10))
    assert sum(np.sum(t.y) for t in fig.data) == len(manifest)
    assert {t.name for t in fig.data} == {"RAVDESS", "TESS"}


def test_waveform_keeps_peaks():
    sr = 16_000
    y = np.zeros(sr * 10, np.float32)
    y[123_457] = 0.9  # one click in ten seconds
    frame = dv.waveform_frame(y, sr=sr, points=500)
    fig = plots.waveform(frame)
    assert len(fig.data[0].x) <= 500
    assert np.max(fig.data[0].y) == pytest.approx(0.9)
    assert fig.data[1].fill == "tonexty"
    assert fig.layout.yaxis.range == pytest.approx((-0.945, 0.945))  # its own peak, a little room


def test_waveforms_side_by_side_can_share_one_scale():
    quiet = dv.waveform_frame(np.full(1600, 0.1, np.float32), sr=16_000)
    loud = dv.waveform_frame(np.full(1600, 0.8, np.float32), sr=16_000)
    peak = dv.shared_peak(np.full(1600, 0.1, np.float32), np.full(1600, -0.8, np.float32))
    assert peak == pytest.approx(0.8)
    ranges = [plots.waveform(f, peak=peak).layout.yaxis.range for f in (quiet, loud)]
    assert ranges[0] == ranges[1] == pytest.approx((-0.84, 0.84))


def test_spectrogram_is_log_frequency_and_finds_the_tone():
    sr = 16_000
    t = np.arange(sr) / sr
    frame = dv.spectrogram_frame((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), sr=sr)
    fig = plots.spectrogram(frame)
    assert fig.layout.yaxis.type == "log"
    z = np.asarray(fig.data[0].z)
    peak = np.asarray(fig.data[0].y)[np.argmax(z.mean(axis=1))]
    assert 900 < peak < 1100
    # the frequency axis reads in Hz and kHz (plotly's own log ticks read "5, 2, 1000, 5, 2, 100")
    assert list(fig.layout.yaxis.tickvals) == [50, 100, 200, 500, 1000, 2000, 4000, 8000]
    assert list(fig.layout.yaxis.ticktext) == ["50 Hz", "100 Hz", "200 Hz", "500 Hz", "1 kHz", "2 kHz", "4 kHz", "8 kHz"]
    assert fig.layout.yaxis.title.text == "frequency"
    assert plots.frequency_label(22050) == "22.05 kHz" and plots.frequency_label(60) == "60 Hz"


def test_feature_values_seed_and_matrix():
    frame = dv.feature_frame(np.arange(162, dtype=np.float32), kind="notebook162")
    fig = plots.feature_values(frame)
    assert [len(t.x) for t in fig.data] == [14, 20, 128]
    # every bar labelled: ZCR, the twelve pitch classes, RMS; MFCC and mel bands numbered from 1
    assert list(fig.data[0].x) == ["ZCR", *plots.PITCH_CLASSES, "RMS"]
    assert list(fig.data[0].y) == [0, *range(1, 13), 33]  # the notebook's order: zcr, chroma 1-12, mfcc 1-20, rms, mel
    assert list(fig.data[1].x) == list(range(1, 21)) and list(fig.data[2].x)[:2] == [1, 2]
    assert [c[0] for c in fig.data[2].customdata[:2]] == ["mel_1", "mel_2"]  # hover names the feature
    assert [a.text for a in fig.layout.annotations][1] == "MFCC (timbre): coefficients 1-20"
    assert fig.layout.xaxis2.title.text == "coefficient" and fig.layout.xaxis3.title.text == "mel band"
    assert fig.layout.xaxis.showticklabels is not False
    heat = plots.feature_values(dv.feature_frame(np.ones((50, 64), np.float32), kind="logmel"), kind="logmel")
    assert np.asarray(heat.data[0].z).shape == (64, 50)
    assert heat.layout.yaxis.title.text == "mel band (low to high frequency)" and heat.layout.xaxis.title.text == "frame"
    enc = plots.feature_values(dv.feature_frame(np.ones((50, 512), np.float32), kind="encoder"), kind="encoder")
    assert enc.layout.xaxis.title.text == "encoder frame (20 ms each)"


def test_probabilities_most_likely_on_top():
    p = Prediction("sad", 0.6, {"happy": 0.1, "sad": 0.6, "angry": 0.3})
    fig = plots.probabilities(probabilities_frame(p))
    bar = fig.data[0]
    assert list(bar.y) == ["happy", "angry", "sad"]  # plotly draws the last bar at the top
    assert list(bar.text) == ["10%", "30%", "60%"]
    assert bar.marker.color[-1] == plots.EMOTION_COLORS["sad"]


@pytest.fixture
def confusion() -> pd.DataFrame:
    labels = ["angry", "happy", "sad"]
    return pd.DataFrame([[8, 2, 0], [1, 5, 4], [0, 0, 10]], index=labels, columns=labels)


def test_confusion_matrix_counts_and_normalised(confusion):
    fig = plots.confusion_matrix(confusion)
    heat = fig.data[0]
    assert heat.text[1] == ["1", "5", "4"] and list(heat.x) == ["angry", "happy", "sad"]
    assert fig.layout.yaxis.autorange == "reversed"
    norm = confusion.div(confusion.sum(axis=1), axis=0)
    fig = plots.confusion_matrix(norm, normalised=True)
    assert fig.data[0].text[1] == ["10%", "50%", "40%"] and fig.data[0].zmax == 1  # scores read as percentages
    assert fig.layout.title.text == "Confusion matrix (% of each true emotion)"


def test_confusion_matrix_static_for_reports(confusion):
    from matplotlib.figure import Figure

    fig = plots.confusion_matrix_static(confusion)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in confusion.to_numpy().ravel())
    assert plots.figure_png(fig, dpi=50).startswith(b"\x89PNG")


def test_training_curves():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [2.0, 1.5, 1.2],
            "val_loss": [2.1, 1.7, 1.6],
            "accuracy": [0.2, 0.4, 0.5],
            "val_accuracy": [0.2, 0.3, 0.35],
        }
    )
    fig = plots.training_curves(history)
    assert [(t.name, t.xaxis) for t in fig.data] == [
        ("training", "x"),
        ("validation", "x"),
        ("training", "x2"),
        ("validation", "x2"),
    ]
    assert list(fig.data[3].y) == [0.2, 0.3, 0.35]
    assert plots.training_curves(pd.DataFrame()).layout.annotations[-1].text == "Waiting for the first epoch"
    assert all("No validation" not in a.text for a in fig.layout.annotations)
    alone = plots.training_curves(history[["epoch", "loss", "accuracy"]])
    assert [t.name for t in alone.data] == ["training", "training"]
    assert alone.layout.annotations[-1].text == "No validation curve: the split left no speaker for validation"


def test_metrics_by_corpus_and_model_comparison():
    summary = pd.DataFrame(
        {"WA": [0.5, 0.6], "UA": [0.4, 0.55], "macro_f1": [0.35, 0.5], "n": [10, 20]}, index=["TESS", "overall"]
    )
    fig = plots.metrics_by_corpus(summary)
    assert [t.name for t in fig.data] == [plots.METRIC_LABELS[m] for m in ("WA", "UA", "macro_f1")]
    rows = pd.DataFrame(
        [
            {"model": m, "protocol": "speaker", "condition": c, "corpus": k, "WA": 0.5, "UA": u, "macro_f1": 0.4}
            for m, u in (("seed", 0.3), ("encoder", 0.6))
            for c in ("clean", "telephone")
            for k in ("RAVDESS", "overall")
        ]
    )
    fig = plots.model_comparison(rows)
    assert [a.text for a in fig.layout.annotations] == ["RAVDESS", "overall"]  # overall last
    assert [t.showlegend for t in fig.data] == [True, True, False, False]  # one legend entry per condition
    assert list(fig.data[0].y) == [0.3, 0.6]
    assert fig.layout.yaxis.tickformat == ".0%" and "%{y:.1%}" in fig.data[0].hovertemplate  # scores as percentages
