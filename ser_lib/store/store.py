"""The call store: an embedded DuckDB file every analysed call is written to, and read back from.

:class:`CallStore` is the one entry point. DuckDB lets one process open a database file read-write
*or* many processes open it read-only, never both at once; its documentation's pattern for several
writing processes is a cross-process lock around open-write-close. So here:

- a **writer** takes an exclusive ``flock`` on ``<store>.lock``, opens the file read-write, runs the
  migrations if the file is older, writes ONE call in ONE transaction, closes, releases the lock;
- a **reader** takes a shared ``flock`` on the same lock file, opens read-only, runs its queries,
  closes: many readers at once, each waiting (briefly) while a writer holds the file; a waiting
  writer holds ``<store>.lock.gate`` so that new readers queue behind it;
- "open" is ``ATTACH`` to this process's one in-memory DuckDB instance and "close" is ``DETACH``
  (which checkpoints and lets go of the file as closing a connection does), because starting an
  instance per operation cost more CPU than the whole write;
- both also retry, with back-off, when DuckDB itself reports the file locked (another program, e.g.
  the ``duckdb`` CLI, holding it), and give up with :class:`~ser_lib.errors.StoreBusyError` after
  ``timeout`` seconds.

So a dashboard reads while a batch or the live service writes. See docs/CALL_STORE.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from ..errors import StoreBusyError, StoreError, StoreNotFoundError
from .metadata import CallMetadata
from .rows import CALL_COLUMNS, DETAIL_COLUMNS, ORIGINS, STATUSES, analysis_id, call_row, detail_rows
from .schema import SCHEMA_VERSION, TABLES, VIEWS, check_not_newer, migrate, stored_version

logger = logging.getLogger(__name__)

#: The environment variable naming the store (else :data:`DEFAULT_STORE`).
STORE_ENV = "SER_CALL_STORE"
#: The store's default path, relative to the current directory.
DEFAULT_STORE = Path("data") / "calls.duckdb"
_ALIASES = itertools.count()
_HOST: dict[int, duckdb.DuckDBPyConnection] = {}  # pid -> this process's in-memory DuckDB (a forked child makes its own)
_HOST_LOCK = threading.Lock()


def _host() -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance (in memory), made once: stores are attached to it for each batch of work.

    Starting a DuckDB instance costs tens of milliseconds of CPU (its catalog of built-in
    functions); attaching a file to a running one costs about one. Each operation attaches the
    store, works, and detaches it, which lets go of the file exactly as closing a connection would.
    """
    pid = os.getpid()
    with _HOST_LOCK:
        if pid not in _HOST:
            _HOST[pid] = duckdb.connect(":memory:")  # a parent's instance, inherited by fork, is left untouched
        return _HOST[pid]


def default_store_path() -> Path:
    """``$SER_CALL_STORE`` if set, else ``data/calls.duckdb`` (relative to the current directory)."""
    env = os.environ.get(STORE_ENV, "").strip()
    return Path(env) if env else DEFAULT_STORE


def model_identity(bundle) -> tuple[str, str]:
    """``(model_name, model_sha256)`` of a loaded :class:`~ser_lib.bundle.ModelBundle`: its name and ONNX hash.

    The hash is the card's recorded SHA-256 of ``model.onnx`` (checked when the bundle loaded); a
    bundle without one falls back to its Keras model's, then to the hash of its name.
    """
    import hashlib

    files = (getattr(bundle, "card", None) or {}).get("files") or {}
    sha = files.get("model.onnx") or files.get("model.keras")
    name = str(getattr(bundle, "name", "model"))
    return name, sha or hashlib.sha256(name.encode()).hexdigest()


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "different configuration" in text


