"""SQLite probe: size, ``PRAGMA quick_check`` and freelist share of a database file (DESIGN.md §6 'sqlite').

The file is opened through a ``file:…?mode=ro`` URI (SQLite doc "Uniform Resource Identifiers"), so the
probe can neither write the database nor create it when it is missing. One short session per run: open,
check, close; a busy timeout bounds the wait for a writer's lock. Readers never block writers of a WAL
database; in rollback-journal mode a writer's commit waits at most for the check (SQLite doc "File
Locking"). On a WAL database that no process has open, SQLite itself creates the empty ``-wal`` and
``-shm`` files every reader needs (owned like the database when the agent runs as root).

Sources: SQLite doc "Pragma statements" (quick_check, freelist_count, page_count), "Result and Error
Codes" (SQLITE_CORRUPT 11, SQLITE_NOTADB 26).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.appdb import sqlite_uri
from agent.config import Config, SQLiteConfig
from agent.probes.base import Probe, ProbeResult
from agent.rules.format import format_value
from agent.samples import sample

# One statement, so freelist and page counts come from the same read transaction.
PAGES_SQL = "SELECT freelist_count, page_count FROM pragma_freelist_count(), pragma_page_count()"
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def sqlite_size(path: Path) -> int:
    """Bytes of the database file plus its write-ahead log (absent -wal counts 0); OSError if `path` is missing."""
    size = path.stat().st_size
    try:
        size += path.with_name(path.name + "-wal").stat().st_size
    except FileNotFoundError:
        pass
    return size


def problems(rows: list[tuple]) -> list[str]:
    """The problems in quick_check's answer (`ok` alone means none). SQLite 3.40 joins its messages into one
    row with newlines, older releases give one row each; both add '*** in database main ***' headers."""
    lines = (line.strip() for row in rows for line in str(row[0]).splitlines())
    return [line for line in lines if line and line != "ok" and not line.startswith("*** in database")]


@dataclass
class Findings:
    errors: int
    freelist_ratio: float | None  # None when the file is too damaged to read its header
    first_problem: str


class ReadOnlyCheck:
    """One read-only quick_check session. `interrupt()` (from the event loop, on timeout) aborts it; the
    connection is closed by the worker thread itself, never while a statement of it still runs."""

    def __init__(self, path: Path, busy_timeout: float):
        self.uri = sqlite_uri(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._interrupted = False

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            if self._conn is not None:
                self._conn.interrupt()

    def run(self) -> Findings:
        """Blocking. Corruption is a finding; raises sqlite3.Error for anything else (locked, unreadable,
        interrupted)."""
        conn = sqlite3.connect(self.uri, uri=True, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            with self._lock:
                if self._interrupted:
                    raise sqlite3.OperationalError("interrupted")
                self._conn = conn
            try:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                free, pages = conn.execute(PAGES_SQL).fetchone()
            except sqlite3.DatabaseError as exc:
                if exc.sqlite_errorcode & 0xFF not in _CORRUPT_CODES:
                    raise
                return Findings(1, None, str(exc))
            found = problems(rows)
            return Findings(len(found), free / pages if pages else 0.0, found[0] if found else "")
        finally:
            with self._lock:
                self._conn = None
            conn.close()


class SQLiteProbe(Probe):
    """Exports `caretaker_sqlite_size_bytes`, `_integrity_errors` (quick_check problems, at most 100: the
    pragma's default limit) and `_freelist_ratio` (freelist_count / page_count), all with `database`."""

    kind = "sqlite"

    def __init__(self, cfg: SQLiteConfig):
        super().__init__(cfg.name, cfg.interval, cfg.timeout)
        self.path = cfg.path
        # interrupt() stops a running check but not a wait for a lock: bound that wait by the timeout too.
        self.busy_timeout = min(cfg.busy_timeout, cfg.timeout)

    async def run(self) -> ProbeResult:
        if not self.path.is_file():
            what = "is not a regular file" if self.path.exists() else "does not exist"
            return ProbeResult(ok=False, reason=f"{self.path} {what}")
        size = sqlite_size(self.path)
        check = ReadOnlyCheck(self.path, self.busy_timeout)
        try:
            found = await asyncio.to_thread(check.run)
        except asyncio.CancelledError:
            check.interrupt()  # the thread would otherwise keep reading after the probe's timeout
            raise
        except sqlite3.Error as exc:
            return ProbeResult([sample("caretaker_sqlite_size_bytes", size, database=self.target)], ok=False,
                               reason=f"quick_check on {self.path} failed: {exc}")
        samples = [sample("caretaker_sqlite_size_bytes", size, database=self.target),
                   sample("caretaker_sqlite_integrity_errors", found.errors, database=self.target)]
        if found.freelist_ratio is not None:
            samples.append(sample("caretaker_sqlite_freelist_ratio", found.freelist_ratio, database=self.target))
        verdict = "quick_check ok" if not found.errors else f"{found.errors} problem(s): {found.first_problem}"
        free = "" if found.freelist_ratio is None else f", {format_value('ratio', found.freelist_ratio)} free pages"
        return ProbeResult(samples, summary=f"{format_value('bytes', size)}, {verdict}{free}")


def build(config: Config, deps) -> list[Probe]:
    return [SQLiteProbe(cfg) for cfg in config.sqlite]
