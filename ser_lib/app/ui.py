"""The pages' Streamlit glue: cached wrappers, the shared sidebar, error display.

The only module of :mod:`ser_lib` that imports Streamlit. It caches what is heavy and shared
(``st.cache_resource`` for models, keyed on the bundle path and the model file's modification
time; ``st.cache_data`` for manifests, clips and predictions) and keeps every per-user value in
``st.session_state``. Shared session keys start with ``shared_``; each page prefixes its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from ..audio import load_audio, to_wav_bytes
from ..bundle import BundleInfo, ModelBundle, list_bundles, read_card
from ..config import SAMPLE_RATE, data_dir
from ..corpora import EXPECTED_LAYOUTS, SOURCES, find_corpora
from ..errors import ParameterError, SERError
from .access import check_data_folder
from .call_view import ExampleCall
from .call_view import example_call as build_example_call
from .model_view import ClipResult, find_bundles, is_active, load_saved_evaluation, model_mtime, models_dir, predict_upload

logger = logging.getLogger(__name__)

DATA_KEY = "shared_data_dir"
MODEL_KEY = "shared_model"
CALL_TIMELINE_PAGE = "pages/6_Call_timeline.py"
_APP_ROOT = Path(__file__).resolve().parents[2]  # the repository: Home.py and pages/


# --- errors ----------------------------------------------------------------------------------------


def show_error(exc: BaseException, *, what: str = "This step") -> None:
    """Show a library error's message, or a short note for anything unexpected (logged in full)."""
    if isinstance(exc, SERError):
        st.error(str(exc), icon=":material/error:")
    else:
        logger.exception("%s failed", what, exc_info=exc)
        st.error(
            f"{what} failed unexpectedly ({type(exc).__name__}: {exc}). The details are in the server log; "
            "the rest of the app keeps working.",
            icon=":material/error:",
        )


@contextmanager
def guard(what: str = "This step") -> Iterator[None]:
    """Run a block; turn any exception into an ``st.error`` instead of a traceback.

    Streamlit's own control flow (``st.stop``, ``st.rerun``) derives from ``BaseException`` and passes through.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point is never to show a traceback
        show_error(exc, what=what)


# --- page frame and the shared sidebar ------------------------------------------------------------


def page_setup(title: str, icon: str = ":material/graphic_eq:") -> None:
    """``st.set_page_config`` with the app's layout; call first on every page."""
    st.set_page_config(page_title=f"{title} · Speech emotion", page_icon=icon, layout="wide")


def _sync(widget_key: str, shared_key: str) -> None:
    st.session_state[shared_key] = st.session_state[widget_key]


def data_folder_sidebar() -> Path:
    """The data-folder setting in the sidebar, remembered across pages; returns the folder.

    Defaults to ``$SER_DATA_DIR``, then ``data/``. The value lives in
    ``st.session_state["shared_data_dir"]`` so every page sees the same folder.
    """
    if DATA_KEY not in st.session_state:
        st.session_state[DATA_KEY] = str(data_dir())
    widget = f"_{DATA_KEY}_input"
    st.session_state[widget] = st.session_state[DATA_KEY]
    st.sidebar.text_input(
        "Data folder",
        key=widget,
        on_change=_sync,
        args=(widget, DATA_KEY),
        help="The folder holding the corpora (RAVDESS, TESS, SAVEE, CREMA-D, URDU, ASED, EMOVO), unpacked as downloaded. "
        "Default: $SER_DATA_DIR, then data/.",
    )
    if st.sidebar.button("Rescan the folder", key="shared_rescan", icon=":material/refresh:"):
        _scan.clear()
    try:
        return check_data_folder(st.session_state[DATA_KEY])
    except ParameterError as exc:  # outside what the operator allows: say so, and stay where we were allowed
        st.sidebar.error(str(exc), icon=":material/block:")
        st.session_state[DATA_KEY] = str(data_dir())
        return data_dir()


def model_sidebar() -> BundleInfo | None:
    """The model choice in the sidebar, remembered across pages; ``None`` when no bundle exists.

    Lists the bundles in ``$SER_MODELS_DIR`` (or ``models/``) and the active one (``$SER_MODEL``).
    """
    bundles = find_bundles()
    damaged = [b for b in list_bundles(models_dir(), include_damaged=True) if not b.ok]
    if damaged:  # listed, never allowed to break the page
        names = ", ".join(b.name for b in damaged[:5]) + (" ..." if len(damaged) > 5 else "")
        st.sidebar.warning(
            f"{len(damaged)} damaged bundle(s) left out: {names}. {damaged[0].name}: {damaged[0].error[:300]}",
            icon=":material/warning:",
        )
    if not bundles:
        st.sidebar.caption("No trained model found.")
        return None
    by_path = {str(b.path): b for b in bundles}
    if st.session_state.get(MODEL_KEY) not in by_path:
        st.session_state[MODEL_KEY] = str(bundles[0].path)
    widget = f"_{MODEL_KEY}_input"
    st.session_state[widget] = st.session_state[MODEL_KEY]
    choice = st.sidebar.selectbox(
        "Model",
        list(by_path),
        key=widget,
        format_func=lambda p: by_path[p].name + (" (active)" if is_active(by_path[p]) else ""),
        on_change=_sync,
        args=(widget, MODEL_KEY),
        help=f"Bundles found in {models_dir()}.",
    )
    return by_path[choice]


