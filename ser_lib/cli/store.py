"""The call-store commands: ``calls list``, ``calls info`` and ``calls export``.

:func:`add_store_commands` registers the ``calls`` group on the main parser's sub-parsers::

    python -m ser_lib calls list --limit 20
    python -m ser_lib calls info --store data/calls.duckdb
    python -m ser_lib calls export --format parquet --out exports/

The store itself is :mod:`ser_lib.store` (docs/CALL_STORE.md); these commands only read it.
:func:`add_store_option` gives other commands the same ``--store`` / ``--no-store`` options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_CODES_HELP, number

_STORE_HELP = "the call store (default: $SER_CALL_STORE, then data/calls.duckdb)"


def add_store_option(p: argparse.ArgumentParser, *, allow_skip: bool = False) -> None:
    """Add ``--store PATH`` (and, with ``allow_skip``, ``--no-store``) to a command's parser."""
    p.add_argument("--store", metavar="PATH", help=_STORE_HELP)
    if allow_skip:
        p.add_argument("--no-store", action="store_true", help="do not write the analysis to the call store")


def add_store_commands(subparsers) -> None:
    """Register the ``calls`` command group (``list``, ``info``, ``export``) on ``subparsers``."""
    g = subparsers.add_parser(
        "calls",
        help="the call store: list analysed calls, show its size, export its tables",
        description="Read the call store that analyze-call and analyze-calls write to (an embedded DuckDB file; "
        "tables, views and SQL examples in docs/CALL_STORE.md). Reading never blocks a running analysis.",
        epilog=EXIT_CODES_HELP,
    )
    sub = g.add_subparsers(dest="calls_command", required=True, metavar="ACTION")

    ls = sub.add_parser("list", help="the most recent calls, as a table", epilog=EXIT_CODES_HELP)
    add_store_option(ls)
    ls.add_argument("--limit", type=number(int, low=1), default=20, metavar="N", help="show at most N calls (default 20)")
    ls.add_argument("--queue", action="append", metavar="NAME", help="only this queue (repeat for several)")
    ls.add_argument("--agent", action="append", metavar="NAME", help="only this agent (repeat for several)")
    ls.add_argument("--since", metavar="TIME", help="only calls at or after TIME (e.g. 2025-05-01)")
    ls.set_defaults(func=cmd_calls_list)

    info = sub.add_parser("info", help="the store's path, schema version and rows per table", epilog=EXIT_CODES_HELP)
    add_store_option(info)
    info.set_defaults(func=cmd_calls_info)

    ex = sub.add_parser(
        "export",
        help="write every table (its analyst view) as Parquet or CSV files",
        description="Write each table of the call store as OUT/<table>.parquet (or .csv): calls, windows, segments, "
        "party_summaries, quarter_summaries, worst_moments, alerts, each with its call's call_id, agent, queue and "
        "start time (the <table>_v views). JSON columns are written as text. Files are replaced atomically.",
        epilog=EXIT_CODES_HELP,
    )
    add_store_option(ex)
    ex.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format (default parquet)")
    ex.add_argument("--out", required=True, metavar="DIR", help="folder to write the files into (created if missing)")
    ex.set_defaults(func=cmd_calls_export)


def add_call_store_options(p: argparse.ArgumentParser) -> None:
    """``analyze-call``'s store options: ``--store``, ``--no-store``, ``--call-id``, ``--metadata``, ``--name-pattern``."""
    add_store_option(p, allow_skip=True)
    p.add_argument(
        "--call-id",
        metavar="ID",
        help="the call's id in the store (default: the file's path relative to the --metadata CSV's folder, else to "
        "the current folder, else absolute); the same id and model again replaces the stored analysis",
    )
    p.add_argument(
        "--metadata",
        metavar="CSV",
        help="call metadata CSV (columns file, agent, queue, started_at, customer, any others; file relative to the "
        "CSV's folder): the row of this file is stored with the analysis",
    )
    p.add_argument(
        "--name-pattern",
        metavar="REGEX",
        help="read metadata from the file name with a regex of named groups agent, queue, started_at, customer "
        r"(others kept as extra), e.g. '(?P<queue>[^_]+)_(?P<agent>[^_]+)_(?P<started_at>\d{8}T\d{6})'",
    )


