"""Backups probe: the files of a backup target — count, newest valid file's time and size, and a header check
(DESIGN.md §6 'backups').

A header check reads the first bytes only: `PGDMP` for `pg_dump -Fc` archives (PostgreSQL doc "pg_dump",
custom format; pg_backup_archiver.c writes the magic first), `--` for plain SQL (pg_dump's header comment),
`SQLite format 3\\0` for SQLite copies (SQLite doc "Database File Format" §1.3). A gzip file (magic 1f 8b,
RFC 1952) is checked on its decompressed head. Restorability is the verify_backup action's job, not this.

For a target whose `database` has profile aperture, Aperture's own `backup_config` row (DESIGN.md §5) gives
the directory when none is configured, and its `last_backup_at` is shown beside what the files say.
"""

from __future__ import annotations

import asyncio
import gzip
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from agent.appdb import open_app_db
from agent.config import BackupKind, BackupTargetConfig, Config, DatabaseConfig
from agent.pg import describe_pg_error
from agent.probes.base import Probe, ProbeResult
from agent.rules.format import format_value
from agent.samples import sample

GZIP_MAGIC = b"\x1f\x8b"
MAGIC: dict[BackupKind, bytes] = {"pg_dump-custom": b"PGDMP", "sql": b"--", "sql.gz": b"--",
                                  "sqlite": b"SQLite format 3\x00"}
# A directory of thousands of broken files must not turn a probe run into thousands of reads.
MAX_HEADER_CHECKS = 100
# Aperture keeps one row (DESIGN.md §5); Caretaker only reads it.
BACKUP_CONFIG_SQL = """
SELECT backup_path, EXTRACT(EPOCH FROM last_backup_at)::float8 AS last_backup_at FROM backup_config LIMIT 1
"""


@dataclass(frozen=True)
class BackupFile:
    path: Path
    mtime: float  # Unix time
    size: int  # bytes


@dataclass(frozen=True)
class Inventory:
    files: list[BackupFile]  # newest first
    valid: BackupFile | None  # the newest file that passes the header check
    problem: str  # why the newest file fails it; "" when it passes (or there are no files)


@dataclass(frozen=True)
class AppRecord:
    """Aperture's backup_config row."""

    backup_path: str
    last_backup_at: float | None


def header_problem(path: Path, kind: BackupKind) -> str:
    """"" when `path` starts like a `kind` backup, else what is wrong with it. Raises OSError."""
    with path.open("rb") as f:
        compressed = f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        f.seek(0)
        try:
            head = gzip.GzipFile(fileobj=f).read(len(MAGIC[kind])) if compressed else f.read(len(MAGIC[kind]))
        except (OSError, EOFError, zlib.error) as exc:
            return f"gzip stream is unreadable ({exc})"
    if kind == "sql.gz" and not compressed:
        return "is not gzip-compressed (no 1f 8b magic)"
    if not head:
        return "is empty" + (" after decompression" if compressed else "")
    if not head.startswith(MAGIC[kind]):
        return f"does not start with {MAGIC[kind]!r} as a {kind} backup does (starts with {head!r})"
    return ""


def inventory(directory: Path, patterns: list[str], kind: BackupKind) -> Inventory:
    """Regular files in `directory` matching any glob of `patterns`, newest first (ties by name), and the
    newest one passing the header check. Raises OSError when the directory cannot be read."""
    found: dict[Path, BackupFile] = {}
    for pattern in patterns:
        for path in directory.glob(pattern):
            try:
                st = path.stat()
            except FileNotFoundError:  # removed meanwhile (retention), or a dangling link
                continue
            if stat.S_ISREG(st.st_mode):
                found[path] = BackupFile(path, st.st_mtime, st.st_size)
    files = sorted(found.values(), key=lambda f: (f.mtime, f.path.name), reverse=True)
    problem = ""
    for f in files[:MAX_HEADER_CHECKS]:
        try:
            why = header_problem(f.path, kind)
        except FileNotFoundError:
            continue
        if not why:
            return Inventory(files, f, problem)
        problem = problem or f"newest file {f.path.name} {why}"
    return Inventory(files, None, problem)


async def read_app_record(db: DatabaseConfig) -> AppRecord | None:
    """Aperture's backup_config row, read-only under the database's timeouts; None when the table is empty.
    Raises psycopg.Error."""
    async with open_app_db(db) as session:
        rows = await session.rows(BACKUP_CONFIG_SQL)
    return AppRecord(rows[0]["backup_path"], rows[0]["last_backup_at"]) if rows else None


class BackupsProbe(Probe):
    """Exports `caretaker_backup_files`, `caretaker_backup_last_success_timestamp_seconds` and
    `caretaker_backup_size_bytes` (of the newest file passing the header check; 0 when none does, so
    BackupStale fires) with `target`. Fails when the directory is missing or the newest file is broken."""

    kind = "backups"

    def __init__(self, cfg: BackupTargetConfig, app_db: DatabaseConfig | None, clock):
        super().__init__(cfg.name, cfg.interval, cfg.timeout)
        self.cfg = cfg
        self.app_db = app_db  # set for Aperture databases: its backup_config row is read
        self.clock = clock

    async def _app_record(self) -> tuple[AppRecord | None, str]:
        if self.app_db is None:
            return None, ""
        try:
            record = await read_app_record(self.app_db)
        except psycopg.Error as exc:
            return None, f"backup_config of {self.app_db.name} unreadable: {describe_pg_error(exc)}"
        return record, "" if record else f"backup_config of {self.app_db.name} has no row"

    async def run(self) -> ProbeResult:
        record, note = await self._app_record()
        directory = self.cfg.directory or (Path(record.backup_path) if record else None)
        if directory is None:
            return ProbeResult(ok=False, reason=f"no directory configured, and {note}")
        if not directory.is_dir():
            return ProbeResult(ok=False, reason=f"directory {directory} does not exist")
        inv = await asyncio.to_thread(inventory, directory, self.cfg.pattern, self.cfg.kind)
        valid = inv.valid
        samples = [
            sample("caretaker_backup_files", len(inv.files), target=self.target),
            sample("caretaker_backup_last_success_timestamp_seconds", valid.mtime if valid else 0, target=self.target),
            sample("caretaker_backup_size_bytes", valid.size if valid else 0, target=self.target),
        ]
        now = self.clock()
        if valid:
            summary = (f"{len(inv.files)} file(s), newest valid {valid.path.name}: "
                       f"{format_value('seconds', now - valid.mtime)} old, {format_value('bytes', valid.size)}")
        else:
            summary = f"{len(inv.files)} file(s), none valid" if inv.files else f"no backups in {directory}"
        if record and record.last_backup_at is not None:
            summary += f"; Aperture's last backup: {format_value('seconds', now - record.last_backup_at)} ago"
        if note:
            summary += f"; {note}"
        return ProbeResult(samples, ok=not inv.problem, reason=inv.problem, summary=summary)


def build(config: Config, deps) -> list[Probe]:
    databases = {d.name: d for d in config.databases}
    probes: list[Probe] = []
    for cfg in config.backups:
        db = databases.get(cfg.database or "")
        probes.append(BackupsProbe(cfg, db if db is not None and db.profile == "aperture" else None, deps.clock))
    return probes
