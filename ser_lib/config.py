"""One place for the library's constants and default locations.

Paths come from arguments or environment variables, never from absolute paths in code:

- ``SER_DATA_DIR``: the folder holding the corpora (default ``data/`` under the working directory).
- ``SER_CACHE_DIR``: where features, embeddings and the joined encoder weights are cached
  (default ``~/.cache/ser_lib``).
- ``SER_MODEL``: the bundle used when none is named (default ``models/default``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The notebook's eight canonical emotions, in the order RAVDESS numbers them (01-08).
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fear",
    "disgust",
    "surprise",
)

#: Sample rate every clip is loaded at: right for speech and for telephone audio.
SAMPLE_RATE: int = 16_000

#: Sentiment weight per emotion, used by the call timeline: positive emotions count +1,
#: negative ones -1, neutral/calm 0 (surprise is mildly positive: acted "pleasant surprise").
SENTIMENT_WEIGHTS: dict[str, float] = {
    "neutral": 0.0,
    "calm": 0.25,
    "happy": 1.0,
    "surprise": 0.25,
    "sad": -0.75,
    "angry": -1.0,
    "fear": -0.75,
    "disgust": -1.0,
}

#: Audio file extensions the corpus finder and the pages accept.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".opus", ".ogg", ".flac", ".mp3", ".aif", ".aiff", ".m4a")

#: Largest file the library decodes in one piece (bytes); calls are streamed in blocks instead.
MAX_CLIP_SECONDS: float = 60.0

# --- input limits: what the decoder (:mod:`ser_lib.audio`) accepts, checked before or while decoding ---
#: Sample rates a file's header may state (Hz). Below 1 kHz is a damaged header (a WAV saying 1 Hz
#: would decode to hours of audio); above 384 kHz no recorder writes.
MIN_SAMPLE_RATE: int = 1_000
MAX_SAMPLE_RATE: int = 384_000
#: Most channels a file's header may state (calls have 1 or 2; 16 covers multitrack recorders).
MAX_CHANNELS: int = 16
#: Longest call analysed, in seconds (4 hours): `analyze-call`, :func:`ser_lib.calls.analyze_call`
#: and :func:`ser_lib.audio.iter_blocks` stop decoding once a recording passes it.
MAX_CALL_SECONDS: float = 4 * 3600.0
#: Longest call uploaded on the Call timeline page, in seconds (2 hours).
MAX_UPLOAD_SECONDS: float = 2 * 3600.0
#: How much audio :func:`ser_lib.audio.audio_info` decodes to measure a file whose header states no
#: believable length (a streaming FLAC's ``total_samples = 0``, an MP3 or Opus length larger than the
#: file could hold); longer files are then reported as lasting at least this long.
INFO_PROBE_SECONDS: float = 2 * MAX_CLIP_SECONDS

#: Model types a bundle can hold (the front end each uses is in :mod:`ser_lib.frontends`).
MODEL_TYPES: tuple[str, ...] = ("encoder_head", "logmel_cnn", "notebook_cnn1d")
#: Old model-type names still accepted (``seed_cnn1d`` is the notebook's model).
MODEL_TYPE_ALIASES: dict[str, str] = {"seed_cnn1d": "notebook_cnn1d"}
#: How training splits the data: by speaker (honest), the notebook's random split, or none.
SPLITS: tuple[str, ...] = ("speaker", "random", "none")

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
MODELS_DIR: Path = PROJECT_ROOT / "models"
DEFAULT_MODEL_NAME: str = "default"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The corpora folder: ``path`` if given, else ``$SER_DATA_DIR``, else ``data/``."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("SER_DATA_DIR")
    return Path(env).expanduser() if env else Path("data")


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path`` if given, else ``$SER_CACHE_DIR``, else ``~/.cache/ser_lib``."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("SER_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ser_lib"


def default_model_path() -> Path:
    """The bundle used when none is named: ``$SER_MODEL`` or ``models/default``."""
    env = os.environ.get("SER_MODEL")
    return Path(env).expanduser() if env else MODELS_DIR / DEFAULT_MODEL_NAME