def _relative(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def call_store_target(args, file: str):
    """What ``analyze-call`` stores ``file`` as: ``(store, call_id, metadata)``, or ``None`` with ``--no-store``.

    Checked before the analysis starts: the store opens for writing (created, or upgraded, if need
    be; a newer or damaged store is refused now, not after the work), the metadata CSV reads, the
    name pattern compiles.
    """
    if getattr(args, "no_store", False):
        return None
    from ..store import CallStore, compile_name_pattern, metadata_from_name, read_metadata_csv

    path = Path(file)
    rows = read_metadata_csv(args.metadata) if args.metadata else {}
    root = Path(args.metadata).parent if args.metadata else None
    call_id = args.call_id or (root is not None and _relative(path, root)) or _relative(path, Path.cwd())
    call_id = call_id or path.resolve().as_posix()
    metadata = rows.get(_relative(path, root) if root is not None else call_id)
    if metadata is None and args.name_pattern:
        metadata = metadata_from_name(path, compile_name_pattern(args.name_pattern))
    store = CallStore(args.store)
    store.check_writable()
    return store, call_id, metadata


def store_call(target, result, bundle, *, file: str, status: str = "completed") -> str:
    """Write ``result`` (the analysis of ``file``) to ``target`` from :func:`call_store_target`; returns its id."""
    from ..store import model_identity

    store, call_id, metadata = target
    name, sha = model_identity(bundle)
    return store.write_analysis(
        result, call_id=call_id, source=str(Path(file).resolve()), metadata=metadata, model_name=name, model_sha256=sha,
        status=status,
    )  # fmt: skip


def store_failure(target, error: Exception, bundle, *, file: str) -> str:
    """Record in ``target`` that ``file`` could not be analysed (``error``'s message); returns its id."""
    from ..store import model_identity

    store, call_id, metadata = target
    name, sha = model_identity(bundle)
    return store.write_failure(
        call_id=call_id, source=str(Path(file).resolve()), error=str(error), model_name=name, model_sha256=sha,
        metadata=metadata,
    )  # fmt: skip


def _reader(args):
    from ..store import CallStore

    return CallStore(args.store, read_only=True)


def cmd_calls_list(args) -> int:
    """``calls list``: the most recent calls, one line each."""
    store = _reader(args)
    cols = ["call_id", "started_at", "agent", "queue", "duration_s", "status", "customer_mean_sentiment",
            "customer_change", "customer_end_negative", "n_alerts", "model_name"]  # fmt: skip
    table = store.calls(queues=args.queue, agents=args.agent, since=args.since, columns=cols, limit=args.limit)
    if table.empty:
        print(f"No calls in {store.path} match.")
        return 0
    table = table.rename(
        columns={"customer_mean_sentiment": "cust_mean", "customer_change": "cust_change", "customer_end_negative": "ends_neg"}
    )
    shown = table.astype(object).where(table.notna(), "-")
    for col in ("duration_s", "cust_mean", "cust_change"):
        shown[col] = [v if v == "-" else f"{v:.2f}" if col != "duration_s" else f"{v:.0f}" for v in shown[col]]
    print(shown.to_string(index=False))
    return 0


def cmd_calls_info(args) -> int:
    """``calls info``: the store's path, schema version and rows per table."""
    store = _reader(args)
    counts = store.counts()
    print(f"{store.path}: schema version {counts.pop('schema_version')}, {store.path.stat().st_size / 1e6:.1f} MB")
    for table, n in counts.items():
        print(f"  {table:<18} {n:>10,}")
    return 0


def cmd_calls_export(args) -> int:
    """``calls export``: every table as Parquet or CSV."""
    store = _reader(args)
    files = store.export(args.out, fmt=args.format)
    for f in files:
        print(f"wrote {f}")
    return 0
