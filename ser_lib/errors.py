"""The library's one exception family.

Every message names the thing, shows the value received, says what was expected and, where
possible, how to fix it. Pages catch :class:`SERError` and show its message; nothing else.
"""

from __future__ import annotations


class SERError(Exception):
    """Base class of every error the library raises on purpose."""


class AudioError(SERError, ValueError):
    """Audio that cannot be used: unreadable, empty, silent, too short, non-finite."""


class UnreadableAudioError(AudioError):
    """The file or bytes could not be decoded as audio."""


class EmptyAudioError(AudioError):
    """The audio holds no samples."""


class SilentAudioError(AudioError):
    """The audio holds only silence (or near-silence)."""


class TooShortAudioError(AudioError):
    """The audio is shorter than the shortest clip the model can judge."""


class NonFiniteAudioError(AudioError):
    """The audio contains NaN or infinite samples."""


class CorpusError(SERError):
    """A data folder without a recognisable corpus, or a corpus that cannot be used."""


class BundleError(SERError):
    """A model bundle that is missing, incomplete or does not match its card."""


class BackboneError(SERError):
    """The pretrained speech encoder cannot be found, verified or run."""


class ParameterError(SERError, ValueError):
    """An argument outside its valid range."""
