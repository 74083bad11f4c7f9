"""Call metadata for the store: a CSV beside the archive, or file names through a pattern."""

from __future__ import annotations

from datetime import datetime

import pytest

from ser_lib.errors import StoreError
from ser_lib.store import EXAMPLE_NAME_PATTERN, CallMetadata, metadata_from_name, read_metadata_csv


def test_a_metadata_csv_reads_every_column_and_keeps_extra_ones(tmp_path):
    csv = tmp_path / "calls.csv"
    csv.write_text(
        "\ufefffile,agent,queue,started_at,customer,site,notes\n"
        "q1/call1.wav,alice,billing,2025-05-01T10:15:00,C-17,leeds,\n"
        "./q1/call2.wav, bob ,sales,2025-05-01 11:00:00+02:00,,york,call back\n"
        "q2\\call3.wav,,,,,,\n"
        ",,,,,,\n",
        encoding="utf-8",
    )
    md = read_metadata_csv(csv)
    assert sorted(md) == ["q1/call1.wav", "q1/call2.wav", "q2/call3.wav"]  # relative, forward slashes, no ./
    assert md["q1/call1.wav"] == CallMetadata(
        agent="alice", queue="billing", customer_ref="C-17", started_at=datetime(2025, 5, 1, 10, 15), extra={"site": "leeds"}
    )
    two = md["q1/call2.wav"]
    assert two.agent == "bob" and two.customer_ref is None and two.extra == {"site": "york", "notes": "call back"}
    assert two.started_at == datetime(2025, 5, 1, 9, 0)  # a time with a zone is kept in UTC
    assert md["q2/call3.wav"] == CallMetadata()  # missing metadata is fine


def test_a_bad_started_at_names_the_row_and_the_value(tmp_path):
    csv = tmp_path / "calls.csv"
    csv.write_text("file,started_at\na.wav,2025-05-01\nb.wav,yesterday at noon\n")
    with pytest.raises(StoreError, match=r"calls\.csv, row 3 \(b\.wav\): started_at 'yesterday at noon' is not a time; expected"):
        read_metadata_csv(csv)


def test_metadata_csv_errors_are_clear(tmp_path):
    with pytest.raises(StoreError, match="Cannot read the metadata CSV"):
        read_metadata_csv(tmp_path / "missing.csv")
    (tmp_path / "nofile.csv").write_text("name,agent\na.wav,x\n")
    with pytest.raises(StoreError, match=r"has no 'file' column \(its columns: \['name', 'agent'\]\)"):
        read_metadata_csv(tmp_path / "nofile.csv")
    (tmp_path / "twice.csv").write_text("file,agent\na.wav,x\n./a.wav,y\n")
    with pytest.raises(StoreError, match=r"names 'a\.wav' twice \(rows 2 and 3\)"):
        read_metadata_csv(tmp_path / "twice.csv")


def test_metadata_from_a_name_pattern():
    md = metadata_from_name("/archive/2025/billing_alice_20250501T101500.wav", EXAMPLE_NAME_PATTERN)
    assert md == CallMetadata(agent="alice", queue="billing", started_at=datetime(2025, 5, 1, 10, 15))
    rx = r"(?P<queue>\w+)-(?P<agent>\w+)-(?P<customer>C\d+)-(?P<site>\w+)\.wav$"
    md = metadata_from_name("sales-bob-C42-york.wav", rx)
    assert (md.queue, md.agent, md.customer_ref, md.extra) == ("sales", "bob", "C42", {"site": "york"})
    assert metadata_from_name("recording.wav", EXAMPLE_NAME_PATTERN) is None  # no match: no metadata, no error


def test_name_pattern_errors_are_clear():
    with pytest.raises(StoreError, match=r"not a regular expression .*e\.g\."):
        metadata_from_name("a.wav", "(?P<agent>")
    with pytest.raises(StoreError, match="has no named groups"):
        metadata_from_name("a.wav", r"(\w+)")
    with pytest.raises(StoreError, match=r"file name 'q_a_20251301T000000\.wav'.*started_at '20251301T000000' is not a time"):
        metadata_from_name("q_a_20251301T000000.wav", EXAMPLE_NAME_PATTERN)
