"""The call store's schema: versions, migrations from an older file, views, and their documentation."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from ser_lib.errors import StoreError
from ser_lib.store import SCHEMA_VERSION, TABLES, VIEWS, CallStore
from ser_lib.store.sample_call import sample_analysis
from ser_lib.store.schema import MIGRATIONS, stored_version

DOC = Path(__file__).resolve().parent.parent / "docs" / "CALL_STORE.md"


def _v1_store(path: Path) -> None:
    """A store as ser_lib's first schema wrote it: version 1, one call with a worst moment."""
    con = duckdb.connect(str(path))
    for sql in MIGRATIONS[0][1]:
        con.execute(sql)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO calls (analysis_id, call_id, origin, model_sha256, status, analysed_at, customer_mean_sentiment) "
        "VALUES ('old.wav@aaaaaaaaaaaa', 'old.wav', 'file', ?, 'completed', TIMESTAMP '2025-01-02 03:04:05', -0.5)",
        ["a" * 64],
    )
    con.execute("INSERT INTO worst_moments VALUES ('old.wav@aaaaaaaaaaaa', 1, 'customer', 10.0, 14.0, 'angry', -0.8)")
    con.close()


def test_the_migrations_are_numbered_in_order():
    versions = [v for v, _ in MIGRATIONS]
    assert versions == list(range(1, len(MIGRATIONS) + 1)) and SCHEMA_VERSION == versions[-1]


def test_a_writer_upgrades_a_version_1_store_and_keeps_its_rows(tmp_path):
    path = tmp_path / "calls.duckdb"
    _v1_store(path)
    store = CallStore(path)
    store.write_analysis(sample_analysis(duration_s=90.0, seed=4, customer_end=-0.9), call_id="new.wav", source="x",
                         model_name="m", model_sha256="a" * 64)  # fmt: skip
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert stored_version(con) == SCHEMA_VERSION
        old = con.execute("SELECT channel, peak_s, sentiment FROM worst_moments WHERE analysis_id LIKE 'old%'").fetchall()
        assert old == [(None, None, -0.8)]  # the new columns are empty for old rows; the old values stay
        new = con.execute("SELECT count(*), count(peak_s) FROM worst_moments WHERE analysis_id LIKE 'new%'").fetchone()
        assert new[0] > 0 and new[1] == new[0]
        assert con.execute("SELECT count(*) FROM calls_v").fetchone()[0] == 2  # the views exist after the upgrade
    finally:
        con.close()


def test_a_reader_upgrades_an_older_store_before_reading(tmp_path):
    path = tmp_path / "calls.duckdb"
    _v1_store(path)
    rows = CallStore(path, read_only=True).query("SELECT call_id, peak_s FROM worst_moments_v")
    assert rows["call_id"].tolist() == ["old.wav"]
    assert CallStore(path, read_only=True).counts()["schema_version"] == SCHEMA_VERSION


def test_a_failed_migration_changes_nothing(tmp_path):
    path = tmp_path / "calls.duckdb"
    _v1_store(path)
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE worst_moments ADD COLUMN peak_s DOUBLE")  # someone's hand-made column: v2 cannot add it
    con.close()
    with pytest.raises(StoreError, match=r"Upgrading the call store .* from schema version 1 to 2 failed .*nothing was changed"):
        CallStore(path).check_writable()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert stored_version(con) == 1
        sql = "SELECT column_name FROM information_schema.columns WHERE table_name = 'worst_moments'"
        cols = [r[0] for r in con.execute(sql).fetchall()]
        assert "channel" not in cols  # the step's first statement was rolled back with the rest
    finally:
        con.close()


def test_every_table_has_a_view_and_every_column_is_documented(tmp_path):
    store = CallStore(tmp_path / "calls.duckdb")
    store.check_writable()
    doc = DOC.read_text()
    assert set(VIEWS) == {f"{t}_v" for t in TABLES}
    with store.reader() as con:
        for table in (*TABLES, *VIEWS):
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert f"`{table}`" in doc, f"docs/CALL_STORE.md does not document {table}"
            missing = [c for c in cols if not re.search(rf"`{re.escape(c)}`", doc)]
            assert not missing, f"docs/CALL_STORE.md does not document {table}'s columns {missing}"


def test_the_documented_sql_examples_run(tmp_path):
    from datetime import datetime, timedelta

    from ser_lib.store import CallMetadata

    store = CallStore(tmp_path / "calls.duckdb")
    now = datetime.now().replace(microsecond=0)
    for i in range(3):
        md = CallMetadata(agent=f"agent{i % 2}", queue="billing", started_at=now - timedelta(days=i))
        store.write_analysis(sample_analysis(duration_s=120.0, seed=i, customer_end=-0.8), call_id=f"c{i}.wav",
                             source=f"/a/c{i}.wav", metadata=md, model_name="m", model_sha256="a" * 64)  # fmt: skip
    examples = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(examples) >= 5
    for sql in examples:
        assert len(store.query(sql.replace("DATE '2025-05-01'", f"DATE '{(now - timedelta(days=30)).date()}'"))), sql
