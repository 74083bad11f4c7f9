"""Telephone audio codecs with NumPy tables: G.711 mu-law and A-law, 16-bit PCM, 32-bit float.

``audioop`` left the standard library in Python 3.13, so decoding is a 256-entry table lookup
(the ITU-T G.711 expansion, the values libsndfile uses) and encoding a few vectorised integer
operations. Every decoder returns float32 samples in [-1, 1] (the 16-bit value / 32768), the
scale :class:`ser_lib.calls.StreamingAnalyzer` and :mod:`soundfile` use, so a mu-law file read
by ``analyze-call`` and the same bytes streamed to the service give the same samples.

- :data:`ENCODINGS`: the raw protocol's encodings and their bytes per sample.
- :func:`decode`: bytes of one encoding -> float32 samples, interleaved channels split.
- :func:`mulaw_encode` / :func:`alaw_encode`: float or int16 samples -> G.711 bytes (the
  simulator's encoder); ``decode(encode(decode(b))) == decode(b)`` for every byte.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

#: Encodings the raw protocol accepts, with their bytes per sample.
ENCODINGS: dict[str, int] = {"pcm_s16le": 2, "mulaw": 1, "alaw": 1, "float32": 4}
#: The byte a G.711 stream uses for silence (decodes to 0).
MULAW_SILENCE: int = 0xFF
ALAW_SILENCE: int = 0xD5


def _mulaw_table() -> np.ndarray:
    """The 256 mu-law codes as 16-bit values (G.711: bias 0x84, bits inverted)."""
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    """The 256 A-law codes as 16-bit values (G.711: even bits inverted, sign bit set = positive)."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


MULAW_TO_INT16: np.ndarray = _mulaw_table()
ALAW_TO_INT16: np.ndarray = _alaw_table()
_MULAW_FLOAT = (MULAW_TO_INT16.astype(np.float32) / 32768.0).astype(np.float32)
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ALAW_FLOAT = (ALAW_TO_INT16.astype(np.float32) / 32768.0).astype(np.float32)


def decode(data: bytes | bytearray | memoryview, *, encoding: str, channels: int = 1) -> np.ndarray:
    """Samples of ``data`` in ``encoding``, one row per channel.

    Parameters
    ----------
    data : bytes
        Whole frames of interleaved samples (``channels * ENCODINGS[encoding]`` bytes each).
    encoding : {"pcm_s16le", "mulaw", "alaw", "float32"}
    channels : int

    Returns
    -------
    y : np.ndarray [shape=(channels, n)], float32 in [-1, 1]

    Raises
    ------
    ParameterError
        For an unknown encoding, a length that is not a whole number of frames, or float samples
        that are not finite.
    """
    width = ENCODINGS.get(encoding)
    if width is None:
        raise ParameterError(f"encoding={encoding!r} is not supported: use one of {', '.join(ENCODINGS)}")
    if len(data) % (width * channels):
        raise ParameterError(
            f"{len(data)} bytes are not whole frames of {channels} channel(s) of {encoding} ({width * channels} bytes each)"
        )
    if encoding == "mulaw":
        y = _MULAW_FLOAT[np.frombuffer(data, dtype=np.uint8)]
    elif encoding == "alaw":
        y = _ALAW_FLOAT[np.frombuffer(data, dtype=np.uint8)]
    elif encoding == "pcm_s16le":
        y = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        y = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(y)):
            raise ParameterError("float32 audio contains NaN or infinite samples: the stream is damaged")
    return np.ascontiguousarray(y.reshape(-1, channels).T)


def _as_int16(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == np.int16:
        return y.astype(np.int32)
    return np.clip(np.round(np.asarray(y, np.float64) * 32768.0), -32768, 32767).astype(np.int32)


def mulaw_encode(y: np.ndarray) -> bytes:
    """G.711 mu-law bytes of ``y`` [shape=(n,)], float in [-1, 1] or int16 (one byte per sample)."""
    x = _as_int16(y)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def alaw_encode(y: np.ndarray) -> bytes:
    """G.711 A-law bytes of ``y`` [shape=(n,)], float in [-1, 1] or int16 (one byte per sample)."""
    x = _as_int16(y) >> 3  # 13-bit
    mask = np.where(x >= 0, 0xD5, 0x55)
    magnitude = np.where(x >= 0, x, -x - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()