def page_link(page: str, label: str, icon: str | None = None) -> None:
    """``st.page_link`` to a page of this app, or plain text naming it if the page file is absent."""
    if (_APP_ROOT / page).is_file():
        try:
            st.page_link(page, label=label, icon=icon)
            return
        except StreamlitAPIException:  # the page was run on its own, not from Home.py
            pass
    st.markdown(f"- {label}" + ("" if (_APP_ROOT / page).is_file() else " (page not installed)"))


def pick_row(
    table: pd.DataFrame,
    *,
    key: str,
    label: str,
    column: str,
    show: list[str] | None = None,
    column_config: dict | None = None,
    limit: int = 1000,
    height: int | str = 360,
) -> pd.Series | None:
    """A table whose clicked row is also chosen in a select box below it; returns the chosen row.

    ``column`` holds a unique value per row (a file name or path). The select box lists the first
    ``limit`` rows (plus the clicked one) so it stays light with 11,000 files; clicking any row of
    the table works whatever its position. Session keys: ``{key}_table`` and ``{key}_select``.
    """
    values = table[column].astype(str).tolist()
    table_key, select_key = f"{key}_table", f"{key}_select"

    def _clicked() -> None:
        rows = st.session_state[table_key].selection.rows
        if rows and rows[0] < len(values):
            st.session_state[select_key] = values[rows[0]]

    st.dataframe(
        table[show] if show else table,
        key=table_key,
        on_select=_clicked,
        selection_mode="single-row",
        hide_index=True,
        column_config=column_config,
        height=height,
    )
    if not values:
        st.session_state.pop(select_key, None)
        return None
    options = values[:limit]
    current = st.session_state.get(select_key)
    if current is not None and current not in options:
        if current in values:
            options = [*options, current]
        else:
            del st.session_state[select_key]
    choice = st.selectbox(label, options, key=select_key, help="Or click a row in the table.")
    if len(values) > limit:
        st.caption(f"The list shows the first {limit:,} of {len(values):,}; click a row or narrow the filters for the rest.")
    return table.iloc[values.index(choice)] if choice is not None else None


def explain_missing_corpora(folder: Path, error: str | None = None) -> None:
    """Tell the user where to get each corpus and where to point the app."""
    st.info(
        (error + "\n\n" if error else "")
        + f"The app looks for the corpora under **{folder}**. Download any of them, unpack them there "
        "(any sub-folders, any audio format), or change the data folder in the sidebar. "
        "`SER_DATA_DIR` sets the default.",
        icon=":material/folder_open:",
    )
    st.dataframe(
        pd.DataFrame(
            {
                "corpus": list(SOURCES),
                "official source": [SOURCES[c] for c in SOURCES],
                "file names look like": [EXPECTED_LAYOUTS[c] for c in SOURCES],
            }
        ),
        hide_index=True,
    )


def explain_missing_model() -> None:
    """Tell the user how to get a model."""
    st.info(
        f"No trained model was found in **{models_dir()}**. Train one on the **Training** page, or from a "
        "terminal: `python -m ser_lib train --data DATA_FOLDER --out models/NAME`. The app uses "
        "`models/default` (or `$SER_MODEL`) when it exists.",
        icon=":material/model_training:",
    )


# --- cached data ------------------------------------------------------------------------------------


@dataclass
class Scan:
    """A data folder's manifest, or why there is none."""

    folder: Path
    manifest: pd.DataFrame
    skipped: list = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.manifest.empty


@st.cache_data(show_spinner="Scanning the data folder…", max_entries=16, ttl=900)
def _scan(folder: str, durations: bool) -> tuple[pd.DataFrame, list, str | None]:
    try:
        scan = find_corpora(folder, durations=durations)
        return scan.manifest, scan.skipped, None
    except SERError as exc:
        return pd.DataFrame(), [], str(exc)


def scan_corpora(folder: str | os.PathLike, *, durations: bool = True) -> Scan:
    """The corpora under ``folder`` (cached for 15 minutes per folder; the sidebar's Rescan clears it).

    ``durations=False`` skips reading every file header: enough for counts (Home).
    """
    folder = Path(folder).expanduser()
    manifest, skipped, error = _scan(str(folder.resolve()), durations)
    return Scan(folder, manifest, skipped, error)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _bundle(path: str, mtime: float) -> ModelBundle:
    return ModelBundle.load(path)


def load_bundle(path: str | os.PathLike) -> ModelBundle:
    """The bundle in ``path``, loaded once per process and reloaded when its model file changes."""
    p = Path(path).expanduser().resolve()
    return _bundle(str(p), model_mtime(p))


