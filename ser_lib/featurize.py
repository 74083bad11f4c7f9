"""Featurising many files: every core, a progress bar, and an on-disk cache.

:func:`featurize_files` maps a picklable *extractor* (``path -> np.ndarray``) over files in a
process pool, reading and writing :class:`~ser_lib.cache.FeatureCache` so a second run costs
seconds. Files that cannot be read are reported, not fatal.

Extractors provided here:

- :class:`NotebookExtractor`: the notebook's 162 features (optionally its three augmented rows).
- :class:`LogMelExtractor`: a fixed-length log-mel (optionally through the telephone channel).
- :class:`EncoderExtractor`: Whisper encoder frames (clean or through the telephone channel).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .augment import PitchShift, notebook_variants, telephone_channel
from .cache import FeatureCache
from .errors import ParameterError, SERError
from .frontends import EncoderFrontEnd, LogMelFrontEnd, NotebookFrontEnd
from .progress import ProgressCallback, report

logger = logging.getLogger(__name__)


def file_seed(path: str, seed: int) -> int:
    """A per-file seed, so a file's augmentation does not depend on processing order."""
    return (zlib.crc32(os.path.basename(path).encode()) ^ (seed * 2654435761)) & 0xFFFFFFFF


#: Bumped when what an extractor computes for the same settings changes (old cache entries then
#: no longer match). 2: every front end decodes through its own ``load`` (one path with serving).
EXTRACTOR_VERSION = 2


@dataclass(frozen=True)
class NotebookExtractor:
    """The notebook's rows for one file: [shape=(1 or 3, 162)].

    Decodes and crops with :meth:`NotebookFrontEnd.load` and computes the features with
    :meth:`NotebookFrontEnd.features`, exactly as a bundle does when it serves the file; the
    augmented rows (``augment``) are the notebook's noise and stretch-plus-pitch copies.
    """

    frontend: NotebookFrontEnd = field(default_factory=NotebookFrontEnd)
    augment: bool = False
    seed: int = 0

    def settings(self) -> dict:
        return {
            "extractor": "notebook",
            **self.frontend.settings(),
            "augment": self.augment,
            "seed": self.seed,
            "version": EXTRACTOR_VERSION,
        }

    def __call__(self, path: str) -> np.ndarray:
        fe = self.frontend
        y = fe.load(path)
        if not self.augment:
            return fe.features(y, fe.sample_rate, cropped=True)[None]
        rng = np.random.default_rng(file_seed(path, self.seed))
        return np.stack([fe.features(v, fe.sample_rate, cropped=True) for v in notebook_variants(y, fe.sample_rate, rng=rng)])


@dataclass(frozen=True)
class LogMelExtractor:
    """Log-mel of one file's centre ``seconds`` [shape=(n_frames, n_mels)], float16, optionally telephoned."""

    frontend: LogMelFrontEnd = field(default_factory=LogMelFrontEnd)
    view: str = "clean"

    def settings(self) -> dict:
        return {"extractor": "logmel", **self.frontend.settings(), "view": self.view, "version": EXTRACTOR_VERSION}

    def __call__(self, path: str) -> np.ndarray:
        fe = self.frontend
        y = fe.load(path)
        if self.view == "telephone":
            y = telephone_channel(y, sr=fe.sample_rate)
        return fe.features(y, fe.sample_rate).astype(np.float16)


#: The views of a clip the encoder head can be trained on.
ENCODER_VIEWS: tuple[str, ...] = ("clean", "telephone", "pitch", "pitch+telephone")


