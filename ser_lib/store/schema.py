"""The call store's schema: its tables, its analyst views, its version and the migrations between versions.

- :data:`SCHEMA_VERSION`: the version this ser_lib writes and reads.
- :data:`MIGRATIONS`: ``(version, statements)`` steps; a store at version ``v`` runs every step above
  ``v`` in order, in the writer's transaction, then records the new version in ``meta``.
- :data:`VIEWS`: one ``<table>_v`` view per table for analysts (child tables carry the call's
  ``call_id``, ``model_name``, ``agent``, ``queue`` and ``started_at``), recreated after every migration.
- :func:`migrate`: bring an open read-write connection's database to :data:`SCHEMA_VERSION`.
- :func:`stored_version`: the version recorded in a database (0 for an empty one).

A new version appends a step to :data:`MIGRATIONS` (never edits a shipped one) and bumps
:data:`SCHEMA_VERSION`; ``tests/test_store_schema.py`` upgrades a hand-made older store.
docs/CALL_STORE.md documents every table, column and view.
"""

from __future__ import annotations

from ..errors import StoreError

#: Tables in the order they are exported (``calls`` first, then the per-call detail).
TABLES = ("calls", "windows", "segments", "party_summaries", "quarter_summaries", "worst_moments", "alerts")

_V1 = [
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE calls (
        analysis_id VARCHAR PRIMARY KEY,
        call_id VARCHAR NOT NULL,
        source VARCHAR,
        origin VARCHAR NOT NULL,
        started_at TIMESTAMP,
        duration_s DOUBLE,
        channels INTEGER,
        roles JSON,
        agent VARCHAR,
        queue VARCHAR,
        customer_ref VARCHAR,
        extra JSON,
        model_name VARCHAR,
        model_sha256 VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        error VARCHAR,
        no_speech BOOLEAN,
        analysed_at TIMESTAMP NOT NULL,
        customer_role VARCHAR,
        customer_mean_sentiment DOUBLE,
        customer_first_quarter DOUBLE,
        customer_last_quarter DOUBLE,
        customer_change DOUBLE,
        customer_trend VARCHAR,
        customer_dominant VARCHAR,
        customer_end_negative BOOLEAN,
        n_alerts INTEGER,
        n_windows INTEGER,
        n_segments INTEGER,
        settings JSON,
        summary JSON
    )""",
    """CREATE TABLE windows (
        analysis_id VARCHAR NOT NULL, channel INTEGER, role VARCHAR, start_s DOUBLE, end_s DOUBLE,
        emotion VARCHAR, confidence DOUBLE, sentiment DOUBLE, probabilities JSON
    )""",
    """CREATE TABLE segments (
        analysis_id VARCHAR NOT NULL, channel INTEGER, role VARCHAR, start_s DOUBLE, end_s DOUBLE,
        emotion VARCHAR, confidence DOUBLE, sentiment DOUBLE, n_windows INTEGER, probabilities JSON
    )""",
    """CREATE TABLE party_summaries (
        analysis_id VARCHAR NOT NULL, role VARCHAR, speech_s DOUBLE, talk_share DOUBLE, judged_s DOUBLE,
        dominant VARCHAR, mean_sentiment DOUBLE, trend VARCHAR, change DOUBLE, slope_per_min DOUBLE, shares JSON
    )""",
    """CREATE TABLE quarter_summaries (
        analysis_id VARCHAR NOT NULL, role VARCHAR, quarter INTEGER, start_s DOUBLE, end_s DOUBLE,
        speech_s DOUBLE, mean_sentiment DOUBLE, dominant VARCHAR
    )""",
    """CREATE TABLE worst_moments (
        analysis_id VARCHAR NOT NULL, rank INTEGER, role VARCHAR, start_s DOUBLE, end_s DOUBLE,
        emotion VARCHAR, sentiment DOUBLE
    )""",
    """CREATE TABLE alerts (
        analysis_id VARCHAR NOT NULL, kind VARCHAR, role VARCHAR, start_s DOUBLE, end_s DOUBLE, detail JSON
    )""",
    """CREATE INDEX calls_call_id ON calls (call_id)""",
]

# v2: a worst moment says where to listen (its channel, the second of its most negative window) and how sure it is.
_V2 = [
    """ALTER TABLE worst_moments ADD COLUMN channel INTEGER""",
    """ALTER TABLE worst_moments ADD COLUMN peak_s DOUBLE""",
    """ALTER TABLE worst_moments ADD COLUMN confidence DOUBLE""",
]

#: ``(version, statements)``: every step above a store's version runs, in order, on open by a writer.
MIGRATIONS: list[tuple[int, list[str]]] = [(1, _V1), (2, _V2)]
#: The schema version this ser_lib writes (and the newest it reads).
SCHEMA_VERSION = MIGRATIONS[-1][0]

_CALL_COLS = "c.call_id, c.model_name, c.agent, c.queue, c.started_at"

#: The analyst views: ``name -> SELECT``. Recreated (``CREATE OR REPLACE VIEW``) after every migration.
VIEWS: dict[str, str] = {
    "calls_v": """
        SELECT c.*,
               CAST(COALESCE(c.started_at, c.analysed_at) AS DATE) AS day,
               c.customer_trend = 'worsening' AS customer_worsened,
               row_number() OVER (PARTITION BY c.call_id ORDER BY c.analysed_at DESC, c.analysis_id) = 1 AS is_latest
        FROM calls c""",
    "windows_v": f"SELECT w.*, {_CALL_COLS} FROM windows w JOIN calls c USING (analysis_id)",
    "segments_v": f"SELECT s.*, s.end_s - s.start_s AS seconds, {_CALL_COLS} FROM segments s JOIN calls c USING (analysis_id)",
    "party_summaries_v": f"SELECT p.*, {_CALL_COLS} FROM party_summaries p JOIN calls c USING (analysis_id)",
    "quarter_summaries_v": f"SELECT q.*, {_CALL_COLS} FROM quarter_summaries q JOIN calls c USING (analysis_id)",
    "worst_moments_v": f"SELECT m.*, {_CALL_COLS}, c.source FROM worst_moments m JOIN calls c USING (analysis_id)",
    "alerts_v": f"SELECT a.*, {_CALL_COLS} FROM alerts a JOIN calls c USING (analysis_id)",
}


def stored_version(con) -> int:
    """The schema version recorded in the database behind ``con`` (0: no ``meta`` table, an empty database)."""
    has_meta = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = 'meta'"
    ).fetchone()[0]
    if not has_meta:
        return 0
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else 0
    except ValueError:
        raise StoreError(f"The call store's meta table holds schema_version {row[0]!r}, not a whole number.") from None


def check_not_newer(version: int, *, where: str) -> None:
    """Raise :class:`~ser_lib.errors.StoreError` if ``version`` is newer than this ser_lib reads."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The call store {where} has schema version {version}, newer than this ser_lib reads (up to "
            f"{SCHEMA_VERSION}): it was written by a newer ser_lib. Upgrade ser_lib (pip install -r "
            "requirements.txt from the newer release), or use another store with --store PATH."
        )


