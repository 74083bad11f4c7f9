"""Emotion over whole calls, offline from disk or live as the audio arrives.

One engine serves both: :class:`StreamingAnalyzer` takes audio chunks of any size (20 ms packets
from a phone switch, or 30 s blocks read from disk) and :func:`analyze_call` is that same analyser
fed from :func:`ser_lib.audio.iter_blocks`, so memory stays flat however long the call is, and the
offline and live results come from the same voice-activity detection, windowing, smoothing and
segmentation code. Per channel (one party per channel in a stereo recording; the mix in mono):

1. **Speech** - :class:`StreamingVAD` (Silero) finds speech regions; silence and hold time get no
   emotion.
2. **Windows** - inside each region, windows of ``window_s`` (3 s) every ``hop_s`` (1 s) from the
   region start, plus one window aligned to the region end when the grid leaves a tail. A region
   shorter than a window but at least ``min_window_s`` long is judged as one window; shorter
   speech (a "yes") is counted as speech but gets no emotion.
3. **Encoder frames** - for encoder bundles, the encoder runs once over each region's audio in
   consecutive chunks from the region start, one window (3 s) and then :attr:`TimelineSettings.chunk_s`
   (``smooth + 1`` hops, at least :data:`ser_lib.backbone.CHUNKS` ``.min_s``: 2 s) each, and every
   window is pooled from the frames it covers (:func:`ser_lib.features.window_frames`, the rule
   :meth:`ModelBundle.probabilities_from_frames` uses) instead of re-encoding overlapping windows.
   These short chunks cost no more encoder time per second than the front end's 10 s and resemble
   how the training clips (1.5-5 s, encoded alone) were encoded. Live, a window that ends inside
   the chunk in progress is scored from that chunk encoded so far (same start, so the same
   positions), and scored again from the complete chunk before its smoothed result is final: the
   chunk length is chosen so that it is always complete by then. Offline and live results
   therefore differ only where the smoothing median used a neighbour still scored from a chunk in
   progress.
4. **Smoothing** - each window's probabilities are replaced by the per-class median over itself
   and its ``smooth`` neighbours on each side within the region, renormalised; one stray window
   cannot flip a segment. A window is final once its right neighbour exists (one hop later).
5. **Segments** - :func:`segments_from_windows` gives each window the stretch of time nearest its
   centre, joins neighbours with the same emotion, and merges runs shorter than
   ``min_segment_s`` into the neighbour they resemble most.
6. **Summary** - :func:`summarize`: per party and overall, per quarter of the call, the trend and
   the strongest negative moments.

Sentiment is ``sum(p[e] * SENTIMENT_WEIGHTS[e])`` over the emotions (:data:`ser_lib.config.SENTIMENT_WEIGHTS`):
happy +1, calm and surprise +0.25, neutral 0, sad and fear -0.75, angry and disgust -1, so it
lies in [-1, 1].

Modules
-------
- :mod:`~ser_lib.calls.vad`: voice-activity detection (Silero, or an energy gate), streaming.
- :mod:`~ser_lib.calls.settings`: :class:`TimelineSettings`, the parties of a call, constants.
- :mod:`~ser_lib.calls.smoothing`: sentiment, median smoothing, segments from windows.
- :mod:`~ser_lib.calls.summary`: per party, per quarter, trend, worst moments.
- :mod:`~ser_lib.calls.result`: :class:`WindowResult`, :class:`CallAnalysis` (JSON, CSV), :func:`format_clock`.
- :mod:`~ser_lib.calls.track` and :mod:`~ser_lib.calls.engine`: one channel, and the
  :class:`StreamingAnalyzer` over all of them.
- :mod:`~ser_lib.calls.offline`: :func:`analyze_call` and :func:`replay` of a recording.
- :mod:`~ser_lib.calls.batch`: an archive of calls into the call store (and one CSV), resumably.
- :mod:`~ser_lib.calls.pool`: the engines that analyse an archive's calls (local processes), and
  :mod:`~ser_lib.calls.ray_engine` (Ray actors, the only module that imports Ray).

This package imports neither TensorFlow, Streamlit nor plotly, and never the training code: a
call analysis needs a trained bundle (run with ONNX Runtime) and nothing else.
"""

from .batch import (
    BATCH_COLUMNS,
    ArchivePlan,
    BatchPlan,
    BatchReport,
    batch_rows,
    find_calls,
    plan_archive,
    plan_batch,
    run_archive,
    run_batch,
)
from .engine import StreamingAnalyzer
from .offline import ReplayUpdate, analyze_call, check_complete, release_memory, replay
from .result import SEGMENT_COLUMNS, SPEECH_COLUMNS, WINDOW_COLUMNS, CallAnalysis, WindowResult, format_clock, windows_frame
from .settings import DEFAULT_ROLES, MONO_ROLE, TREND_STEP, WORST_BELOW, TimelineSettings, channel_roles, parse_roles
from .smoothing import segments_from_windows, sentiment, sentiment_weights, smooth_probabilities
from .summary import summarize, worst_moments
from .vad import SpeechRegion, StreamingVAD, VADSettings, detect_speech

__all__ = [
    "BATCH_COLUMNS",
    "DEFAULT_ROLES",
    "MONO_ROLE",
    "SEGMENT_COLUMNS",
    "SPEECH_COLUMNS",
    "TREND_STEP",
    "WINDOW_COLUMNS",
    "WORST_BELOW",
    "ArchivePlan",
    "BatchPlan",
    "BatchReport",
    "CallAnalysis",
    "ReplayUpdate",
    "SpeechRegion",
    "StreamingAnalyzer",
    "StreamingVAD",
    "TimelineSettings",
    "VADSettings",
    "WindowResult",
    "analyze_call",
    "batch_rows",
    "channel_roles",
    "check_complete",
    "detect_speech",
    "find_calls",
    "format_clock",
    "parse_roles",
    "plan_archive",
    "plan_batch",
    "release_memory",
    "replay",
    "run_archive",
    "run_batch",
    "segments_from_windows",
    "sentiment",
    "sentiment_weights",
    "smooth_probabilities",
    "summarize",
    "windows_frame",
    "worst_moments",
]
