"""The Ray engine of ``analyze-calls --engine ray``: an archive's calls on Ray actors, here or on a cluster.

The only module of the package that imports Ray, and only when called (Ray is an optional install:
``pip install -r requirements-cluster.txt``).

How it runs
-----------
- ``workers`` actors (:class:`_Analyser`, one CPU each) each load the model once and analyse one
  call at a time; the driver (this process) lists the files once, hands each free actor the next
  call's *path* and receives its :class:`~ser_lib.calls.pool.CallOutcome` (the
  :class:`~ser_lib.calls.CallAnalysis`, or the library error that failed it). The driver, not the
  actors, writes to the store, so every call is written exactly once.
- An actor holds one call at a time, so when an actor dies (its process killed, its node lost) the
  one call it held is known: a new actor takes its place and the call is handed out again, up to
  :data:`MAX_ATTEMPTS` times in all; a call that kills its worker every time is recorded as failed
  with that reason, and the run goes on. Nothing is lost and nothing is written twice.
- Where: ``address=None`` starts a Ray instance on this machine (``ray.init(num_cpus=workers)``)
  and stops it at the end; ``"auto"`` joins the cluster this machine belongs to (``ray start``);
  ``"ray://HOST:10001"`` connects through Ray Client. If Ray is already initialised in this process
  (a test, a notebook), that instance is used and left running.
- The workers read the calls and the model **at the same paths as the driver**: on a cluster the
  archive and the model folder must be on storage every node mounts at the same path (NFS, a
  shared volume), and every node needs the same Python environment (this package installed).
  With Ray Client, the machine running the command lists the archive, so it needs the same path too.
- Ray 2.59 and later start clusters with token authentication: a Ray Client connection needs
  ``RAY_AUTH_MODE=token`` and the cluster's token (``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Iterable, Iterator

from ..errors import ParameterError, SERError
from .pool import AnalysisSpec, CallJob, CallOutcome, analyse_job, load_bundle

logger = logging.getLogger(__name__)

#: Times a call is started at most when the worker analysing it dies each time.
MAX_ATTEMPTS = 3
#: The pinned Ray (requirements-cluster.txt).
INSTALL_HINT = "pip install -r requirements-cluster.txt"


def import_ray():
    """``ray``, or a :class:`~ser_lib.errors.ParameterError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ParameterError(
            f"--engine ray needs Ray, which is not installed: {INSTALL_HINT} (or use the default --engine local)"
        ) from None
    return ray


class _Analyser:
    """A Ray actor: one loaded model, analysing one call at a time."""

    def __init__(self, spec: AnalysisSpec):
        self.spec = spec
        self.bundle = load_bundle(spec)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def ready(self) -> str:
        return self.name

    def pid(self) -> int:
        return os.getpid()

    def analyse(self, job: CallJob) -> CallOutcome:
        outcome = analyse_job(self.bundle, self.spec, job)
        outcome.worker = self.name
        return outcome


class RayPool:
    """``workers`` analyser actors on Ray, replaced when they die (see the module docstring).

    Parameters
    ----------
    spec : AnalysisSpec
    workers : int or None
        Actors (one CPU each). None: one per CPU of the cluster (of this machine without ``address``).
    address : str or None
        None (a local Ray), ``"auto"`` or ``"ray://HOST:10001"``.
    at_most : int or None
        No more actors than this (the number of calls to analyse).
    max_attempts : int
        Times a call is started at most when its worker dies each time (default :data:`MAX_ATTEMPTS`).

    Attributes
    ----------
    holding : dict
        ``call_id -> actor`` of the calls being analysed now.
    replaced : int
        Actors that died and were replaced.
    """

    def __init__(
        self,
        spec: AnalysisSpec,
        *,
        workers: int | None = None,
        address: str | None = None,
        at_most: int | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ):
        self.ray = ray = import_ray()
        self.spec = spec
        self.max_attempts = max(1, int(max_attempts))
        self.holding: dict = {}
        self._started = False
        if not ray.is_initialized():
            if address:
                try:
                    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    token = (
                        " A cluster with token authentication (Ray's default since 2.59) needs RAY_AUTH_MODE=token and its "
                        "token (RAY_AUTH_TOKEN, or ~/.ray/auth_token; `ray get-auth-token` on the head prints it) here too."
                        if address.startswith("ray://")
                        else ""
                    )
                    raise ParameterError(
                        f"Could not reach the Ray cluster at --address {address}: {_cause(exc)}. Start it with "
                        "`ray start --head` (then --address auto on its nodes, or ray://HEAD:10001 from elsewhere)." + token
                    ) from None
            else:
                ray.init(
                    num_cpus=workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, min(workers or cpus, at_most or cpus * 1000))
        # one CPU per actor (num_cpus=1); restarts are the driver's job (see _replace), not Ray's
        self._actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Analyser)
        self.actors = [self._actor_class.remote(spec) for _ in range(self.workers)]
        self.replaced = 0
        self._check_ready()

    def _check_ready(self) -> None:
        """Wait until every actor has loaded the model; a model the workers cannot load stops here."""
        try:
            names = self.ray.get([a.ready.remote() for a in self.actors])
        except self.ray.exceptions.RayError as exc:
            self.close()
            raise SERError(
                f"The Ray workers could not load the model {self.spec.model}: {_cause(exc)}. On a cluster, the model "
                "folder and the archive must be at the same path on every node, with this package installed there."
            ) from None
        logger.info("Ray workers ready: %s", ", ".join(names))

    def _replace(self, actor) -> object:
        """A new actor in place of ``actor``, which died."""
        self.replaced += 1
        try:
            self.ray.kill(actor)
        except Exception:  # noqa: BLE001 - already gone
            pass
        new = self._actor_class.remote(self.spec)
        self.actors[self.actors.index(actor)] = new
        return new

    def run(self, jobs: Iterable[CallJob]) -> Iterator[CallOutcome]:
        """Analyse ``jobs``; yield each outcome as it arrives (the next call is handed out first)."""
        ray = self.ray
        todo: deque[tuple[CallJob, int]] = deque((job, 1) for job in jobs)
        running: dict = {}  # ObjectRef -> (actor, job, attempt)
        idle = list(self.actors)

        def hand_out() -> None:
            while idle and todo:
                actor = idle.pop()
                job, attempt = todo.popleft()
                running[actor.analyse.remote(job)] = (actor, job, attempt)
                self.holding[job.call_id] = actor

        hand_out()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            actor, job, attempt = running.pop(ref)
            self.holding.pop(job.call_id, None)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # the actor's process died while holding this call
                logger.warning("Ray worker died while analysing %s (attempt %d): %s", job.call_id, attempt, _cause(exc))
                idle.append(self._replace(actor))
                if attempt < self.max_attempts:
                    todo.appendleft((job, attempt + 1))
                    hand_out()
                    continue
                outcome = CallOutcome(
                    job.call_id,
                    job.path,
                    None,
                    error=f"the worker analysing it died {attempt} times (out of memory, or a crash in decoding?): "
                    f"{_cause(exc)}",
                    worker="ray",
                    attempts=attempt,
                )
            except ray.exceptions.RayTaskError as exc:  # not a library error: a bug, stop as the local engine does
                raise exc.as_instanceof_cause() from None
            else:
                outcome.attempts = attempt
                idle.append(actor)
            hand_out()
            yield outcome

    def close(self) -> None:
        """Stop the actors (and the Ray instance, if this pool started it)."""
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        if self._started:
            self.ray.shutdown()


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300].rstrip(".") if text else type(exc).__name__


def analyse_on_ray(
    jobs: Iterable[CallJob],
    *,
    spec: AnalysisSpec,
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[CallOutcome]:
    """Analyse ``jobs`` on Ray actors (see the module docstring); yield each outcome as it finishes.

    Raises
    ------
    ParameterError
        When Ray is not installed or the cluster at ``address`` cannot be reached.
    SERError
        When the workers cannot load the model.
    """
    jobs = list(jobs)
    if not jobs:
        return
    pool = RayPool(spec, workers=workers, address=address, at_most=len(jobs))
    try:
        yield from pool.run(jobs)
    finally:
        pool.close()