@st.cache_data(show_spinner=False, max_entries=64)
def _clip(path: str, mtime: float) -> tuple[np.ndarray, bytes]:
    y = load_audio(path, sr=SAMPLE_RATE, validate=False)
    return y, to_wav_bytes(y, sr=SAMPLE_RATE)


def load_clip(path: str | os.PathLike) -> tuple[np.ndarray, bytes]:
    """A corpus file at 16 kHz mono, and the same as WAV bytes for an audio player (cached)."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        mtime = 0.0
    return _clip(str(p), mtime)


@st.cache_data(show_spinner="Listening…", max_entries=128)
def _predict(path: str, mtime: float, digest: str, _data: bytes, name: str) -> ClipResult:
    return predict_upload(_bundle(path, mtime), _data, name=name)


def predict_clip(bundle_path: str | os.PathLike, data: bytes, name: str) -> ClipResult:
    """:func:`ser_lib.model_view.predict_upload` with the cached bundle, cached per clip and model."""
    p = Path(bundle_path).expanduser().resolve()
    digest = hashlib.sha1(data).hexdigest()
    return _predict(str(p), model_mtime(p), digest, data, name)


@st.cache_data(show_spinner="Computing features…", max_entries=64)
def _features(bundle_path: str | None, mtime: float, clip_path: str) -> tuple[np.ndarray, str]:
    if bundle_path is None:
        from ..frontends import NotebookFrontEnd

        fe = NotebookFrontEnd()
        return fe.features(fe.load(clip_path), fe.sample_rate, cropped=True), fe.kind
    bundle = _bundle(bundle_path, mtime)
    return bundle.source_features(clip_path), bundle.frontend.kind


def clip_features(clip_path: str, bundle_path: str | os.PathLike | None = None) -> tuple[np.ndarray, str]:
    """What a model's input layer sees for a corpus file, and the front end's kind (cached).

    Without ``bundle_path``: the notebook's 162 features (no model is loaded).
    """
    if bundle_path is None:
        return _features(None, 0.0, str(clip_path))
    p = Path(bundle_path).expanduser().resolve()
    return _features(str(p), model_mtime(p), str(clip_path))


@st.cache_data(show_spinner="Reading the saved evaluation…", max_entries=16)
def _saved_evaluation(path: str, mtime: float):
    return load_saved_evaluation(path)


def saved_evaluation(bundle_path: str | os.PathLike):
    """The evaluation saved with a bundle (``evaluation.json``), cached until the file changes."""
    p = Path(bundle_path).expanduser().resolve()
    file = p / "evaluation.json"
    return _saved_evaluation(str(p), file.stat().st_mtime if file.is_file() else 0.0)


def max_upload_mb() -> int:
    """The server's upload limit per file (``server.maxUploadSize`` in ``.streamlit/config.toml``), in MB."""
    return int(st.get_option("server.maxUploadSize"))


@st.cache_data(show_spinner="Building an example call from held-out clips…", max_entries=4, ttl=3600)
def _example_call(folder: str, model_path: str, mtime: float, model_name: str) -> ExampleCall | None:
    manifest, _, error = _scan(folder, False)
    if error or manifest.empty:
        return None
    return build_example_call(manifest, read_card(model_path), model=model_name)


def example_call(folder: str | os.PathLike, info: BundleInfo) -> ExampleCall | None:
    """:func:`ser_lib.app.call_view.example_call` from the data folder's held-out clips (cached)."""
    p = Path(info.path).expanduser().resolve()
    card = p / "card.json"
    mtime = card.stat().st_mtime if card.is_file() else 0.0
    return _example_call(str(Path(folder).expanduser().resolve()), str(p), mtime, info.name)


def sync_audio(container_key: str, *, rate: float, position_s: float | None = None) -> None:
    """Keep the ``<audio>`` element inside ``st.container(key=container_key)`` in step with a replay:
    play it at ``rate`` (the browser keeps the pitch), and move it to ``position_s`` when it has drifted
    more than a second from it. Runs a few lines of JavaScript in the page (no iframe)."""
    pos = "null" if position_s is None else f"{float(position_s):.2f}"
    script = f"""<script>
(function () {{
  var rate = {float(rate):.3f}, pos = {pos}, n = 0;
  var timer = setInterval(function () {{
    var a = document.querySelector(".st-key-{container_key} audio");
    n += 1;
    if (!a) {{ if (n > 100) clearInterval(timer); return; }}
    clearInterval(timer);
    a.preservesPitch = true;
    if (a.playbackRate !== rate) a.playbackRate = rate;
    if (pos !== null && a.readyState > 0 && Math.abs(a.currentTime - pos) > 1.0) a.currentTime = pos;
    a.dataset.replayRate = String(rate);
    if (a.paused && !a.ended) a.play().catch(function () {{}});
  }}, 100);
}})();
</script>"""
    st.html(script, unsafe_allow_javascript=True)
