"""Many calls into the call store (and one CSV), resumably: what ``python -m ser_lib analyze-calls`` runs.

- :func:`find_calls`: the recordings under a folder.
- :func:`plan_archive`: which of them the call store already holds for this model (an
  interrupted run continues where it stopped; with ``retry_errors`` the failed ones are tried again),
  and, with a results CSV, which of them that CSV lacks.
- :func:`run_archive`: write each call's outcome, as an engine (:mod:`ser_lib.calls.pool`, local
  processes, or :mod:`ser_lib.calls.ray_engine`, Ray) delivers it, to the store (one call per
  transaction, by this process only, so each call is written exactly once) and to the CSV.
- :func:`plan_batch`: which of them the results CSV already holds (an interrupted run continues
  where it stopped; with ``retry_errors`` the failed ones are tried again).
- :func:`run_batch`: analyse the rest, one row per call and party (:func:`batch_rows`), failures
  with their reason in the ``error`` column.

The CSV is rewritten after every call through a temporary file renamed over it
(:func:`ser_lib.io.atomic_write_text`), so however a run ends, the file holds every call finished
so far and never a cut-off row. The store (:class:`ser_lib.store.CallStore`, passed in) replaces
an analysis of the same call with the same model, so a call analysed again is never counted twice.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import AUDIO_EXTENSIONS
from ..errors import ParameterError, SERError
from ..io import atomic_write_text
from ..progress import ProgressCallback, report
from .offline import analyze_call
from .pool import CallOutcome
from .result import CallAnalysis
from .settings import DEFAULT_ROLES, TimelineSettings

logger = logging.getLogger(__name__)

#: Columns of the ``analyze-calls`` CSV (then one ``share_<emotion>`` column per emotion).
BATCH_COLUMNS: tuple[str, ...] = (
    "file",
    "role",
    "duration_s",
    "speech_s",
    "judged_s",
    "dominant",
    "mean_sentiment",
    "trend",
    "sentiment_change",
    "worst_start_s",
    "worst_emotion",
    "worst_sentiment",
    "no_speech",
    "error",
)


def find_calls(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursively, sorted), by extension.

    Raises
    ------
    ParameterError
        If ``folder`` is not a folder or holds no audio file.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ParameterError(f"{root} is not a folder: pass the folder holding the call recordings")
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise ParameterError(f"No audio files under {root}: expected recordings ending in {', '.join(AUDIO_EXTENSIONS)}")
    return files


def batch_rows(name: str, result: CallAnalysis | None = None, *, error: str = "") -> list[dict]:
    """The ``analyze-calls`` rows of one call: one per party, or one row with the ``error``."""
    if result is None:
        return [{"file": name, "error": error}]
    rows = []
    for role, p in result.summary["parties"].items():
        worst = [m for m in result.summary["worst_moments"] if m["role"] == role]
        row = {
            "file": name,
            "role": role,
            "duration_s": round(result.duration_s, 2),
            "speech_s": p["speech_s"],
            "judged_s": p["judged_s"],
            "dominant": p["dominant"] or "",
            "mean_sentiment": "" if p["mean_sentiment"] is None else p["mean_sentiment"],
            "trend": p["trend"]["direction"],
            "sentiment_change": "" if p["trend"].get("change") is None else p["trend"]["change"],
            "worst_start_s": worst[0]["start_s"] if worst else "",
            "worst_emotion": worst[0]["emotion"] if worst else "",
            "worst_sentiment": worst[0]["sentiment"] if worst else "",
            "no_speech": result.no_speech,
            "error": "",
        }
        row.update({f"share_{lab}": v for lab, v in p["shares"].items()})
        rows.append(row)
    return rows


@dataclass
class BatchPlan:
    """What a batch run has to do (from :func:`plan_batch`).

    Attributes
    ----------
    root : Path
        The folder of recordings; rows name files relative to it.
    out : Path
        The results CSV.
    files : list of Path
        Every recording under ``root``.
    todo : list of Path
        Those not in ``out`` yet.
    header : list of str or None
        The columns of an existing ``out`` (None: a new file).
    text : str
        What ``out`` holds now (complete rows only); new rows are added to it.
    """

    root: Path
    out: Path
    files: list[Path]
    todo: list[Path]
    header: list[str] | None
    text: str

    @property
    def skipped(self) -> int:
        """Recordings already in ``out``."""
        return len(self.files) - len(self.todo)

    def name(self, path: Path) -> str:
        """How ``path`` is named in the CSV: relative to :attr:`root`, with ``/``."""
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class BatchReport:
    """What :func:`run_batch` did: calls analysed and failed, calls skipped, and the CSV."""

    analysed: int
    failed: int
    skipped: int
    out: Path


def _read_results(out: Path) -> tuple[list[str] | None, list[dict], str]:
    """Header, rows and text of an existing results CSV, without a cut-off last row.

    A file written by an older version that stopped in mid-row ends without a newline: that row is
    dropped, with the rows of the call before it when the cut-off row may belong to that call (its
    file name is a prefix of that call's), so the call is analysed again rather than half kept.
    """
    if not out.is_file() or out.stat().st_size == 0:
        return None, [], ""
    with open(out, newline="", encoding="utf-8") as f:
        text = f.read()
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames
    if not header or "file" not in header:
        raise ParameterError(f"{out} exists but is not an analyze-calls CSV (no 'file' column): choose another --out")
    rows = list(reader)
    if not text.endswith("\n") and rows:
        torn = rows.pop().get("file") or ""
        if rows and rows[-1]["file"].startswith(torn):
            last = rows[-1]["file"]
            rows = [r for r in rows if r["file"] != last]
        text = ""  # rewritten from the rows below
    if not text:
        text = _csv_text(rows, header, with_header=True)
    return list(header), rows, text


def _csv_text(rows: Sequence[dict], fields: Sequence[str], *, with_header: bool = False) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    if with_header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plan_batch(folder: str | os.PathLike, out: str | os.PathLike, *, retry_errors: bool = False) -> BatchPlan:
    """The recordings under ``folder`` that the results CSV ``out`` does not hold yet.

    Parameters
    ----------
    folder : path
        Folder of call recordings (searched recursively).
    out : path
        The results CSV: created by :func:`run_batch`, or continued if it exists.
    retry_errors : bool
        Remove the rows of calls that failed from ``out`` (rewritten atomically now), so that they
        are analysed again.

    Raises
    ------
    ParameterError
        If ``folder`` holds no recordings, or ``out`` exists and is not an ``analyze-calls`` CSV.
    """
    root = Path(folder).expanduser()
    files = find_calls(root)
    out = Path(out).expanduser()
    header, rows, text = _read_results(out)
    if retry_errors and header is not None:
        kept = [r for r in rows if not r.get("error")]
        if len(kept) != len(rows):
            text = _csv_text(kept, header, with_header=True)
            atomic_write_text(out, text)
        rows = kept
    done = {r["file"] for r in rows}
    todo = [p for p in files if p.relative_to(root).as_posix() not in done]
    return BatchPlan(root, out, files, todo, header, text)


def run_batch(
    plan: BatchPlan,
    *,
    bundle,
    roles: Sequence[str] | None = DEFAULT_ROLES,
    settings: TimelineSettings | None = None,
    json_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> BatchReport:
    """Analyse every call in ``plan.todo`` and add its rows to ``plan.out``, one call at a time.

    A call that fails with a library error (unreadable, truncated, empty) gets one row with the
    reason in ``error`` and the run goes on. After each call the whole CSV is written to a
    temporary file and renamed over ``plan.out``.

    Parameters
    ----------
    plan : BatchPlan
        From :func:`plan_batch`.
    bundle : ModelBundle
    roles, settings
        As :func:`ser_lib.calls.analyze_call`.
    json_dir : path or None
        Also write each call's full analysis to ``json_dir/<file>.json`` (atomically).
    progress : callable or None
        Called with a :class:`ser_lib.progress.Progress` before and after each call: stage
        ``"calls"``, ``done`` and ``total`` in recordings (those already in the CSV count as
        done), ``info`` with ``file`` (the call's name) and ``failed`` (failures so far).

    Returns
    -------
    BatchReport
    """
    fields = plan.header or [*BATCH_COLUMNS, *[f"share_{lab}" for lab in bundle.labels]]
    text = plan.text or _csv_text([], fields, with_header=True)
    total, failed = len(plan.files), 0
    for i, path in enumerate(plan.todo):
        name = plan.name(path)
        report(progress, "calls", plan.skipped + i, total, file=name, failed=failed)
        try:
            result = analyze_call(path, bundle=bundle, roles=roles, settings=settings)
            rows = batch_rows(name, result)
            if json_dir:
                result.to_json(Path(json_dir) / (name + ".json"))
        except SERError as exc:
            failed += 1
            logger.warning("%s: %s", name, exc)
            rows = batch_rows(name, error=str(exc))
        text += _csv_text(rows, fields)
        atomic_write_text(plan.out, text)
        report(progress, "calls", plan.skipped + i + 1, total, file=name, failed=failed)
    plan.text = text
    return BatchReport(analysed=len(plan.todo), failed=failed, skipped=plan.skipped, out=plan.out)


# --- an archive into the call store ---------------------------------------------------------------


@dataclass
class ArchivePlan:
    """What an ``analyze-calls`` run has to do (from :func:`plan_archive`).

    Attributes
    ----------
    root : Path
        The archive folder; a call's id is its path relative to it (with ``/``).
    files : list of Path
        Every recording under ``root`` (listed once).
    todo : list of Path
        Those to analyse: not in the store with this model (nor in the CSV, when there is one).
    csv : BatchPlan or None
        The results CSV's plan, when results also go to a CSV.
    """

    root: Path
    files: list[Path]
    todo: list[Path]
    csv: BatchPlan | None = None

    @property
    def skipped(self) -> int:
        """Recordings already done."""
        return len(self.files) - len(self.todo)

    def call_id(self, path: Path) -> str:
        """A recording's id in the store: its path relative to :attr:`root`, with ``/``."""
        return path.relative_to(self.root).as_posix()


def plan_archive(
    folder: str | os.PathLike,
    *,
    store,
    model_sha256: str,
    out: str | os.PathLike | None = None,
    retry_errors: bool = False,
) -> ArchivePlan:
    """The recordings under ``folder`` that ``store`` holds no analysis of with this model yet.

    Parameters
    ----------
    folder : path
        The archive (searched recursively).
    store : CallStore
        The call store (:mod:`ser_lib.store`); read, not written.
    model_sha256 : str
        The model's hash: a call analysed with another model is analysed again (a second analysis).
    out : path or None
        Also a results CSV (:func:`plan_batch`): a recording it lacks is analysed too.
    retry_errors : bool
        Analyse again the calls whose stored analysis failed (and drop the CSV's error rows).

    Raises
    ------
    ParameterError
        If ``folder`` holds no recordings, or ``out`` exists and is not an ``analyze-calls`` CSV.
    """
    csv_plan = plan_batch(folder, out, retry_errors=retry_errors) if out is not None else None
    root = Path(folder).expanduser()
    files = csv_plan.files if csv_plan else find_calls(root)
    done = set(store.analysed_call_ids(model_sha256))
    if retry_errors and done:
        failed = store.query(
            "SELECT DISTINCT call_id FROM calls WHERE model_sha256 = ? AND status = 'failed'", [model_sha256]
        )
        done -= set(failed["call_id"])
    missing_csv = set(csv_plan.todo) if csv_plan else set()
    todo = [p for p in files if p in missing_csv or p.relative_to(root).as_posix() not in done]
    return ArchivePlan(root, files, todo, csv_plan)


def run_archive(
    plan: ArchivePlan,
    outcomes: Iterable[CallOutcome],
    *,
    store,
    model_name: str,
    model_sha256: str,
    labels: Sequence[str] = (),
    metadata: Callable[[str], object] | None = None,
    json_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> BatchReport:
    """Write each outcome to the store (and the CSV) as it arrives; return what was done.

    Parameters
    ----------
    plan : ArchivePlan
        From :func:`plan_archive`.
    outcomes : iterable of CallOutcome
        From an engine run over ``plan.todo`` (:func:`ser_lib.calls.pool.analyse_local`,
        :func:`ser_lib.calls.ray_engine.analyse_on_ray`), in any order.
    store : CallStore
        Written once per call (``write_analysis`` or ``write_failure``), one call per transaction.
    model_name, model_sha256 : str
        The model, as recorded with each analysis.
    labels : sequence of str
        The model's emotions (the CSV's ``share_<emotion>`` columns of a new CSV).
    metadata : callable or None
        ``call_id -> CallMetadata or None`` (agent, queue, start time), see :mod:`ser_lib.store`.
    json_dir : path or None
        Also write each call's full analysis to ``json_dir/<call_id>.json`` (atomically).
    progress : callable or None
        As :func:`run_batch`: stage ``"calls"``, after each call, ``info`` with ``file`` and ``failed``.
    """
    total, failed, done = len(plan.files), 0, 0
    csv_plan = plan.csv
    fields = (csv_plan.header or [*BATCH_COLUMNS, *[f"share_{lab}" for lab in labels]]) if csv_plan else []
    text = (csv_plan.text or _csv_text([], fields, with_header=True)) if csv_plan else ""
    for outcome in outcomes:
        name = outcome.call_id
        meta = metadata(name) if metadata else None
        common = dict(call_id=name, source=outcome.path, metadata=meta, model_name=model_name, model_sha256=model_sha256)
        if outcome.failed:
            failed += 1
            store.write_failure(error=outcome.error, **common)
            rows = batch_rows(name, error=outcome.error)
        else:
            store.write_analysis(outcome.result, **common)
            rows = batch_rows(name, outcome.result)
            if json_dir:
                outcome.result.to_json(Path(json_dir) / (name + ".json"))
        if csv_plan:
            text += _csv_text(rows, fields)
            atomic_write_text(csv_plan.out, text)
        done += 1
        report(progress, "calls", plan.skipped + done, total, file=name, failed=failed)
    if csv_plan:
        csv_plan.text = text
    out = csv_plan.out if csv_plan else Path(str(getattr(store, "path", "")))
    return BatchReport(analysed=done, failed=failed, skipped=plan.skipped, out=out)
