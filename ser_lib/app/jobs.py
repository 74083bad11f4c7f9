"""Long work (training, evaluating a bundle on a data folder) off the page's thread.

A :class:`BackgroundJob` runs one function in a daemon thread and records its progress events,
so a user interface can poll :meth:`BackgroundJob.snapshot` without blocking, and cancel it.
The Training and Evaluation pages keep one job per user in ``st.session_state``; nothing here
is global. No Streamlit import: the job works the same from a script or a test.

Training runs in a worker *process* that the job's thread supervises (events come back over a
queue, cancelling sets a shared event). A thread alone is not safe under Streamlit: after every
script run (a page polling its progress once a second) Streamlit calls
``keras.backend.clear_session()``, which resets Keras' global state for every thread and breaks
a model being built in another one (``The name "conv1d" is used 2 times in the model``). The
process also keeps featurising and fitting from competing with the server for the GIL.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ParameterError, SERError
from ..io import check_bundle_target, holds_bundle, release_folder, reserve_folder
from ..progress import Progress

logger = logging.getLogger(__name__)

Report = Callable[[dict], None]
ShouldStop = Callable[[], bool]

#: Below this many files, training featurises in its own thread instead of a process pool.
SMALL_SET: int = 400
#: What the training bar says before its first event: the worker process imports TensorFlow and
#: loads the encoder first, which takes about 20 s before any file is featurised.
TRAINING_STARTS: str = "starting: loading TensorFlow and the encoder (about 20 s before the first file)"
TRAINING_STARTS_NO_ENCODER: str = "starting: loading TensorFlow (about 15 s before the first file)"
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
    #: Seconds left in the current counted stage (files or epochs), from its rate so far; None when unknown.
    eta_s: float | None = None

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

    def __init__(self, target: Callable[[Report, ShouldStop], Any], *, name: str = "job", starting: str = "starting"):
        self._target = target
        self.name = name
        #: What the bar says before the first event (training: loading TensorFlow and the encoder).
        self.starting = starting
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = "pending"
        self._last: dict = {}
        self._work: dict = {}  # the last event that measured work done (not the closing "done")
        self._stage_clock: dict[tuple, tuple[float, float]] = {}  # (stage, desc) -> (time, done) when first seen
        self._epochs: list[dict] = []
        self._result: Any = None
        self._error: str | None = None
        self._extra: dict = {}
        self._started = self._finished = None
        self._thread: threading.Thread | None = None

    # --- control --------------------------------------------------------------------------
    def start(self) -> BackgroundJob:
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
            stage = event.get("stage")
            if stage != "done":
                self._work = dict(event)
            key = (stage, event.get("desc"))
            if key not in self._stage_clock and "done" in event:
                self._stage_clock[key] = (time.monotonic(), float(event.get("done") or 0))
            if stage == "epoch":
                self._epochs.append(dict(event))

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
            error = f"Unexpected error ({type(exc).__name__}: {exc}); details are in the server log."
            result, state = None, "failed"
        with self._lock:
            self._result, self._state, self._error = result, state, error
            self._finished = time.monotonic()

    # --- reading -------------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        with self._lock:
            last, work, epochs = dict(self._last), dict(self._work), list(self._epochs)
            state, result, error, extra = self._state, self._result, self._error, dict(self._extra)
            clock = dict(self._stage_clock)
            now = time.monotonic()
            end = self._finished or now
            elapsed = end - self._started if self._started else 0.0
        stage = last.get("stage", "starting")
        fraction, message = _progress(last, stage, starting=self.starting)
        eta = None
        if state == "done":
            fraction, message = 1.0, "finished"
        elif state == "cancelled":
            # the bar stays where the work stopped: a cancelled run never reads "finished" at 100 %
            fraction, message = _progress(work, work.get("stage", "starting"), starting=self.starting)
            message = f"cancelled ({message})" if work else "cancelled before it started"
        elif state == "failed":
            message = "failed"
        elif (stage, last.get("desc")) in clock and stage != "done":
            t0, done0 = clock[(stage, last.get("desc"))]
            done, total = float(last.get("done") or 0), float(last.get("total") or 0)
            if done > done0 and total > done:
                eta = (now - t0) / (done - done0) * (total - done)
        frame = pd.DataFrame(epochs).drop(columns=["stage"], errors="ignore")
        return JobSnapshot(state, stage, fraction, message, frame, error, result, elapsed, extra, eta)


def progress_event(step: Progress) -> dict:
    """A library :class:`~ser_lib.progress.Progress` as the job's event dict (what crosses the
    worker's queue and what :meth:`BackgroundJob.snapshot` reads): stage, done, total and the
    step's ``info``; epochs also as ``epoch`` / ``epochs``."""
    event = {"stage": step.stage, "done": step.done, "total": step.total, **step.info}
    if step.stage == "epoch":
        event.update(epoch=int(step.done), epochs=int(step.total))
    return event


