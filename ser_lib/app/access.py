"""What a dashboard visitor may reach: the operator's settings, so the app is safe to share.

Anyone who can open the dashboard can type into it, so what they can reach is set by whoever runs
the server, through environment variables (no Streamlit here; :mod:`ser_lib.app.ui` applies it):

- ``SER_DATA_ROOTS``: the folders (``os.pathsep``-separated) a visitor may point the data folder at,
  and play or scan audio below. Default: the data folder itself (``$SER_DATA_DIR``, then ``data/``)
  and below it. Paths are resolved (symbolic links and ``..`` included) before they are compared.
- ``SER_ALLOW_DEFAULT_OVERWRITE``: ``1`` lets the Training page replace the shipped ``default``
  model. Off by default: visitors train new bundles under ``models/`` only (bundle names are plain
  folder names, see :func:`ser_lib.app.model_view.bundle_folder_for`).
- Per-session state is bounded: a microphone conversation keeps at most :data:`MAX_MIC_TURNS`
  recordings and :data:`MAX_MIC_SECONDS` of audio.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import data_dir
from ..errors import ParameterError

#: Most recordings one microphone conversation keeps, and most audio (seconds) in all.
MAX_MIC_TURNS = 40
MAX_MIC_SECONDS = 20 * 60.0


def data_roots() -> list[Path]:
    """The folders a visitor may read audio under (``$SER_DATA_ROOTS``, default the data folder)."""
    env = os.environ.get("SER_DATA_ROOTS", "")
    roots = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()] or [data_dir()]
    return [_resolve(p) for p in roots]


def _resolve(p: Path) -> Path:
    try:
        return p.expanduser().resolve()
    except (OSError, RuntimeError):  # a loop of symbolic links
        return Path(os.path.abspath(p.expanduser()))


def is_readable_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies in (or is) one of :func:`data_roots`."""
    p = _resolve(Path(path))
    return any(p == root or p.is_relative_to(root) for root in data_roots())


def check_data_folder(text: str | os.PathLike) -> Path:
    """The data folder a visitor typed, if the operator allows it.

    Raises
    ------
    ParameterError
        When the folder lies outside :func:`data_roots`, with the roots and how to change them.
    """
    if not str(text).strip():
        raise ParameterError("The data folder is empty: type the folder that holds the corpora.")
    p = Path(str(text).strip()).expanduser()
    check_readable(p, advice="Choose a folder inside them; whoever runs the dashboard can allow others with SER_DATA_ROOTS.")
    return p


def check_readable(path: Path, *, advice: str) -> None:
    """Raise :class:`ParameterError` naming the readable roots and ``advice`` when ``path`` lies outside them."""
    if not is_readable_path(path):
        roots = ", ".join(str(r) for r in data_roots())
        raise ParameterError(f"{path} is outside the folders this dashboard may read ({roots}). {advice}")


def may_replace_default() -> bool:
    """Whether the operator lets the dashboard replace the shipped ``default`` model."""
    return os.environ.get("SER_ALLOW_DEFAULT_OVERWRITE", "").strip().lower() in ("1", "true", "yes", "on")
