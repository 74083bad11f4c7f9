"""Call metadata: who took the call, in which queue, when, for which customer.

- :class:`CallMetadata`: ``agent``, ``queue``, ``customer_ref``, ``started_at`` and any ``extra`` fields.
- :func:`read_metadata_csv`: a CSV beside the archive (``calls.csv``): one row per file.
- :func:`metadata_from_name`: the same read from a file's name through a regex with named groups.
- :func:`parse_started_at`: the start-time formats both accept.

Missing metadata is fine: every field may be ``None``.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ..errors import StoreError

#: Column names of the metadata CSV with a field of their own (``customer`` fills ``customer_ref``).
KNOWN_COLUMNS = {"file", "agent", "queue", "started_at", "customer", "customer_ref"}
#: An example ``--name-pattern``: ``billing_alice_20250501T101500.wav``.
EXAMPLE_NAME_PATTERN = r"(?P<queue>[^_]+)_(?P<agent>[^_]+)_(?P<started_at>\d{8}T\d{6})"
_STARTED_AT_HELP = (
    "an ISO 8601 time such as 2025-05-01T10:15:00, 2025-05-01 10:15:00, 2025-05-01T10:15:00Z or "
    "2025-05-01T10:15:00+02:00, or the compact 20250501T101500 / 20250501101500"
)


@dataclass
class CallMetadata:
    """What is known about a call besides its audio; every field may be missing.

    Attributes
    ----------
    agent, queue, customer_ref : str or None
        The agent who took the call, the queue it came through, a reference to the customer.
    started_at : datetime or None
        When the call started. A time with a zone is stored as UTC; one without is stored as given.
    extra : dict
        Any other fields (extra CSV columns, other named groups of a name pattern), kept as text.
    """

    agent: str | None = None
    queue: str | None = None
    customer_ref: str | None = None
    started_at: datetime | None = None
    extra: dict = field(default_factory=dict)


def parse_started_at(value: str | datetime | None, *, where: str) -> datetime | None:
    """A start time from text (see the accepted formats in the error), or ``None`` for an empty value.

    A time with a zone comes back in UTC without its zone (the store's TIMESTAMP columns hold no
    zone); one without a zone comes back as given.

    Raises
    ------
    StoreError
        The text is not a time; the message names ``where`` (the row or file) and the value.
    """
    if value is None or isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if not text:
            return None
        dt = None
        for fmt in ("%Y%m%dT%H%M%S", "%Y%m%d%H%M%S", "%Y%m%dT%H%M"):
            try:
                dt = datetime.strptime(text, fmt)
                break
            except ValueError:
                pass
        if dt is None:
            try:
                dt = datetime.fromisoformat(text.replace("z", "Z"))
            except ValueError:
                raise StoreError(f"{where}: started_at {text!r} is not a time; expected {_STARTED_AT_HELP}.") from None
    if dt is not None and dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def _clean(value) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _normalise_file(name: str) -> str:
    """A file name as the store keys it: relative, with forward slashes, no leading ``./``."""
    p = PurePosixPath(name.strip().replace("\\", "/"))
    return str(p)[2:] if str(p).startswith("./") else str(p)


def _metadata(fields: dict, *, where: str) -> CallMetadata:
    extra = {k: v for k, v in fields.items() if k not in KNOWN_COLUMNS and k and _clean(v) is not None}
    return CallMetadata(
        agent=_clean(fields.get("agent")),
        queue=_clean(fields.get("queue")),
        customer_ref=_clean(fields.get("customer_ref")) or _clean(fields.get("customer")),
        started_at=parse_started_at(fields.get("started_at"), where=where),
        extra={k: str(v).strip() for k, v in extra.items()},
    )


def read_metadata_csv(path: str | os.PathLike) -> dict[str, CallMetadata]:
    """Read a metadata CSV: ``file`` (relative to the archive), ``agent``, ``queue``, ``started_at``, ``customer``.

    Parameters
    ----------
    path : path-like
        The CSV (comma-separated, a header row; UTF-8, a byte-order mark is fine). Only ``file`` is
        required; ``customer`` (or ``customer_ref``) fills :attr:`CallMetadata.customer_ref`; any
        other column is kept in :attr:`CallMetadata.extra`.

    Returns
    -------
    dict
        File name (relative, with forward slashes, as ``analyze-calls`` names calls) -> metadata.

    Raises
    ------
    StoreError
        The file is missing or unreadable, has no ``file`` column, names a file twice, or a
        ``started_at`` is not a time (the message names the row and the value).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"Cannot read the metadata CSV {path}: {exc}. Expected a UTF-8 CSV with a header row.") from exc
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if "file" not in columns:
        raise StoreError(
            f"The metadata CSV {path} has no 'file' column (its columns: {columns or 'none'}); expected a header "
            "row with file and any of agent, queue, started_at, customer (and any other columns)."
        )
    out: dict[str, CallMetadata] = {}
    rows: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        fields = {(k or "").strip(): v for k, v in raw.items() if k is not None}
        name = _clean(fields.get("file"))
        if name is None:
            continue  # a blank line or a row without a file: nothing to attach it to
        key = _normalise_file(name)
        if key in rows:
            raise StoreError(f"The metadata CSV {path} names {key!r} twice (rows {rows[key]} and {line}); keep one row per file.")
        rows[key] = line
        out[key] = _metadata(fields, where=f"{path}, row {line} ({key})")
    return out


def compile_name_pattern(pattern: str | re.Pattern) -> re.Pattern:
    """``pattern`` compiled, or a :class:`~ser_lib.errors.StoreError` saying why it is not a usable regex."""
    if isinstance(pattern, re.Pattern):
        rx = pattern
    else:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise StoreError(
                f"The name pattern {pattern!r} is not a regular expression ({exc}); expected one with named groups, "
                f"e.g. {EXAMPLE_NAME_PATTERN!r}."
            ) from None
    if not rx.groupindex:
        raise StoreError(
            f"The name pattern {rx.pattern!r} has no named groups, so it fills nothing; name them agent, queue, "
            f"started_at, customer (others go to extra), e.g. {EXAMPLE_NAME_PATTERN!r}."
        )
    return rx


def metadata_from_name(name: str | os.PathLike, pattern: str | re.Pattern) -> CallMetadata | None:
    """Metadata read from a file's name by a regex with named groups (``re.search`` on the base name).

    Parameters
    ----------
    name : str or path-like
        The file (only its base name, extension included, is matched).
    pattern : str or re.Pattern
        Named groups ``agent``, ``queue``, ``started_at`` (see :func:`parse_started_at`) and
        ``customer``; other named groups go to :attr:`CallMetadata.extra`. For example
        :data:`EXAMPLE_NAME_PATTERN` reads ``billing_alice_20250501T101500.wav``.

    Returns
    -------
    CallMetadata or None
        ``None`` when the name does not match (missing metadata is fine).

    Raises
    ------
    StoreError
        The pattern is not a regex with named groups, or a matched ``started_at`` is not a time.
    """
    rx = compile_name_pattern(pattern)
    base = PurePosixPath(str(name).replace("\\", "/")).name
    m = rx.search(base)
    if m is None:
        return None
    fields = {k: v for k, v in m.groupdict().items() if v is not None}
    return _metadata(fields, where=f"file name {base!r} (name pattern {rx.pattern!r})")
