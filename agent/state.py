"""The SQLite state file (DESIGN.md §10): alert states, outbox, silences, action runs, job pings.

WAL mode, a versioned schema with a migration table, one connection guarded by a lock (the agent is one
process; every statement is small). Losing the file loses history, not safety.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Append-only: each entry upgrades the schema by one version. Never edit a released entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE integrity_runs (
        database TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL NOT NULL,
        checked INTEGER NOT NULL, skipped INTEGER NOT NULL, errors INTEGER NOT NULL, error TEXT,
        PRIMARY KEY (database, started_at));
    CREATE TABLE integrity_findings (
        database TEXT NOT NULL, started_at REAL NOT NULL, relation TEXT NOT NULL, message TEXT NOT NULL);
    """,
    """
    CREATE TABLE log_files (
        app TEXT NOT NULL, dev INTEGER NOT NULL, inode INTEGER NOT NULL, path TEXT NOT NULL,
        offset INTEGER NOT NULL, head_len INTEGER NOT NULL, head_crc INTEGER NOT NULL,
        PRIMARY KEY (app, dev, inode));
    CREATE TABLE log_lines (app TEXT NOT NULL, level TEXT NOT NULL, lines INTEGER NOT NULL,
        PRIMARY KEY (app, level));
    """,
]


class State:
    """Open (creating if needed) the state database at `path` and bring its schema up to date."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # the outbox must survive a power cut
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
            current = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, strftime('%s','now'))", (version,))

    @property
    def schema_version(self) -> int:
        return self.query("SELECT MAX(version) AS v FROM schema_migrations")[0]["v"]

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def get(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM kv WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def put(self, key: str, value: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