def _progress(event: dict, stage: str, *, starting: str = "starting") -> tuple[float, str]:
    """Overall fraction done and a line of text for a progress bar.

    Featurising counts for the first 40 %, epochs for the next 55 %, evaluation for the rest.
    Before the first event the bar says ``starting``.
    """
    if stage == "featurise":
        done, total = event.get("done", 0), max(event.get("total", 1), 1)
        what = event.get("desc", "features")
        return 0.4 * done / total, f"{what}: {done}/{total} files"
    if stage == "epoch":
        e, n = event.get("epoch", 0), max(event.get("epochs", 1), 1)
        acc = event.get("val_accuracy", event.get("accuracy"))
        tail = f", accuracy {acc:.2f}" if isinstance(acc, (int, float)) else ""
        return 0.4 + 0.55 * e / n, f"epoch {e}/{n}{tail}"
    if stage == "evaluate":
        return 0.96, "evaluating on the held-out speakers"
    if stage == "predict":
        done, total = event.get("done", 0), max(event.get("total", 1), 1)
        return done / total, f"evaluated {done}/{total} files"
    if stage == "done":
        return 1.0, "finished"
    return 0.0, starting


# --- the two jobs the pages run --------------------------------------------------------------------


@dataclass
class TrainingOutcome:
    """What a finished training run hands back to the page (the model itself stays on disk)."""

    evaluation: Any  # EvaluationResult on the held-out speakers, or None (cancelled, no test split)
    history: pd.DataFrame
    seconds: float
    stopped: bool
    split: str
    test_speakers: list[str]
    saved_to: str | None = None
    partial: str | None = None  # a cancelled run's bundle, kept aside until the user saves or drops it


