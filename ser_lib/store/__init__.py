"""The call store: every analysed call remembered in an embedded DuckDB file, for comparison and analytics.

- :class:`CallStore`: write one call's analysis (or its failure) in one transaction; read calls back
  (:meth:`~CallStore.calls`, :meth:`~CallStore.query`), export every table (:meth:`~CallStore.export`).
- :func:`default_store_path`: ``$SER_CALL_STORE``, else ``data/calls.duckdb``.
- :func:`model_identity`: a loaded bundle's ``(model_name, model_sha256)``.
- :class:`CallMetadata`, :func:`read_metadata_csv`, :func:`metadata_from_name`: agent, queue, customer
  and start time from a CSV beside the archive or from file names.
- :mod:`ser_lib.store.schema`: tables, analyst views (``<table>_v``), schema version and migrations.

Only this package imports DuckDB. Tables, columns, views and the concurrency rules: docs/CALL_STORE.md.
"""

from __future__ import annotations

from .metadata import EXAMPLE_NAME_PATTERN, CallMetadata, compile_name_pattern, metadata_from_name, read_metadata_csv
from .rows import analysis_id, customer_role
from .schema import SCHEMA_VERSION, TABLES, VIEWS
from .store import STORE_ENV, CallStore, default_store_path, model_identity

__all__ = [
    "EXAMPLE_NAME_PATTERN",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "TABLES",
    "VIEWS",
    "CallMetadata",
    "CallStore",
    "analysis_id",
    "compile_name_pattern",
    "customer_role",
    "default_store_path",
    "metadata_from_name",
    "model_identity",
    "read_metadata_csv",
]
