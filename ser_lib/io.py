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
    """Whether ``folder`` exists and holds something besides a claim (so writing a bundle there would replace it)."""
    p = Path(folder)
    return (p.is_dir() and any(c.name != RESERVATION for c in p.iterdir())) or p.is_file()


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


def check_writable(path: str | os.PathLike, *, what: str = "output") -> Path:
    """Raise :class:`~ser_lib.errors.ParameterError` unless a file can be written at ``path``.

    Asked before any work starts, so an analysis is never lost to an unwritable output path: the
    path must not be a folder, and its folder must exist (or be creatable) and be writable.
    """
    from .errors import ParameterError

    p = Path(path).expanduser()
    if p.is_dir():
        raise ParameterError(f"The {what} path {p} is a folder: give a file name, e.g. {p / 'result.json'}.")
    parent = p.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ParameterError(f"The {what} path {p} cannot be created: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ParameterError(f"The {what} path {p} is not writable (permission denied on {existing}): choose another path.")
    return p


def check_writable_dir(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Raise :class:`~ser_lib.errors.ParameterError` unless files can be written into folder ``path``."""
    from .errors import ParameterError

    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ParameterError(f"The {what} {p} is a file, not a folder: choose a folder.")
    check_writable(p / ".probe", what=what)
    return p


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap paths ``a`` and ``b`` (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put folder ``new`` at ``target``, replacing what is there, so that ``target`` always holds
    either the old folder complete or the new one complete.

    Where the system can swap two paths atomically (Linux ``renameat2``) it does; elsewhere the old
    folder is first renamed aside (``.NAME.old-*``, beside it), the new one renamed in, and the old one
    removed; a crash between the two renames leaves the old folder complete under the aside name.
    """
    import shutil

    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return target
    if _rename_exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old folder
        return target
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(aside)
    os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return target


RESERVATION = ".reserved"


def reserve_folder(folder: str | os.PathLike, *, overwrite: bool = False, hint: str = "pass overwrite=True") -> str:
    """Claim ``folder`` for a bundle about to be written, atomically, and return the claim's token.

    Two trainings asking for the same name: the first creates ``folder/.reserved`` (``O_EXCL``),
    the second is told the name is taken. Without ``overwrite`` the folder must not hold a bundle
    already (:func:`check_bundle_target`). :func:`release_folder` gives the claim back; saving a
    bundle into the folder replaces it (the claim goes with it). The token lets
    :func:`release_folder` remove this claim only, never a later one by someone else.
    """
    import uuid

    p = check_bundle_target(folder, overwrite=overwrite, hint=hint) if not overwrite else Path(folder).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    claim = p / RESERVATION
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise BundleError(
            f"{p} is being written by another training right now (it holds {RESERVATION}): choose another name, "
            f"or wait for that run to finish."
        ) from None
    token = uuid.uuid4().hex
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()} token {token}\n")
    return token


def release_folder(folder: str | os.PathLike, token: str | None = None) -> None:
    """Give back a claim made by :func:`reserve_folder` (and the folder, if nothing else is in it).

    With ``token``, only the claim that :func:`reserve_folder` returned it for is removed.
    """
    p = Path(folder).expanduser()
    claim = p / RESERVATION
    try:
        held = claim.read_text()
    except OSError:
        held = None
    if held is not None and (token is None or token in held):
        claim.unlink(missing_ok=True)
    try:
        p.rmdir()
    except OSError:
        pass
