"""Generated call audio and a tiny trained model, for the VAD, timeline and Call timeline page tests.

- :func:`speechlike`: formant-synthesised "speech" (a glottal pulse train through three vowel
  formants, syllables with fricative bursts between them) that Silero VAD accepts as speech,
  unlike plain tones or noise. ``style="angry"`` is higher, brighter and faster than ``"neutral"``.
- :func:`make_call`: a call from turns ``(role, style, start_s, seconds)``: stereo with one party
  per channel, or the mono mix.
- :func:`tiny_bundle`: an encoder-head bundle trained for a few seconds to tell the two styles
  apart (``neutral`` vs ``angry``), so results are decisive and a test can check the emotions.
- :func:`untrained_bundle`: an untrained encoder head (mechanics only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import signal

SR = 16_000
_VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (530, 1840, 2480),
    (570, 840, 2410),
    (300, 870, 2240),
    (660, 1720, 2410),
    (490, 1350, 1690),
)
STYLES = {
    # f0 (Hz), syllable length range (s), fricative share, spectral tilt pole
    "neutral": (105.0, (0.16, 0.30), 0.2, 0.97),
    "angry": (235.0, (0.09, 0.16), 0.5, 0.80),
}


def speechlike(seconds: float, *, sr: int = SR, style: str = "neutral", seed: int = 0, level: float = 0.5) -> np.ndarray:
    """Speech-like audio [shape=(n,)], float32, peak ``level``."""
    f0, (lo, hi), fric, tilt = STYLES[style]
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f = f0 * (1 + 0.12 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    pulses = np.diff(np.floor(np.cumsum(f) / sr), prepend=0.0)
    src = signal.lfilter([1.0], [1.0, -tilt], pulses)
    out = np.zeros(n)
    bb, ba = signal.butter(2, [2500 / (sr / 2), min(6000, 0.45 * sr) / (sr / 2)], "band")
    pos = 0
    while pos < n:
        end = min(n, pos + int(rng.uniform(lo, hi) * sr))
        x = src[pos:end]
        y = np.zeros_like(x)
        for fc, bw in zip(_VOWELS[rng.integers(len(_VOWELS))], (80, 100, 150), strict=True):
            r, th = np.exp(-np.pi * bw / sr), 2 * np.pi * fc / sr
            y += signal.lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], x)
        out[pos:end] += y * np.hanning(len(y)) ** 0.5
        peak = np.abs(y).max() if len(y) else 0.0
        pos = end
        end = min(n, pos + int(rng.uniform(0.03, 0.08) * sr))
        if end > pos:
            noise = signal.lfilter(bb, ba, rng.standard_normal(end - pos))
            out[pos:end] += fric * noise * np.hanning(end - pos) * peak
        pos = end
    out = level * out / max(np.abs(out).max(), 1e-9)
    return out.astype(np.float32)


def make_call(
    turns,
    *,
    total_s: float,
    sr: int = SR,
    stereo: bool = True,
    roles=("agent", "customer"),
    noise_db: float | None = -70.0,
    seed: int = 0,
) -> np.ndarray:
    """A call [shape=(2, n)] (stereo, channel per role) or [shape=(n,)] (mono mix).

    ``turns``: ``(role, style, start_s, seconds)``. ``noise_db``: a faint line noise on every
    channel (``None``: digital silence between turns).
    """
    rng = np.random.default_rng(seed)
    n = int(round(total_s * sr))
    x = np.zeros((len(roles), n), np.float32)
    for i, (role, style, start, seconds) in enumerate(turns):
        y = speechlike(seconds, sr=sr, style=style, seed=seed * 1000 + i)
        a = int(round(start * sr))
        x[roles.index(role), a : a + len(y)] += y[: n - a]
    if noise_db is not None:
        x += (10 ** (noise_db / 20) * rng.standard_normal(x.shape)).astype(np.float32)
    if stereo:
        return x
    mono = x.sum(axis=0)
    return (mono / max(1.0, np.abs(mono).max())).astype(np.float32)


def untrained_bundle(folder: Path):
    """An untrained encoder head in ``folder`` (created once), loaded."""
    from ser_lib.bundle import EncoderFrontEnd, ModelBundle
    from ser_lib.config import EMOTIONS

    folder = Path(folder)
    if not (folder / "card.json").is_file():
        import keras

        from ser_lib.models import encoder_head

        keras.utils.set_random_seed(0)
        model = encoder_head(num_classes=len(EMOTIONS))
        bundle = ModelBundle.create(
            model, name="untrained", model_type="encoder_head", labels=list(EMOTIONS), frontend=EncoderFrontEnd()
        )
        bundle.save(folder)
    return ModelBundle.load(folder)


def tiny_bundle(folder: Path):
    """An encoder head trained briefly on :func:`speechlike` voices (neutral vs angry), loaded.

    Trained once per folder (a few seconds); later calls load it.
    """
    from ser_lib.bundle import EncoderFrontEnd, ModelBundle
    from ser_lib.config import EMOTIONS

    folder = Path(folder)
    if not (folder / "card.json").is_file():
        import keras

        from ser_lib.backbone import WhisperEncoder
        from ser_lib.models import encoder_head

        keras.utils.set_random_seed(0)
        enc = WhisperEncoder("whisper-base")
        xs, ys = [], []
        rng = np.random.default_rng(1)
        for i in range(24):
            for style in ("neutral", "angry"):
                y = speechlike(float(rng.uniform(2.0, 3.0)), style=style, seed=100 + i, level=float(rng.uniform(0.2, 0.8)))
                frames = enc.encode(y)
                a = int(rng.integers(0, len(frames) - 100 + 1))
                xs.append(frames[a : a + 100])
                ys.append(EMOTIONS.index(style))
        model = encoder_head(num_classes=len(EMOTIONS))
        model.fit(np.stack(xs), keras.utils.to_categorical(ys, len(EMOTIONS)), epochs=12, batch_size=16, verbose=0, shuffle=True)
        bundle = ModelBundle.create(
            model, name="tiny", model_type="encoder_head", labels=list(EMOTIONS), frontend=EncoderFrontEnd()
        )
        bundle.save(folder)
    return ModelBundle.load(folder)
