"""Plugin entity schemas: manifest entities → SQLAlchemy tables, creation and upgrade diffs."""

from app.schema.diff import Change, ChangeKind, SchemaDiff, apply_additive, diff_entities
from app.schema.tables import (
    STANDARD_COLUMNS,
    UtcDateTime,
    build_metadata,
    build_table,
    column_type,
    ensure_tables,
    index_name,
    search_index_name,
    server_default_for,
)

__all__ = [
    "STANDARD_COLUMNS",
    "Change",
    "ChangeKind",
    "SchemaDiff",
    "UtcDateTime",
    "apply_additive",
    "build_metadata",
    "build_table",
    "column_type",
    "diff_entities",
    "ensure_tables",
    "index_name",
    "search_index_name",
    "server_default_for",
]
