"""On-disk cache of per-file features, keyed by file and settings.

A file's key is its absolute path, size and modification time; the settings are the front end's
JSON settings (plus, for encoder embeddings, the weights' SHA-256 and the augmentation view).
Change the file or any setting and the entry is simply recomputed. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from .config import cache_dir
from .io import atomic_write_bytes, atomic_write_text


def settings_key(settings: dict) -> str:
    """A short stable hash of a JSON-serialisable settings dict."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def file_key(path: str | os.PathLike) -> str:
    """A hash of the file's absolute path, size and modification time."""
    p = Path(path).resolve()
    st = p.stat()
    return hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()


class FeatureCache:
    """Per-file ``.npy`` entries under ``<cache>/features/<settings hash>/``."""

    def __init__(self, settings: dict, *, root: str | os.PathLike | None = None):
        self.settings = settings
        self.folder = cache_dir(root) / "features" / settings_key(settings)

    def _path(self, path: str | os.PathLike) -> Path:
        key = file_key(path)
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, path: str | os.PathLike) -> np.ndarray | None:
        """The cached array for ``path``, or ``None``."""
        try:
            return np.load(self._path(path), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, path: str | os.PathLike, value: np.ndarray) -> None:
        """Store ``value`` for ``path`` atomically."""
        if not (self.folder / "settings.json").exists():
            atomic_write_text(self.folder / "settings.json", json.dumps(self.settings, indent=1, default=str))
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        atomic_write_bytes(self._path(path), buf.getvalue())
