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
    """
    CREATE TABLE action_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, target TEXT NOT NULL,
        trigger TEXT NOT NULL CHECK (trigger IN ('cli', 'api', 'schedule', 'alert', 'alertmanager')),
        who TEXT NOT NULL, params TEXT NOT NULL, dry_run INTEGER NOT NULL, alert TEXT,
        started_at REAL NOT NULL, finished_at REAL, outcome TEXT NOT NULL, result TEXT, error TEXT,
        progress_done INTEGER NOT NULL DEFAULT 0, progress_total INTEGER, progress_phase TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL, pid_started REAL NOT NULL);
    CREATE INDEX action_runs_action_idx ON action_runs (action, target, started_at);
    CREATE INDEX action_runs_alert_idx ON action_runs (alert, started_at);
    CREATE TABLE action_locks (
        action TEXT NOT NULL, target TEXT NOT NULL, run_id INTEGER NOT NULL REFERENCES action_runs (id),
        PRIMARY KEY (action, target));
    CREATE TABLE remediation_escalations (alert TEXT PRIMARY KEY, escalated_at REAL NOT NULL);
    """,
    # Alerting (agent/rules/engine.py, agent/notify/): `labels` is the alert's label set as sorted JSON.
    """
    CREATE TABLE alerts (
        rule TEXT NOT NULL, labels TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'firing')),
        active_since REAL NOT NULL, fired_at REAL, last_true REAL NOT NULL, value REAL,
        PRIMARY KEY (rule, labels));
    CREATE TABLE alert_transitions (rule TEXT NOT NULL, labels TEXT NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX alert_transitions_idx ON alert_transitions (rule, labels, at);
    CREATE TABLE alert_flapping (rule TEXT NOT NULL, labels TEXT NOT NULL, since REAL NOT NULL,
        PRIMARY KEY (rule, labels));
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, dest TEXT NOT NULL,
        rule TEXT NOT NULL, labels TEXT NOT NULL, fired_at REAL, kind TEXT NOT NULL, payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'expired', 'muted')),
        held_by TEXT, was_held TEXT, ready_at REAL, attempts INTEGER NOT NULL DEFAULT 0, sent_at REAL);
    CREATE INDEX outbox_dest_idx ON outbox (status, dest, id);
    CREATE INDEX outbox_alert_idx ON outbox (rule, labels, dest, fired_at);
    CREATE TABLE silences (
        id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
        reason TEXT NOT NULL, created_by TEXT NOT NULL, created_at REAL NOT NULL);
    CREATE TABLE alert_notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, labels TEXT NOT NULL, text TEXT NOT NULL,
        created_at REAL NOT NULL);
    CREATE TABLE alert_note_sent (
        note_id INTEGER NOT NULL REFERENCES alert_notes (id) ON DELETE CASCADE, dest TEXT NOT NULL,
        PRIMARY KEY (note_id, dest));
    """,
    # Push pings of cron scripts (agent/pings.py): kind start|success|fail, at = epoch seconds.
    """
    CREATE TABLE job_pings (
        id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('start', 'success', 'fail')), at REAL NOT NULL);
    CREATE INDEX job_pings_job_idx ON job_pings (job, id);
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
