"""Long work (training, evaluating a bundle on a data folder) in a background thread.

A :class:`BackgroundJob` runs one function in a daemon thread and records its progress events,
so a user interface can poll :meth:`BackgroundJob.snapshot` without blocking, and cancel it.
The Training and Evaluation pages keep one job per user in ``st.session_state``; nothing here
is global. No Streamlit import: the job works the same from a script or a test.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .errors import ParameterError, SERError

logger = logging.getLogger(__name__)

Report = Callable[[dict], None]
ShouldStop = Callable[[], bool]

#: Below this many files, training featurises in its own thread instead of a process pool.
SMALL_SET: int = 400
#: Job states, in the order they happen.
STATES: tuple[str, ...] = ("pending", "running", "done", "cancelled", "failed")


class JobCancelled(SERError):
    """Raised inside a job's function (through its progress callback) when the user cancelled."""


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state, for drawing."""

    state: str
    stage: str
    fraction: float
    message: str
    epochs: pd.DataFrame
    error: str | None
    result: Any
    elapsed: float
    extra: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")


class BackgroundJob:
    """Run ``target(report, should_stop)`` in a daemon thread.

    ``target`` calls ``report(event_dict)`` as it goes (see :func:`ser_lib.training.train` for
    the events) and polls ``should_stop()``; whatever it returns becomes :attr:`result`.
    A :class:`~ser_lib.errors.SERError` it raises is kept as a message for the user; any other
    exception is logged with its traceback and reported as an unexpected failure.
    """

    def __init__(self, target: Callable[[Report, ShouldStop], Any], *, name: str = "job"):
        self._target = target
        self.name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = "pending"
        self._last: dict = {}
        self._epochs: list[dict] = []
        self._result: Any = None
        self._error: str | None = None
        self._extra: dict = {}
        self._started = self._finished = None
        self._thread: threading.Thread | None = None

    # --- control --------------------------------------------------------------------------
    def start(self) -> "BackgroundJob":
        with self._lock:
            if self._state != "pending":
                raise ParameterError(f"Job {self.name!r} was already started (state={self._state})")
            self._state = "running"
            self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"ser-{self.name}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next check (training: after the current batch)."""
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.snapshot().finished

    # --- the thread ----------------------------------------------------------------------
    def report(self, event: dict) -> None:
        """Record a progress event (called from the job's thread)."""
        with self._lock:
            self._last = dict(event)
            if event.get("stage") == "epoch":
                self._epochs.append(dict(event))
        if self._stop.is_set() and event.get("stage") in ("features", "evaluate-file"):
            raise JobCancelled(f"{self.name} cancelled")

    def set_extra(self, **values) -> None:
        with self._lock:
            self._extra.update(values)

    def _run(self) -> None:
        try:
            result = self._target(self.report, self.should_stop)
            state, error = ("cancelled" if self._stop.is_set() else "done"), None
        except JobCancelled:
            result, state, error = None, "cancelled", None
        except SERError as exc:
            result, state, error = None, "failed", str(exc)
        except Exception as exc:  # a bug, not the user's fault: keep the details in the log
            logger.error("%s failed:\n%s", self.name, traceback.format_exc())
            result, state, error = None, "failed", f"Unexpected error ({type(exc).__name__}: {exc}); details are in the server log."
        with self._lock:
            self._result, self._state, self._error = result, state, error
            self._finished = time.monotonic()

    # --- reading -------------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        with self._lock:
            last, epochs = dict(self._last), list(self._epochs)
            state, result, error, extra = self._state, self._result, self._error, dict(self._extra)
            end = self._finished or time.monotonic()
            elapsed = end - self._started if self._started else 0.0
        stage = last.get("stage", "starting")
        fraction, message = _progress(last, stage)
        if state == "done":
            fraction, message = 1.0, "finished"
        frame = pd.DataFrame(epochs).drop(columns=["stage"], errors="ignore")
        return JobSnapshot(state, stage, fraction, message, frame, error, result, elapsed, extra)


def _progress(event: dict, stage: str) -> tuple[float, str]:
    """Overall fraction done and a line of text for a progress bar.

    Featurising counts for the first 40 %, epochs for the next 55 %, evaluation for the rest.
    """
    if stage == "features":
        done, total = event.get("done", 0), max(event.get("total", 1), 1)
        what = event.get("what", "features")
        return 0.4 * done / total, f"{what}: {done}/{total} files"
    if stage == "epoch":
        e, n = event.get("epoch", 0), max(event.get("epochs", 1), 1)
        acc = event.get("val_accuracy", event.get("accuracy"))
        tail = f", accuracy {acc:.2f}" if isinstance(acc, (int, float)) else ""
        return 0.4 + 0.55 * e / n, f"epoch {e}/{n}{tail}"
    if stage == "evaluate":
        return 0.96, "evaluating on the held-out speakers"
    if stage == "evaluate-file":
        done, total = event.get("done", 0), max(event.get("total", 1), 1)
        return done / total, f"evaluated {done}/{total} files"
    if stage == "done":
        return 1.0, "finished"
    return 0.0, "starting"


# --- the two jobs the pages run --------------------------------------------------------------------


def training_job(manifest: pd.DataFrame, config, *, save_to: Path | None = None, overwrite: bool = False) -> BackgroundJob:
    """A not-yet-started job that trains with ``config`` on ``manifest`` and, unless cancelled,
    saves the bundle (with its evaluation) into ``save_to``.

    Its result is the :class:`~ser_lib.training.TrainResult`; ``extra["saved_to"]`` names the folder.
    """

    if getattr(config, "n_jobs", 0) is None and len(manifest) < SMALL_SET:
        config = replace(config, n_jobs=1)  # a process pool costs more than it saves here

    def target(report: Report, should_stop: ShouldStop):
        from .training import train

        result = train(manifest, config, progress=report, should_stop=should_stop)
        if save_to is not None and not result.stopped:
            job.set_extra(saved_to=str(save_bundle(result, save_to, overwrite=overwrite)))
        return result

    job = BackgroundJob(target, name="training")
    return job


def save_bundle(result, folder: Path, *, overwrite: bool = False) -> Path:
    """Save a :class:`~ser_lib.training.TrainResult`'s bundle with its evaluation into ``folder``."""
    evaluation = result.evaluation.to_json() if result.evaluation is not None else None
    return result.bundle.save(Path(folder), evaluation=evaluation, overwrite=overwrite)


def evaluation_job(bundle, manifest: pd.DataFrame) -> BackgroundJob:
    """A not-yet-started job that scores ``bundle`` on every file of ``manifest``."""

    def target(report: Report, should_stop: ShouldStop):
        from .evaluation import evaluate_bundle

        def progress(done: int, total: int) -> None:
            report({"stage": "evaluate-file", "done": done, "total": total})

        return evaluate_bundle(bundle, manifest, progress=progress, meta={"data": "data folder"})

    return BackgroundJob(target, name="evaluation")
