"""Settings of a call analysis: windows, smoothing, segments, the parties and the constants.

- :class:`TimelineSettings`: windowing, smoothing and segmentation, shared by the offline and the
  live analysis (and the voice-activity detector's :class:`~ser_lib.calls.vad.VADSettings`).
- :func:`channel_roles` / :func:`parse_roles`: which party speaks on which channel.
- :data:`DEFAULT_ROLES`, :data:`MONO_ROLE`, :data:`WORST_BELOW`, :data:`TREND_STEP`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..backbone import CHUNKS
from ..config import SAMPLE_RATE
from ..errors import ParameterError
from ..features import WHISPER_FRAME_RATE
from .vad import VADSettings

#: Roles of a stereo call: channel 0 (left) and channel 1 (right).
DEFAULT_ROLES: tuple[str, str] = ("agent", "customer")
#: The one party of a mono recording: both voices mixed, which no channel split can separate.
MONO_ROLE: str = "speaker"
#: Segments at or below this sentiment can be a "worst moment".
WORST_BELOW: float = -0.25
#: A change in mean sentiment between the first and last quarter with speech larger than this
#: (either way) makes the trend "improving" or "worsening"; otherwise "steady".
TREND_STEP: float = 0.15
#: Encoder frames per second, and 16 kHz audio samples per encoder frame (320: 20 ms).
FRAME_RATE: int = WHISPER_FRAME_RATE
FRAME_HOP: int = SAMPLE_RATE // FRAME_RATE


def frames_of(seconds: float, what: str) -> int:
    """``seconds`` as a whole number of 20 ms encoder frames.

    Raises
    ------
    ParameterError
        If ``seconds`` is not a multiple of one frame; ``what`` names the setting in the message.
    """
    n = seconds * FRAME_RATE
    if abs(n - round(n)) > 1e-6:
        raise ParameterError(
            f"{what}={seconds} s must be a multiple of {1 / FRAME_RATE:g} s (one encoder frame), e.g. 3.0 or 2.5"
        )
    return int(round(n))


@dataclass(frozen=True)
class TimelineSettings:
    """Windowing, smoothing and segmentation, shared by the offline and the live analysis.

    Parameters
    ----------
    window_s : float
        Window length in seconds (the models were trained on 1.5-5 s clips; 2.5-3 s is right).
    hop_s : float
        Seconds between window starts (0.5-1 s). Live results lag one hop (the smoothing's look-ahead).
    smooth : int
        Neighbours on each side in the median smoothing (0: none).
    min_window_s : float
        Speech regions shorter than this get no emotion (too little to judge).
    min_segment_s : float
        Runs of one emotion shorter than this are merged into a neighbouring segment.
    vad : VADSettings
        Voice-activity detection settings.

    Raises
    ------
    ParameterError
        For a window or hop that is not a whole number of 20 ms frames or out of range, a
        ``smooth`` outside 0-5, or a ``vad`` that is not a :class:`VADSettings`.
    """

    window_s: float = 3.0
    hop_s: float = 1.0
    smooth: int = 1
    min_window_s: float = 1.0
    min_segment_s: float = 1.5
    vad: VADSettings = field(default_factory=VADSettings)

    def __post_init__(self):
        w = frames_of(self.window_s, "window_s")
        h = frames_of(self.hop_s, "hop_s")
        if not 0.5 <= self.window_s <= 30.0:
            raise ParameterError(f"window_s={self.window_s} must be between 0.5 and 30 s; 2.5-3 s suits the models")
        if not 0 < h <= w:
            raise ParameterError(f"hop_s={self.hop_s} must be positive and at most window_s={self.window_s}")
        if not 0 <= int(self.smooth) <= 5 or int(self.smooth) != self.smooth:
            raise ParameterError(f"smooth={self.smooth} must be a whole number of neighbours from 0 to 5")
        if not 0.25 <= self.min_window_s <= self.window_s:
            raise ParameterError(f"min_window_s={self.min_window_s} must be between 0.25 s and window_s={self.window_s}")
        if self.min_segment_s < 0:
            raise ParameterError(f"min_segment_s={self.min_segment_s} must not be negative")
        if not isinstance(self.vad, VADSettings):
            raise ParameterError(f"vad must be a VADSettings, got {type(self.vad).__name__}")

    @property
    def chunk_s(self) -> float:
        """Seconds per encoder chunk after a region's first (which is one window): ``smooth + 1`` hops,
        at least the encoder's shortest input (:data:`ser_lib.backbone.CHUNKS` ``.min_s``, 2 s).

        A live window's result is final ``smooth`` hops after its audio, and by then the chunk its
        audio ends in is complete, so it is scored from the offline frames.
        """
        hops = max(int(self.smooth) + 1, int(np.ceil(CHUNKS.min_s / self.hop_s - 1e-9)))
        return round(hops * self.hop_s, 6)

    def to_dict(self) -> dict:
        """The settings as plain values, with the derived ``chunk_s``."""
        return {**asdict(self), "chunk_s": self.chunk_s}


def channel_roles(channels: int, roles: Sequence[str] | None = None) -> list[str]:
    """The role of each channel: ``roles`` in channel order for stereo, :data:`MONO_ROLE` for mono.

    Channels beyond ``roles`` are named ``"channel 3"``, ``"channel 4"``, ...; a mono stream whose
    ``roles`` name exactly one party (a live stream of the caller alone) is that party.

    Raises
    ------
    ParameterError
        For fewer than one channel, an empty role, or a role given twice.
    """
    if channels < 1:
        raise ParameterError(f"channels={channels} must be at least 1")
    if channels == 1:
        if roles is not None and len(roles) == 1 and isinstance(roles[0], str) and roles[0].strip():
            return [roles[0].strip()]
        return [MONO_ROLE]
    roles = list(DEFAULT_ROLES if roles is None else roles)
    if any(not isinstance(r, str) or not r.strip() for r in roles):
        raise ParameterError(f"roles={roles} must be non-empty names, e.g. ('agent', 'customer')")
    out = [roles[c].strip() if c < len(roles) else f"channel {c + 1}" for c in range(channels)]
    if len(set(out)) != len(out):
        raise ParameterError(f"roles={out} name a party twice: give each channel its own role")
    return out


def parse_roles(text: str) -> tuple[str, ...]:
    """``"agent,customer"`` -> ``("agent", "customer")`` (the CLI's and the page's format).

    Raises
    ------
    ParameterError
        Unless ``text`` names at least two parties separated by commas.
    """
    roles = tuple(r.strip() for r in str(text).split(","))
    if len(roles) < 2 or any(not r for r in roles):
        raise ParameterError(
            f"--channels {text!r} must name the parties in channel order, separated by a comma, e.g. "
            "'agent,customer' (left is the agent) or 'customer,agent'"
        )
    return roles
