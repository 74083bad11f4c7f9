"""Arousal and valence from the class probabilities, on Russell's circumplex of affect.

A call supervisor reads "agitated and negative" faster than eight probabilities. Russell (1980,
"A circumplex model of affect", *Journal of Personality and Social Psychology* 39(6), 1161-1178)
showed that affect words fall on a circle spanned by two dimensions, valence (pleasure -
displeasure, the x axis) and arousal (activation - deactivation, the y axis), in the order
pleasure 0 deg, excitement 45 deg, arousal 90 deg, distress 135 deg, displeasure 180 deg,
depression 225 deg, sleepiness 270 deg and relaxation 315 deg; the distance from the centre is the
intensity (Posner, Russell & Peterson 2005, *Development and Psychopathology* 17(3), 715-734).

Each emotion is given a point of that circle (:data:`CIRCUMPLEX_ANGLES`): the direction of the
reference category it denotes, or the middle of the sector between two where it lies between them.
The placement within a sector is ours (the paper's eight directions are not finer than that):

============  =======  ============================================================  =======  =======
emotion       angle    sector (Russell 1980)                                          valence  arousal
============  =======  ============================================================  =======  =======
happy         22.5     between pleasure and excitement                                +0.92    +0.38
surprise      67.5     between excitement and arousal ("astonished")                  +0.38    +0.92
angry         112.5    between arousal and distress                                   -0.38    +0.92
fear          135      distress ("afraid", "tense")                                   -0.71    +0.71
disgust       157.5    between distress and displeasure                               -0.92    +0.38
sad           225      depression ("sad", "gloomy")                                   -0.71    -0.71
calm          315      relaxation ("calm", "relaxed")                                 +0.71    -0.71
neutral       -        the centre: no affect                                           0.00     0.00
============  =======  ============================================================  =======  =======

A prediction's arousal and valence are the probability-weighted mean of these points
(:func:`affect`), so they lie in [-1, 1] (inside the unit disc): a clip judged 90% angry is
``(valence -0.34, arousal +0.83)``, one split between angry and sad sits between them, and an
uncertain one is pulled to the centre. These are derived, not learned: they are only as right as
the class probabilities, and they inherit the corpora's acted emotions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Angle (degrees, counter-clockwise from pleasure) of each emotion on Russell's circumplex; ``None``: the centre.
CIRCUMPLEX_ANGLES: dict[str, float | None] = {
    "happy": 22.5,
    "surprise": 67.5,
    "angry": 112.5,
    "fear": 135.0,
    "disgust": 157.5,
    "sad": 225.0,
    "calm": 315.0,
    "neutral": None,
}
SOURCE = (
    "Russell, J. A. (1980). A circumplex model of affect. Journal of Personality and Social Psychology, 39(6), "
    "1161-1178: eight reference directions (pleasure 0, excitement 45, arousal 90, distress 135, displeasure 180, "
    "depression 225, sleepiness 270, relaxation 315 degrees); each emotion placed in its sector (ser_lib.affect)."
)


def _point(angle: float | None) -> tuple[float, float]:
    if angle is None:
        return 0.0, 0.0
    a = np.deg2rad(angle)
    return float(np.cos(a)), float(np.sin(a))


#: ``emotion -> (valence, arousal)``, each in [-1, 1].
CIRCUMPLEX: dict[str, tuple[float, float]] = {e: _point(a) for e, a in CIRCUMPLEX_ANGLES.items()}


def coordinates(labels: Sequence[str]) -> np.ndarray:
    """``(valence, arousal)`` of each label [shape=(n_labels, 2)]; a label not on the circle is the centre."""
    return np.array([CIRCUMPLEX.get(lab, (0.0, 0.0)) for lab in labels], dtype=float).reshape(-1, 2)


def affect(probabilities: np.ndarray | Mapping[str, float], *, labels: Sequence[str] | None = None) -> np.ndarray:
    """Valence and arousal of class probabilities: their probability-weighted mean point.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(..., n_labels)] or mapping label -> probability
    labels : sequence of str
        The order of the last axis (not needed for a mapping).

    Returns
    -------
    va : np.ndarray [shape=(..., 2)]
        ``[..., 0]`` valence and ``[..., 1]`` arousal, each in [-1, 1]. Probabilities that do not
        sum to 1 are normalised first; all-zero ones give the centre.
    """
    if isinstance(probabilities, Mapping):
        labels = list(probabilities)
        probabilities = np.array([probabilities[lab] for lab in labels], dtype=float)
    if labels is None:
        from .errors import ParameterError

        raise ParameterError("affect() needs labels=... naming the order of the probabilities' last axis")
    p = np.asarray(probabilities, dtype=float)
    total = p.sum(axis=-1, keepdims=True)
    p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    return p @ coordinates(labels)


def valence_arousal(
    probabilities: np.ndarray | Mapping[str, float], *, labels: Sequence[str] | None = None
) -> tuple[float, float]:
    """:func:`affect` of one prediction, as two floats ``(valence, arousal)``."""
    va = affect(probabilities, labels=labels)
    return float(va[0]), float(va[1])


def describe(valence: float, arousal: float, *, dead_zone: float = 0.15) -> str:
    """Words for a point: ``"agitated and negative"``, ``"calm and positive"``, ``"neutral"``..."""
    if not (np.isfinite(valence) and np.isfinite(arousal)):
        return ""
    a = "agitated" if arousal > dead_zone else "subdued" if arousal < -dead_zone else ""
    v = "positive" if valence > dead_zone else "negative" if valence < -dead_zone else ""
    if a and v:
        return f"{a} and {v}"
    return a or v or "neutral"