def _train_worker(manifest, config, save_to, overwrite, events, stop) -> None:
    """Runs in the worker process: train, save, and send every event and the outcome back."""
    logging.basicConfig(level=logging.WARNING)

    def progress(step) -> None:
        events.put(progress_event(step))
        if stop.is_set() and step.stage == "featurise":
            raise JobCancelled("training cancelled while featurising")

    try:
        from ..training import train

        result = train(manifest, config, progress=progress, should_stop=stop.is_set)
        saved = partial = None
        if result.stopped:
            folder = Path(tempfile.mkdtemp(prefix="ser-partial-")) / (Path(save_to).name if save_to else "partial")
            partial = str(save_bundle(result, folder))
        elif save_to is not None:
            saved = str(save_bundle(result, save_to, overwrite=overwrite))
        outcome = TrainingOutcome(
            result.evaluation,
            result.history,
            result.seconds,
            result.stopped,
            result.split.kind,
            list(result.split.test_speakers),
            saved,
            partial,
        )
        events.put({"stage": "result", "outcome": outcome})
    except JobCancelled:
        events.put({"stage": "cancelled"})
    except SERError as exc:
        events.put({"stage": "error", "message": str(exc)})
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent, then end
        events.put({"stage": "crash", "message": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


def training_job(manifest: pd.DataFrame, config, *, save_to: Path | None = None, overwrite: bool = False) -> BackgroundJob:
    """A not-yet-started job that trains with ``config`` on ``manifest`` in a worker process and,
    unless cancelled, saves the bundle (with its evaluation) into ``save_to``.

    Its result is a :class:`TrainingOutcome`.
    """
    if getattr(config, "n_jobs", 0) is None and len(manifest) < SMALL_SET:
        config = replace(config, n_jobs=1)  # a process pool costs more than it saves here
    # claim the name now, atomically: a second user asking for it is told at once, not after training
    token = reserve_folder(save_to, overwrite=overwrite, hint="tick 'overwrite'") if save_to is not None else None

    def target(report: Report, should_stop: ShouldStop) -> TrainingOutcome:
        try:
            return _supervise(report, should_stop)
        finally:
            if save_to is not None:
                release_folder(save_to, token)  # a no-op once the saved bundle replaced the claim

    def _supervise(report: Report, should_stop: ShouldStop) -> TrainingOutcome:
        ctx = get_context("spawn")
        events, stop = ctx.Queue(), ctx.Event()
        worker = ctx.Process(
            target=_train_worker, args=(manifest, config, save_to, overwrite, events, stop), name="ser-training", daemon=True
        )
        worker.start()
        heard = False
        try:
            while True:
                if should_stop():
                    if not heard:  # still importing: nothing to clean up, no reason to wait
                        worker.terminate()
                        raise JobCancelled("training cancelled before it started")
                    stop.set()
                try:
                    event = events.get(timeout=0.2)
                except queue.Empty:
                    if not worker.is_alive() and events.empty():
                        raise SERError(
                            f"The training process ended without a result (exit code {worker.exitcode}); "
                            "it may have run out of memory. Try fewer corpora or a smaller batch."
                        ) from None
                    continue
                heard = True
                stage = event.get("stage")
                if stage == "result":
                    return event["outcome"]
                if stage == "cancelled":
                    raise JobCancelled("training cancelled")
                if stage == "error":
                    raise SERError(event["message"])
                if stage == "crash":
                    logger.error("The training process failed:\n%s", event.get("traceback", ""))
                    raise RuntimeError(event["message"])
                report(event)
        finally:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)

    starting = TRAINING_STARTS if getattr(config, "model_type", "") == "encoder_head" else TRAINING_STARTS_NO_ENCODER
    return BackgroundJob(target, name="training", starting=starting)


def save_bundle(result, folder: Path, *, overwrite: bool = False) -> Path:
    """Save a :class:`~ser_lib.training.TrainResult`'s bundle with its evaluation into ``folder``."""
    evaluation = result.evaluation.to_json() if result.evaluation is not None else None
    return result.bundle.save(Path(folder), evaluation=evaluation, overwrite=overwrite)


def keep_partial(outcome: TrainingOutcome, folder: Path, *, overwrite: bool = False) -> Path:
    """Move a cancelled run's bundle (``outcome.partial``) to ``folder``; returns the folder."""
    if not outcome.partial or not Path(outcome.partial).is_dir():
        raise ParameterError("This run kept no partial model to save.")
    folder = Path(folder)
    check_bundle_target(folder, overwrite=overwrite, hint="tick 'overwrite'")
    if holds_bundle(folder):
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(outcome.partial, folder)
    outcome.partial, outcome.saved_to = None, str(folder)
    return folder


def evaluation_job(bundle, manifest: pd.DataFrame) -> BackgroundJob:
    """A not-yet-started job that scores ``bundle`` on every file of ``manifest`` (in a thread:
    it only runs an already-built model, which Keras' session resets do not disturb)."""

    def target(report: Report, should_stop: ShouldStop):
        from ..evaluation import evaluate_bundle

        def progress(step) -> None:
            report(progress_event(step))
            if should_stop():
                raise JobCancelled("evaluation cancelled")

        return evaluate_bundle(bundle, manifest, progress=progress, meta={"data": "data folder"})

    return BackgroundJob(target, name="evaluation", starting="loading the model and reading the first clips")
