"""One place for how the library reads and writes its own files.

- :func:`sha256_file`: the SHA-256 of a file, streamed (bundles, encoder weights, caches).
- :func:`json_default` / :func:`dumps_json`: one JSON encoder for NumPy values, paths and frames.
- :func:`atomic_write_text` / :func:`atomic_write_bytes` / :func:`write_json`: write to a temporary
  file beside the target and rename it over the target, so a reader never sees half a file.
- :func:`check_bundle_target`: "may I write a bundle here?", asked before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError


def sha256_file(path: str | os.PathLike, *, block: int = 1 << 22) -> str:
    """The hex SHA-256 of the file at ``path``, read in blocks of ``block`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def json_default(o: Any):
    """``json.dumps(default=...)`` for NumPy scalars and arrays, paths and pandas frames."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict") and hasattr(o, "columns"):  # a pandas DataFrame, without importing pandas
        return o.to_dict(orient="records")
    raise TypeError(f"Not JSON serialisable: {type(o).__name__}")


def dumps_json(data: Any, *, indent: int | None = 1) -> str:
    """``data`` as JSON text with :func:`json_default` for NumPy, paths and frames."""
    return json.dumps(data, indent=indent, default=json_default)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644  # mkstemp's 0600 would hide it from others
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, dumps_json(data, indent=indent))


def holds_bundle(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` exists and is not empty (so writing a bundle there would replace something)."""
    p = Path(folder)
    return p.is_dir() and any(p.iterdir()) or p.is_file()


def check_bundle_target(folder: str | os.PathLike, *, overwrite: bool = False, hint: str = "pass overwrite=True") -> Path:
    """Raise :class:`BundleError` unless a bundle may be written to ``folder``.

    A folder that does not exist or is empty may always be written; one holding anything (a bundle,
    or other files) only with ``overwrite``. ``hint`` says how the caller overrides (``--overwrite``,
    the page's *overwrite* box).
    """
    p = Path(folder).expanduser()
    if p.is_file():
        raise BundleError(f"{p} is a file, not a folder: choose another name for the bundle.")
    if holds_bundle(p) and not overwrite:
        raise BundleError(f"{p} already holds a bundle: choose another name, or {hint} to replace it.")
    return p