class CallStore:
    """The call store at ``path``: write analyses (one transaction each) and read them back.

    Parameters
    ----------
    path : path-like, optional
        The DuckDB file (default :func:`default_store_path`). A writer creates it (and its folder)
        on first use; a reader never does (:class:`~ser_lib.errors.StoreNotFoundError`).
    read_only : bool
        A reader: the write methods refuse. Readers never block each other.
    timeout : float
        Seconds to wait for another process's lock before :class:`~ser_lib.errors.StoreBusyError`.

    Notes
    -----
    No connection stays open between calls: every method opens the file, does its work and closes
    it, which is what lets other processes in between. Safe to share between threads.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False, timeout: float = 30.0):
        self.path = Path(path) if path is not None else default_store_path()
        self.read_only = bool(read_only)
        self.timeout = float(timeout)
        self._schema_checked = False

    def __repr__(self) -> str:
        return f"CallStore({str(self.path)!r}, read_only={self.read_only})"

    @property
    def lock_path(self) -> Path:
        """The lock file beside the store: ``<store>.lock``."""
        return self.path.with_name(self.path.name + ".lock")

    def exists(self) -> bool:
        """True when the store's file exists (a reader can open it)."""
        return self.path.is_file()

    # --- locking and connections ------------------------------------------------------------------
    @property
    def gate_path(self) -> Path:
        """The writers' gate beside the store: ``<store>.lock.gate`` (a waiting writer holds back new readers)."""
        return self.path.with_name(self.path.name + ".lock.gate")

    def _lock_fd(self, path: Path, *, exclusive: bool) -> int | None:
        try:
            if exclusive:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
        except OSError as exc:
            if exclusive:
                raise StoreError(
                    f"Cannot create the call store's lock file {path}: {exc}. Check that its folder exists and is "
                    "writable, or choose another store with --store PATH."
                ) from exc
            try:  # a reader in a folder it may not write: the lock file, if there, still locks read-only
                return os.open(path, os.O_RDONLY)
            except OSError:
                return None  # no lock file and none can be made: no writer can be here either; DuckDB's own lock holds

    def _acquire(self, fd: int, mode: int, deadline: float) -> None:
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
            if time.monotonic() > deadline:
                raise self._busy("its lock file " + str(self.lock_path))
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    @contextlib.contextmanager
    def _flock(self, *, exclusive: bool) -> Iterator[None]:
        """Hold ``<store>.lock``: exclusive for a writer, shared for a reader, polling until ``timeout``.

        Writers go first: a writer takes the gate (``<store>.lock.gate``) exclusively before waiting
        for the lock, and a reader passes the gate (shared, for an instant) before taking its shared
        lock, so a stream of readers cannot keep a writer out; readers wait at most one write.
        """
        deadline = time.monotonic() + self.timeout
        gate = self._lock_fd(self.gate_path, exclusive=exclusive)
        fd = None
        try:
            if gate is not None:
                self._acquire(gate, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
            fd = self._lock_fd(self.lock_path, exclusive=exclusive)
            if fd is not None:
                self._acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
            if gate is not None and not exclusive:
                os.close(gate)  # past the gate: the next writer may close it behind this reader
                gate = None
            yield
        finally:
            for f in (fd, gate):
                if f is not None:
                    os.close(f)  # releases its lock

    def _busy(self, what: str, detail: str = "") -> StoreBusyError:
        return StoreBusyError(
            f"The call store {self.path} stayed locked for {self.timeout:.0f} s ({what}"
            + (f": {detail}" if detail else "")
            + "). A writer holds it for one call at a time, so this means a program keeps it open: close it (open "
            "the store from the duckdb CLI with -readonly), or pass a longer timeout."
        )

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """The store attached (read-write or read-only) to this process's DuckDB, as the cursor's default database.

        Retries while another program holds DuckDB's own lock on the file; on exit the file is
        detached (a read-write one checkpointed into the file first), so its lock is let go.
        """
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise StoreNotFoundError(
                f"No call store at {self.path} yet. Make one by analysing calls into it: python -m ser_lib "
                "analyze-calls DIR (or analyze-call FILE); or point at another with --store PATH / $SER_CALL_STORE."
            )
        con = _host().cursor()
        alias = f"callstore_{next(_ALIASES)}"
        target = str(self.path).replace("'", "''")
        deadline, pause = time.monotonic() + self.timeout, 0.005
        try:
            while True:
                try:
                    con.execute(f"ATTACH '{target}' AS {alias}" + ("" if write else " (READ_ONLY)"))
                    break
                except duckdb.Error as exc:
                    if not _is_lock_error(exc):
                        raise StoreError(
                            f"Cannot open the call store {self.path}: {exc}. Expected a DuckDB file written by ser_lib; "
                            "if it is damaged, move it away (a new one is made on the next write) or use --store PATH."
                        ) from exc
                    if time.monotonic() > deadline:
                        raise self._busy("DuckDB's file lock", str(exc)) from exc
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)
            try:
                con.execute(f"USE {alias}")
                yield con
            finally:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")  # a transaction the caller left open (an error inside) ends here
                con.execute("USE memory")
                con.execute(f"DETACH {alias}")
        finally:
            con.close()

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection at :data:`~ser_lib.store.schema.SCHEMA_VERSION`, under the exclusive lock.

        Keep the work inside short (one call): every reader waits for it.
        """
        if self.read_only:
            raise StoreError(f"{self!r} was opened read-only: it cannot write. Use CallStore(path) to write.")
        with self._flock(exclusive=True), self._connect(write=True) as con:
            if not self._schema_checked:
                before, after = migrate(con, where=str(self.path))
                if before != after:
                    logger.info("call store %s: schema %d -> %d", self.path, before, after)
                self._schema_checked = True
            yield con

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection under the shared lock: use it for one batch of queries, then let go.

        A store at an older schema is upgraded first (a brief write); a newer one is refused.
        """
        if not self._schema_checked:
            self._check_schema_for_reading()
        with self._flock(exclusive=False), self._connect(write=False) as con:
            yield con

    def _check_schema_for_reading(self) -> None:
        with self._flock(exclusive=False), self._connect(write=False) as con:
            try:
                version = stored_version(con)
            except duckdb.Error as exc:
                raise StoreError(f"Cannot read the call store {self.path}: {exc}. Expected a store written by ser_lib.") from exc
        check_not_newer(version, where=str(self.path))
        if version < SCHEMA_VERSION:
            if self.read_only and not os.access(self.path.parent, os.W_OK):
                raise StoreError(
                    f"The call store {self.path} has schema version {version}; this ser_lib needs {SCHEMA_VERSION} "
                    "and cannot upgrade it (its folder is not writable). Run any write command on it once (e.g. "
                    "analyze-call with --store) from an account that may write there."
                )
            upgrader = CallStore(self.path, timeout=self.timeout)
            with upgrader.writer():
                pass
        self._schema_checked = True

    # --- writing ----------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Open the store for writing once (creating or upgrading it): raises now what a write would raise later.

        Call it before long work (analysing a call) so that a newer, damaged or unwritable store is
        reported before the work, not after it.
        """
        with self.writer():
            pass

    def write_analysis(
        self,
        result,
        *,
        call_id: str,
        source: str,
        metadata: CallMetadata | None = None,
        model_name: str,
        model_sha256: str,
        status: str = "completed",
        origin: str = "file",
        alerts: Sequence[dict] = (),
    ) -> str:
        """Write one call's analysis (a :class:`~ser_lib.calls.CallAnalysis`) in one transaction.

        Parameters
        ----------
        result : CallAnalysis
            The finished analysis.
        call_id : str
            The call: a file's path relative to its archive (forward slashes), or a live call's id.
        source : str
            Where the audio is (a path the page can open, or the stream's id).
        metadata : CallMetadata, optional
            Agent, queue, customer, start time, extra fields.
        model_name, model_sha256 : str
            The model (see :func:`model_identity`).
        status : {"completed", "ended_abruptly", "failed"}
        origin : {"file", "live"}
        alerts : sequence of dict
            Alerts raised during the call (``kind``, ``role``, ``start_s``, ``end_s``, anything else).

        Returns
        -------
        str
            The analysis id, ``f"{call_id}@{model_sha256[:12]}"``: writing the same call with the same
            model again replaces this analysis; another model's adds a second one.
        """
        self._check_args(call_id=call_id, model_sha256=model_sha256, status=status, origin=origin)
        aid = analysis_id(call_id, model_sha256)
        alerts = list(alerts)
        row = call_row(
            aid=aid, call_id=call_id, source=str(source), origin=origin, metadata=metadata, model_name=model_name,
            model_sha256=model_sha256, status=status, result=result, n_alerts=len(alerts),
        )  # fmt: skip
        details = detail_rows(result, aid, alerts=alerts)
        self._write(aid, row, details)
        return aid

    def write_failure(
        self,
        *,
        call_id: str,
        source: str,
        error: str,
        model_name: str,
        model_sha256: str,
        metadata: CallMetadata | None = None,
        origin: str = "file",
    ) -> str:
        """Record that a call could not be analysed (status ``failed``, the reason in ``error``); returns its id.

        It replaces an earlier analysis of the call by the same model, as :meth:`write_analysis` does.
        """
        self._check_args(call_id=call_id, model_sha256=model_sha256, status="failed", origin=origin)
        aid = analysis_id(call_id, model_sha256)
        row = call_row(
            aid=aid, call_id=call_id, source=str(source), origin=origin, metadata=metadata, model_name=model_name,
            model_sha256=model_sha256, status="failed", error=str(error),
        )  # fmt: skip
        self._write(aid, row, {})
        return aid

    @staticmethod
    def _check_args(*, call_id, model_sha256, status, origin) -> None:
        if not isinstance(call_id, str) or not call_id:
            raise StoreError(f"call_id {call_id!r} is not usable: expected a non-empty string (a file path or call id).")
        if not isinstance(model_sha256, str) or len(model_sha256) < 12:
            raise StoreError(f"model_sha256 {model_sha256!r} is not a model hash: expected its hex SHA-256 (64 characters).")
        if status not in STATUSES:
            raise StoreError(f"status {status!r} is not one the store knows: expected one of {', '.join(STATUSES)}.")
        if origin not in ORIGINS:
            raise StoreError(f"origin {origin!r} is not one the store knows: expected one of {', '.join(ORIGINS)}.")

    def _write(self, aid: str, row: tuple, details: dict[str, list[list]]) -> None:
        with self.writer() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if con.execute("SELECT count(*) FROM calls WHERE analysis_id = ?", [aid]).fetchone()[0]:
                    for table in reversed(TABLES):  # the same call by the same model: replace it
                        con.execute(f"DELETE FROM {table} WHERE analysis_id = ?", [aid])
                marks = ", ".join("?" * len(CALL_COLUMNS))
                con.execute(f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({marks})", list(row))
                for table, columns in details.items():  # one statement per table: its columns as lists, unnested
                    names = DETAIL_COLUMNS[table]
                    values = ", ".join(f"unnest(${k + 2})" for k in range(len(names) - 1))
                    con.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT $1, {values}", [aid, *columns])
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise

    # --- reading ----------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence | dict | None = None) -> pd.DataFrame:
        """The result of one SQL query (read-only) as a table; ``?`` or ``$name`` parameters from ``params``."""
        with self.reader() as con:
            try:
                return con.execute(sql, params).df() if params else con.execute(sql).df()
            except duckdb.Error as exc:
                raise StoreError(f"The query failed on the call store {self.path}: {exc}\nQuery: {sql.strip()}") from exc

    def has_analysis(self, call_id: str, model_sha256: str) -> bool:
        """True when the store holds an analysis of ``call_id`` by that model (completed, ended abruptly or failed)."""
        if not self.exists():
            return False
        found = self.query("SELECT count(*) AS n FROM calls WHERE analysis_id = ?", [analysis_id(call_id, model_sha256)])
        return bool(found["n"].iloc[0])

    def analysed_call_ids(self, model_sha256: str) -> set[str]:
        """The ids of the calls the store holds an analysis of by that model (any status); empty with no store."""
        if not self.exists():
            return set()
        found = self.query("SELECT call_id FROM calls WHERE model_sha256 = ?", [model_sha256])
        return set(found["call_id"].tolist())

    def calls(
        self,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        queues: Sequence[str] | None = None,
        agents: Sequence[str] | None = None,
        status: Sequence[str] | str | None = None,
        latest_only: bool = False,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Calls from the ``calls_v`` view, newest first, filtered.

        Parameters
        ----------
        since, until : datetime or ISO text, optional
            The call's time (``started_at``, else ``analysed_at``) at or after ``since``, before ``until``.
        queues, agents : sequence of str, optional
            Keep only these queues / agents.
        status : str or sequence of str, optional
            Keep only these statuses.
        latest_only : bool
            One row per call: its most recent analysis (``is_latest``).
        columns : sequence of str, optional
            The columns wanted (default all of ``calls_v`` but ``summary`` and ``settings``).
        limit : int, optional
            At most this many rows.
        """
        where, params = [], []
        when = "COALESCE(started_at, analysed_at)"
        if since is not None:
            where.append(f"{when} >= CAST(? AS TIMESTAMP)")
            params.append(str(since))
        if until is not None:
            where.append(f"{when} < CAST(? AS TIMESTAMP)")
            params.append(str(until))
        for col, values in (("queue", queues), ("agent", agents), ("status", [status] if isinstance(status, str) else status)):
            if values is not None:
                values = list(values)
                if not values:
                    where.append("FALSE")
                    continue
                where.append(f"{col} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if latest_only:
            where.append("is_latest")
        if columns is None:
            cols = "* EXCLUDE (summary, settings)"
        else:
            cols = ", ".join(f'"{c}"' for c in columns)
        sql = f"SELECT {cols} FROM calls_v" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += f" ORDER BY {when} DESC, analysis_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, params)

    def counts(self) -> dict[str, int]:
        """Rows per table (and the schema version under ``schema_version``)."""
        with self.reader() as con:
            out = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
            out["schema_version"] = stored_version(con)
        return out

    def export(self, out_dir: str | os.PathLike, *, fmt: str = "parquet") -> list[Path]:
        """Write every ``<table>_v`` view as ``<table>.parquet`` (or ``.csv``) in ``out_dir``; returns the files.

        Each file is written beside its target and renamed over it, so a reader never sees half a file.
        JSON columns are text in both formats.
        """
        if fmt not in ("parquet", "csv"):
            raise StoreError(f"Export format {fmt!r} is not supported: expected parquet or csv.")
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the export folder {out}: {exc}. Choose a writable --out.") from exc
        options = "(FORMAT parquet, COMPRESSION zstd)" if fmt == "parquet" else "(FORMAT csv, HEADER true)"
        written = []
        with self.reader() as con:
            for table in TABLES:
                view = f"{table}_v" if f"{table}_v" in VIEWS else table
                target = out / f"{table}.{fmt}"
                tmp = out / f".{target.name}.{os.getpid()}.tmp"
                sql_path = str(tmp).replace("'", "''")
                try:
                    con.execute(f"COPY (SELECT * FROM {view}) TO '{sql_path}' {options}")
                    os.replace(tmp, target)
                except (duckdb.Error, OSError) as exc:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                    raise StoreError(f"Exporting {table} of the call store {self.path} to {target} failed: {exc}") from exc
                written.append(target)
        return written
