"""Database: base models, engine configuration, migrations."""

# Execution option: begin this connection's SQLite transaction IMMEDIATE (take the write lock first).
# Work that reads and then writes while others may write too (write requests, event deliveries,
# background guest calls) uses it, so it waits for the other writer instead of failing when that one
# commits between its reads and its writes (SQLite refuses a write from a stale read snapshot).
SQLITE_WRITE_LOCK = "portal_sqlite_write_lock"
