"""What the product says about a clip: an emotion, "uncertain", or "no speech found".

A classifier always names one of its emotions, even for a hum or a constant signal (the shipped
default called a constant signal "sad" with 98% confidence). Two checks come first:

- **No speech** (:func:`speech_check`): the voice-activity detector the call analysis uses
  (Silero VAD, :mod:`ser_lib.vad`) must find speech in the clip: a 32 ms frame scoring 0.5 or
  more, or, for a clip whose best frame scores from 0.12 to 0.5 (shouts, whispers), a spectral
  envelope that moves as speech does (:data:`SURE_SPEECH` explains the rule and its figures).
  Digital silence is no speech without running anything.
- **Uncertain** (:func:`is_uncertain`): a prediction whose calibrated top probability is below
  the bundle's threshold (``decision.uncertain_below`` in its card, chosen on validation speakers
  by :func:`ser_lib.calibration.choose_threshold`) is reported as "uncertain" instead of naming an
  emotion; its probabilities stay available. The threshold can be set per run
  (``--uncertain-below``, the page's slider) or for a whole installation with the environment
  variable :data:`ENV_UNCERTAIN_BELOW`; 0 switches it off.

:func:`verdict` turns the two into the word shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .config import SAMPLE_RATE
from .errors import ParameterError

#: What the product says instead of an emotion.
UNCERTAIN = "uncertain"
NO_SPEECH = "no speech found"
#: Environment variable overriding every bundle's ``decision.uncertain_below`` (a number from 0 to 1).
ENV_UNCERTAIN_BELOW = "SER_UNCERTAIN_BELOW"
#: The clip rule (:func:`speech_check`), from Silero VAD's frame scores (the call analysis's detector):
#: a clip with a frame scoring at least :data:`SURE_SPEECH` holds speech (Silero's own threshold); one
#: whose frames all score below :data:`NO_SPEECH_BELOW` holds none; in between, it holds speech only if
#: its spectral envelope moves as speech does (:func:`envelope_variation` at least
#: :data:`MIN_VARIATION`). Measured (benchmarks/bench_decisions.py): of the 3,064 held-out corpus clips
#: 7 have no frame at 0.5 (shouted or whispered; the lowest peaks at 0.17) and all of them vary by 6.2
#: or more; generated silence, DC, noise, tones, harmonic tones, chords, sweeps and melodies peak at
#: 0.31 at most, and those above 0.12 vary by 4.1 at most (an amplitude-modulated tone).
SURE_SPEECH = 0.5
NO_SPEECH_BELOW = 0.12
MIN_VARIATION = 5.0


def uncertain_below(card: dict | None = None, *, override: float | None = None) -> float:
    """The confidence below which a prediction is "uncertain": ``override``, else ``$SER_UNCERTAIN_BELOW``,
    else the card's ``decision.uncertain_below``, else 0 (never).

    Raises
    ------
    ParameterError
        When the override or the environment variable is not a number from 0 to 1.
    """
    if override is not None:
        return _probability(override, "uncertain_below")
    env = os.environ.get(ENV_UNCERTAIN_BELOW, "").strip()
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ParameterError(
                f"{ENV_UNCERTAIN_BELOW}={env!r} is not a number: expected a confidence from 0 to 1 (e.g. 0.5), or unset it"
            ) from None
        return _probability(value, ENV_UNCERTAIN_BELOW)
    decision = (card or {}).get("decision") or {}
    return float(decision.get("uncertain_below", 0.0))


def _probability(value: Any, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what}={value!r} must be a number from 0 to 1 (0: never uncertain)") from None
    if not 0.0 <= v <= 1.0:
        raise ParameterError(f"{what}={v} must be from 0 to 1 (0: never uncertain; 0.5 is the default's)")
    return v


def is_uncertain(confidence: float, threshold: float) -> bool:
    """Whether a calibrated top probability is below ``threshold`` (NaN: not judged, so not "uncertain")."""
    return bool(np.isfinite(confidence) and confidence < threshold)


def verdict(emotion: str | None, *, uncertain: bool = False, no_speech: bool = False) -> str:
    """The word shown for a prediction: :data:`NO_SPEECH`, :data:`UNCERTAIN` or the emotion."""
    if no_speech:
        return NO_SPEECH
    if uncertain:
        return UNCERTAIN
    return emotion or ""


@dataclass(frozen=True)
class SpeechCheck:
    """What the voice-activity detector found in one clip (:func:`speech_check`)."""

    found: bool
    peak_score: float
    speech_s: float
    seconds: float
    variation: float = float("nan")

    def message(self, name: str = "the clip") -> str:
        """Why there is no emotion, for a person (empty when speech was found)."""
        if self.found:
            return ""
        return (
            f"No speech found in {name}: the voice-activity detector heard no speech in its {self.seconds:.1f} s "
            f"(highest speech score {self.peak_score:.2f}); silence, a constant signal, noise or tones carry no "
            "emotion to judge."
        )


def frame_scores(y: np.ndarray, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Silero VAD's speech score of each 32 ms frame of ``y`` [shape=(n,)] at ``sr`` (resampled to 16 kHz)."""
    from .audio import resample
    from .vad import FRAME, VADSettings

    y = resample(np.asarray(y, dtype=np.float32).reshape(-1), orig_sr=sr, target_sr=SAMPLE_RATE)
    n = len(y) // FRAME
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = np.array(y[: n * FRAME].reshape(n, FRAME), dtype=np.float32, order="C", copy=True)
    return VADSettings().scorer().score(frames)


