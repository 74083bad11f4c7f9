"""Voice-activity detection for calls: :mod:`ser_lib.vad`, re-exported.

The detector lives in the core (:mod:`ser_lib.vad`) because a single clip's prediction also asks
it whether there is any speech at all (:mod:`ser_lib.decisions`); the call engine imports it from
here as before.
"""

from __future__ import annotations

from ..vad import (  # noqa: F401 - re-exported
    DETECTORS,
    FRAME,
    EnergyScorer,
    FrameScorer,
    OpenRegion,
    SileroScorer,
    SpeechRegion,
    StreamingVAD,
    VADSettings,
    detect_speech,
)

__all__ = [
    "DETECTORS",
    "FRAME",
    "EnergyScorer",
    "FrameScorer",
    "OpenRegion",
    "SileroScorer",
    "SpeechRegion",
    "StreamingVAD",
    "VADSettings",
    "detect_speech",
]
