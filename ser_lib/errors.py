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


class AudioTooLongError(AudioError, ParameterError):
    """Audio longer than the entry point accepts (a clip, a call, an upload); found while decoding.

    Also a :class:`ParameterError`, as the limit's error was before it had a class of its own.
    ``seconds`` is how long the audio is (at least), ``max_seconds`` the limit.
    """

    def __init__(self, message: str, *, seconds: float | None = None, max_seconds: float | None = None):
        super().__init__(message)
        self.seconds = seconds
        self.max_seconds = max_seconds

    def __reduce__(self):  # keeps the figures through pickling (worker processes, job queues)
        return _rebuild_too_long, (str(self), self.seconds, self.max_seconds)


def _rebuild_too_long(message: str, seconds: float | None, max_seconds: float | None) -> AudioTooLongError:
    return AudioTooLongError(message, seconds=seconds, max_seconds=max_seconds)


class StoreError(SERError):
    """The call store (:mod:`ser_lib.store`) cannot be opened, read or written: unreadable, newer, bad metadata."""


class StoreNotFoundError(StoreError):
    """No call store exists yet at the path asked for (a reader never creates one)."""


class StoreBusyError(StoreError):
    """The call store stayed locked by another process for longer than the caller would wait."""