def envelope_variation(y: np.ndarray, *, sr: int = SAMPLE_RATE) -> float:
    """How much the spectral envelope of ``y`` moves: the mean standard deviation over time of MFCCs 1-12.

    Computed on 40 mel bands (32 ms frames every 10 ms at 16 kHz) over the frames within 40 dB of
    the loudest. Speech changes its formants every few tens of milliseconds (6 and more in the
    held-out clips); a tone, a chord, a hum or steady noise keeps one envelope (about 1-4).
    """
    import librosa

    from .audio import resample

    y = resample(np.asarray(y, dtype=np.float32).reshape(-1), orig_sr=sr, target_sr=SAMPLE_RATE)
    if len(y) < 512:
        return 0.0
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=512, hop_length=160, n_mels=40, fmax=8000)
    db = librosa.power_to_db(mel + 1e-10)
    loud = db.max(axis=0)
    keep = loud > loud.max() - 40.0
    if keep.sum() < 2:
        return 0.0
    mfcc = librosa.feature.mfcc(S=db[:, keep], n_mfcc=13)[1:]
    return float(mfcc.std(axis=1).mean())


def speech_check(y: np.ndarray, *, sr: int = SAMPLE_RATE) -> SpeechCheck:
    """Whether clip ``y`` [shape=(n,)] at ``sr`` holds speech (the rule at :data:`SURE_SPEECH`).

    ``speech_s`` counts the frames scoring at least 0.5 (the call analysis's threshold), for information.
    """
    from .vad import FRAME

    y = np.asarray(y, dtype=np.float32).reshape(-1)
    seconds = len(y) / sr if sr > 0 else 0.0
    if len(y) == 0 or not np.any(y):
        return SpeechCheck(False, 0.0, 0.0, seconds, 0.0)
    scores = frame_scores(y, sr=sr)
    peak = float(scores.max()) if len(scores) else 0.0
    speech_s = float(np.count_nonzero(scores >= 0.5) * FRAME / SAMPLE_RATE)
    if peak >= SURE_SPEECH:
        return SpeechCheck(True, peak, speech_s, seconds)
    if peak < NO_SPEECH_BELOW:
        return SpeechCheck(False, peak, speech_s, seconds)
    variation = envelope_variation(y, sr=sr)
    return SpeechCheck(variation >= MIN_VARIATION, peak, speech_s, seconds, variation)


#: Columns of :meth:`ModelBundle.predict_files` before the ``p_<label>`` columns (``error`` comes last).
PREDICTION_COLUMNS = ("path", "emotion", "confidence", "verdict", "uncertain", "no_speech", "valence", "arousal", "message")


@dataclass
class Prediction:
    """One clip's answer.

    ``emotion`` is the most probable emotion and ``confidence`` its (calibrated) probability;
    ``verdict`` is what the product says: the emotion, ``"uncertain"`` when ``uncertain`` (the
    confidence is below the bundle's threshold) or ``"no speech found"`` when ``no_speech`` (then
    ``message`` says why, and a silent clip has no probabilities). ``valence`` and ``arousal``
    (:mod:`ser_lib.affect`) are in [-1, 1].
    """

    emotion: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)
    uncertain: bool = False
    no_speech: bool = False
    valence: float = float("nan")
    arousal: float = float("nan")
    message: str = ""

    @property
    def verdict(self) -> str:
        """The emotion, ``"uncertain"`` or ``"no speech found"``."""
        return verdict(self.emotion, uncertain=self.uncertain, no_speech=self.no_speech)

    def with_threshold(self, uncertain_below: float) -> Prediction:
        """This prediction judged against another "uncertain" threshold (the probabilities unchanged)."""
        return replace(self, uncertain=(not self.no_speech) and is_uncertain(self.confidence, uncertain_below))

    def to_dict(self) -> dict:
        """Plain values: verdict, emotion, confidence, uncertain, no_speech, valence, arousal, probabilities, message."""
        return {
            "verdict": self.verdict,
            "emotion": self.emotion,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "no_speech": self.no_speech,
            "valence": self.valence,
            "arousal": self.arousal,
            "probabilities": dict(self.probabilities),
            "message": self.message,
        }