@dataclass(frozen=True)
class EncoderExtractor:
    """Encoder frames of one file [shape=(t, dim)], float16, for one *view* of the clip.

    Views: ``clean``; ``telephone`` (8 kHz band-limit and mu-law); ``pitch`` (shifted by 1-3
    semitones up or down, chosen per file from ``seed``: a cheap stand-in for other speakers'
    voices); ``pitch+telephone`` (both).
    """

    backbone: str = "whisper-base"
    view: str = "clean"
    threads: int = 1
    seed: int = 0

    def __post_init__(self):
        if self.view not in ENCODER_VIEWS:
            raise ParameterError(f"Unknown view {self.view!r}: expected one of {ENCODER_VIEWS}")

    @property
    def frontend(self) -> EncoderFrontEnd:
        return EncoderFrontEnd(backbone=self.backbone)

    def settings(self) -> dict:
        from .backbone import weights_sha256

        # "version": 1 kept: the encoder path decoded through the same load_audio call before, so
        # cached frames stay valid.
        out = {
            "extractor": "encoder",
            "backbone": self.backbone,
            "sha256": weights_sha256(self.backbone),
            "view": self.view,
            "version": 1,
        }
        if "pitch" in self.view:
            out["seed"] = self.seed
        return out

    def __call__(self, path: str) -> np.ndarray:
        fe = self.frontend
        y = fe.load(path)
        if "pitch" in self.view:
            rng = np.random.default_rng(file_seed(path, self.seed))
            steps = float(rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 3.0))
            y = PitchShift(min_semitones=steps, max_semitones=steps)(y, fe.sample_rate, rng=rng)
        if "telephone" in self.view:
            y = telephone_channel(y, sr=fe.sample_rate)
        return fe.features(y, fe.sample_rate, threads=self.threads).astype(np.float16)


def _run_one(extractor: Callable[[str], np.ndarray], cache: FeatureCache | None, path: str):
    if cache is not None:
        hit = cache.get(path)
        if hit is not None:
            return hit, None
    try:
        value = extractor(path)
    except SERError as exc:
        return None, str(exc)
    if cache is not None:
        cache.put(path, value)
    return value, None


class _Task:
    def __init__(self, extractor, cache):
        self.extractor, self.cache = extractor, cache

    def __call__(self, path):
        return _run_one(self.extractor, self.cache, path)


def featurize_files(
    paths: Sequence[str],
    extractor: Callable[[str], np.ndarray],
    *,
    n_jobs: int | None = None,
    cache: bool | str = True,
    progress: bool | ProgressCallback = True,
    desc: str = "featurising",
) -> tuple[list[np.ndarray | None], list[tuple[str, str]]]:
    """Run ``extractor`` over ``paths`` on every core, with a progress bar and the disk cache.

    Parameters
    ----------
    paths : sequence of str
    extractor : picklable callable ``path -> np.ndarray`` with a ``settings()`` method
    n_jobs : int or None
        Worker processes (default: every core). ``1`` runs in this process.
    cache : bool or str
        ``True`` for the default cache folder, a folder path, or ``False`` for none.
    progress : bool or :data:`~ser_lib.progress.ProgressCallback`
        ``True`` for a terminal progress bar, or a callback receiving a
        :class:`~ser_lib.progress.Progress` (stage ``"featurise"``, in files; ``info["desc"]``).

    Returns
    -------
    values : list of np.ndarray or None (None where the file failed)
    failures : list of (path, error message)
    """
    store = None
    if cache:
        store = FeatureCache(extractor.settings(), root=None if cache is True else cache)
    n_jobs = n_jobs or os.cpu_count() or 1
    total = len(paths)
    values: list[np.ndarray | None] = [None] * total
    failures: list[tuple[str, str]] = []
    todo = list(range(total))
    if store is not None:  # cheap hits first, in this process
        todo = []
        for i, p in enumerate(paths):
            hit = store.get(p)
            if hit is None:
                todo.append(i)
            else:
                values[i] = hit
    bar = tqdm(total=total, desc=desc, unit="file", disable=progress is not True, initial=total - len(todo))
    callback = progress if callable(progress) else None
    done = total - len(todo)
    report(callback, "featurise", done, total, desc=desc)
    task = _Task(extractor, store)

    def results() -> Iterable:
        if n_jobs == 1 or len(todo) < 8:
            return (task(paths[i]) for i in todo)
        # loky workers are started without re-running __main__ (safe under Streamlit, stdin,
        # notebooks) and are reused between calls, so a worker's encoder stays loaded.
        batch = max(1, min(32, len(todo) // (n_jobs * 8)))
        parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator", batch_size=batch)
        return parallel(delayed(task)(paths[i]) for i in todo)

    for i, (value, error) in zip(todo, results(), strict=True):
        values[i] = value
        if error:
            failures.append((paths[i], error))
        done += 1
        bar.update(1)
        report(callback, "featurise", done, total, desc=desc)
    bar.close()
    if failures:
        logger.warning("%d file(s) could not be featurised, e.g. %s: %s", len(failures), *failures[0])
    return values, failures
