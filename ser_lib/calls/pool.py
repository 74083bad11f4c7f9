"""Where the calls of an archive are analysed: this process, local worker processes, or Ray.

An *engine* takes the calls to analyse (:class:`CallJob`: the call's id and its path) and yields
one :class:`CallOutcome` per call as each finishes, in whatever order they finish. It never writes
anything: the caller (:func:`ser_lib.calls.run_archive`) writes every outcome to the call store
itself, one call per transaction, so that each call is written exactly once, by one process.

- :func:`analyse_local`: in this process (``workers=1``) or in a pool of ``spawn``-ed worker
  processes that each load the model once (:class:`concurrent.futures.ProcessPoolExecutor`).
- :func:`ser_lib.calls.ray_engine.analyse_on_ray`: Ray actors, each holding one loaded model, on
  this machine or a cluster (an optional install: ``pip install -r requirements-cluster.txt``).

What a worker needs to analyse a call is an :class:`AnalysisSpec` (the model's folder, the parties,
the timeline settings): small and picklable, sent once per worker. A call that cannot be analysed
for a reason the library names (unreadable, truncated, empty: a :class:`~ser_lib.errors.SERError`)
becomes an outcome with its ``error``; anything else is a bug and stops the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SERError
from .offline import analyze_call
from .result import CallAnalysis
from .settings import DEFAULT_ROLES, TimelineSettings

logger = logging.getLogger(__name__)

#: Engines of ``analyze-calls --engine``.
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class CallJob:
    """One call to analyse: its id in the store (the path relative to the archive) and its path."""

    call_id: str
    path: str


@dataclass(frozen=True)
class AnalysisSpec:
    """Everything a worker needs to analyse calls, besides the calls.

    Attributes
    ----------
    model : str
        The model bundle's folder (every worker loads it from there: on a cluster, the same path
        on every node).
    roles : tuple of str or None
        The parties of a stereo call in channel order (as :func:`ser_lib.calls.analyze_call`).
    settings : TimelineSettings or None
        Window, hop and voice-activity settings.
    uncertain_below : float or None
        The confidence below which windows and segments are "uncertain", as resolved by the caller
        (``--uncertain-below``, ``$SER_UNCERTAIN_BELOW``, the card); None: the card's.
    """

    model: str
    roles: tuple[str, ...] | None = tuple(DEFAULT_ROLES)
    settings: TimelineSettings | None = None
    uncertain_below: float | None = None


@dataclass
class CallOutcome:
    """What analysing one call gave: the analysis, or the reason it failed.

    Attributes
    ----------
    call_id, path : str
        As in the :class:`CallJob`.
    result : CallAnalysis or None
        None when the call failed.
    error : str
        Why it failed (empty when it did not).
    seconds : float
        Wall time the worker spent on the call.
    worker : str
        Who analysed it (``pid`` or ``node:pid``).
    attempts : int
        How many times it was started (more than 1 when a worker died while analysing it).
    """

    call_id: str
    path: str
    result: CallAnalysis | None = None
    error: str = ""
    seconds: float = 0.0
    worker: str = field(default_factory=lambda: str(os.getpid()))
    attempts: int = 1

    @property
    def failed(self) -> bool:
        return self.result is None


def analyse_job(bundle, spec: AnalysisSpec, job: CallJob) -> CallOutcome:
    """Analyse one call with a loaded ``bundle``; a library error becomes the outcome's ``error``."""
    start = time.perf_counter()
    try:
        result = analyze_call(job.path, bundle=bundle, roles=spec.roles, settings=spec.settings)
        return CallOutcome(job.call_id, job.path, result, seconds=time.perf_counter() - start)
    except SERError as exc:
        logger.warning("%s: %s", job.call_id, exc)
        return CallOutcome(job.call_id, job.path, None, error=str(exc), seconds=time.perf_counter() - start)


def load_bundle(spec: AnalysisSpec):
    """The model of ``spec``, loaded (what each worker does once)."""
    from ..bundle import ModelBundle

    bundle = ModelBundle.load(spec.model)
    if spec.uncertain_below is not None:
        bundle.uncertain_below = spec.uncertain_below
    return bundle


# --- local worker processes ------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(spec: AnalysisSpec, log_level: int) -> None:
    """A pool worker's start: load the model once."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s[worker %(process)d]: %(message)s")
    _worker["spec"] = spec
    _worker["bundle"] = load_bundle(spec)


def _work(job: CallJob) -> CallOutcome:
    return analyse_job(_worker["bundle"], _worker["spec"], job)


def analyse_local(
    jobs: Iterable[CallJob],
    *,
    spec: AnalysisSpec,
    workers: int = 1,
    bundle=None,
) -> Iterator[CallOutcome]:
    """Analyse ``jobs`` here (``workers=1``) or in ``workers`` processes; yield each outcome as it finishes.

    Parameters
    ----------
    jobs : iterable of CallJob
    spec : AnalysisSpec
    workers : int
        1: in this process, in order (with ``bundle`` if given, else ``spec.model`` loaded once).
        More: that many ``spawn``-ed processes, each loading the model once; at most two calls per
        worker are handed out ahead, so stopping early (closing the generator) wastes little.
    bundle : ModelBundle or None
        The already loaded model, for ``workers=1``.

    Raises
    ------
    SERError
        When a worker process dies (killed, out of memory): the outcomes yielded so far stand,
        the calls in progress are named.
    """
    if isinstance(jobs, Sequence):
        if not jobs:
            return
        workers = min(workers, len(jobs))
    if workers <= 1:
        bundle = bundle or load_bundle(spec)
        for job in jobs:
            yield analyse_job(bundle, spec, job)
        return
    import multiprocessing

    todo = iter(jobs)
    running: dict[Future, CallJob] = {}
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),  # never fork a process holding ONNX sessions and threads
        initializer=_init_worker,
        initargs=(spec, logging.getLogger().getEffectiveLevel()),
    )
    first = True
    try:
        while True:
            # the workers are started by the first submissions: with their share of the CPUs for OpenMP and BLAS
            with worker_threads(max(1, (os.cpu_count() or 1) // workers)) if first else contextlib.nullcontext():
                for job in todo:
                    running[pool.submit(_work, job)] = job
                    if len(running) >= 2 * workers:
                        break
            first = False
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    names = ", ".join(sorted(j.call_id for j in [job, *running.values()]))
                    raise SERError(
                        f"A worker process died while analysing {names} (killed, or out of memory): the calls finished "
                        "so far are saved; run the same command again to continue with the rest."
                    ) from None
                yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: Thread-count variables a worker process inherits (OpenMP, OpenBLAS, MKL), as Ray sets OMP_NUM_THREADS for its workers.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def worker_threads(threads: int) -> Iterator[None]:
    """While open, processes started from here get ``threads`` OpenMP/BLAS threads (unless the variable is set).

    Measured on 2 CPUs with 2 worker processes: 6.8-6.9 s per 60 s call with one thread each, against
    7.7-9.2 s with the libraries' default (one thread per CPU in every process, so 4 on 2 CPUs).
    """
    added = [name for name in THREAD_VARIABLES if name not in os.environ]
    for name in added:
        os.environ[name] = str(threads)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def jobs_for(paths: Sequence[Path], root: Path) -> list[CallJob]:
    """One :class:`CallJob` per path: the id is the path relative to ``root`` (with ``/``)."""
    return [CallJob(Path(p).relative_to(root).as_posix(), str(Path(p).resolve())) for p in paths]