def migrate(con, *, where: str = "") -> tuple[int, int]:
    """Bring the database behind read-write ``con`` to :data:`SCHEMA_VERSION`, in one transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A read-write connection with no transaction open.
    where : str
        The store's path, for messages.

    Returns
    -------
    (before, after) : tuple of int
        The version found and the version left (equal when nothing was to do).

    Raises
    ------
    StoreError
        The store is newer than this ser_lib (:func:`check_not_newer`), or a step failed (nothing of
        it is kept: the transaction is rolled back).
    """
    before = stored_version(con)
    check_not_newer(before, where=where)
    if before == SCHEMA_VERSION:
        return before, before
    con.execute("BEGIN TRANSACTION")
    try:
        for version, statements in MIGRATIONS:
            if version <= before:
                continue
            for sql in statements:
                con.execute(sql)
        for name, sql in VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?), ('ser_lib_schema', 'ser-call-store')",
            [str(SCHEMA_VERSION)],
        )
        con.execute("COMMIT")
    except Exception as exc:
        try:
            con.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the transaction may already be gone; the store is unchanged either way
            pass
        raise StoreError(
            f"Upgrading the call store {where} from schema version {before} to {SCHEMA_VERSION} failed ({exc}); "
            "nothing was changed. Keep a copy of the file and report this."
        ) from exc
    return before, SCHEMA_VERSION
