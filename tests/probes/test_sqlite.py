"""SQLite probe on real SQLite files made at test time: sizes, quick_check on corrupted copies, freelist
ratio, read-only behaviour next to a writer, missing files, timeouts."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from agent.appdb import sqlite_uri
from agent.config import SQLiteConfig
from agent.probes.base import run_probe
from agent.probes.sqlite import SQLiteProbe
from agent.store import Store


def make_db(path: Path, rows: int = 2000, wal: bool = False) -> Path:
    """A table `t` with an index on `name`; deterministic content, 4 KiB pages."""
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.execute("CREATE INDEX t_name ON t (name)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (name) VALUES (?)", [(f"name-{i:05d}",) for i in range(rows)])
    conn.execute("COMMIT")
    conn.close()
    return path


def probe(path: Path, **kw) -> SQLiteProbe:
    return SQLiteProbe(SQLiteConfig(name="app", path=path, **kw))


def values(result) -> dict[str, float]:
    assert all(s.label("database") == "app" for s in result.samples)
    return {s.name.removeprefix("caretaker_sqlite_"): s.value for s in result.samples}


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def overwrite_page(path: Path, table_or_index: str, offset: int, data: bytes) -> None:
    """Overwrite bytes inside the root page of a table or index."""
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table_or_index,)).fetchone()[0]
    conn.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size + offset)
        f.write(data)


def test_clean_database_values(tmp_path):
    db = make_db(tmp_path / "clean.db")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM t WHERE id > 500")  # whole pages freed: a non-zero freelist
        conn.commit()
        free, pages = conn.execute("SELECT freelist_count, page_count FROM pragma_freelist_count(), "
                                   "pragma_page_count()").fetchone()
    conn.close()
    assert free > 0
    result = asyncio.run(probe(db).run())
    assert result.ok, result.reason
    assert values(result) == {"size_bytes": db.stat().st_size, "integrity_errors": 0,
                              "freelist_ratio": free / pages}
    assert pages * 4096 == db.stat().st_size
    assert "quick_check ok" in result.summary


def test_wal_size_counts_the_log(tmp_path):
    db = make_db(tmp_path / "wal.db", wal=True)
    app = sqlite3.connect(db, isolation_level=None)  # an app holding the database open keeps its -wal
    try:
        app.execute("PRAGMA wal_autocheckpoint=0")
        app.execute("INSERT INTO t (name) VALUES ('late')")
        wal = db.with_name("wal.db-wal")
        assert wal.stat().st_size > 0
        result = asyncio.run(probe(db).run())
        assert result.ok, result.reason
        assert values(result)["size_bytes"] == db.stat().st_size + wal.stat().st_size
        assert values(result)["integrity_errors"] == 0
    finally:
        app.close()


def test_tsundoku_database_is_clean(tsundoku_db):
    path, _, _ = tsundoku_db
    result = asyncio.run(probe(path).run())
    assert result.ok, result.reason
    wal = path.with_name(path.name + "-wal")
    expected = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    assert values(result)["size_bytes"] == expected
    assert values(result)["integrity_errors"] == 0


def test_corrupt_index_page_counts_each_problem(tmp_path):
    original = make_db(tmp_path / "original.db")
    with sqlite3.connect(original) as conn:  # dbstat: the index's pages, root included
        index_pages = conn.execute("SELECT count(*) FROM dbstat WHERE name = 't_name'").fetchone()[0]
    conn.close()
    broken = tmp_path / "broken.db"
    shutil.copy(original, broken)
    overwrite_page(broken, "t_name", 0, b"\xff" * 8)  # a garbage b-tree page header on the index root
    result = asyncio.run(probe(broken).run())
    assert result.ok, result.reason
    # the root page fails to initialise, and each of its now unreachable children "is never used"
    assert index_pages == 11
    assert values(result)["integrity_errors"] == index_pages
    assert "Page 3: btreeInitPage() returns error code 11" in result.summary
    assert values(asyncio.run(probe(original).run()))["integrity_errors"] == 0


def test_unreadable_table_root_is_one_error(tmp_path):
    db = make_db(tmp_path / "root.db")
    overwrite_page(db, "t", 0, b"\x07")  # not a valid page type: SQLite refuses to read the schema's table
    result = asyncio.run(probe(db).run())
    assert result.ok, result.reason
    assert values(result) == {"size_bytes": db.stat().st_size, "integrity_errors": 1}
    assert "malformed" in result.summary


def test_probe_never_changes_the_file_or_directory(tmp_path):
    db = make_db(tmp_path / "ro.db")
    before, listing = fingerprint(db), sorted(os.listdir(tmp_path))
    time.sleep(0.01)  # a write now would give a different mtime_ns
    for _ in range(2):
        assert asyncio.run(probe(db).run()).ok
    assert fingerprint(db) == before
    assert sorted(os.listdir(tmp_path)) == listing


def test_rollback_mode_writer_waits_only_for_the_check(tmp_path):
    db = make_db(tmp_path / "rb.db")
    writer = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")  # RESERVED: readers may still read
        writer.execute("INSERT INTO t (name) VALUES ('during the check')")
        result = asyncio.run(probe(db).run())
        assert result.ok, result.reason
        writer.execute("COMMIT")  # needs EXCLUSIVE, with no wait: the probe holds nothing any more
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("COMMIT")
    finally:
        writer.close()


def test_wal_writer_commits_during_the_check(tmp_path):
    db = make_db(tmp_path / "walw.db", rows=20000, wal=True)
    writer = sqlite3.connect(db, isolation_level=None, timeout=0, check_same_thread=False)
    commits, stop = [], threading.Event()

    def write() -> None:  # no busy wait allowed: any lock held by the probe would raise here
        for i in range(2000):
            if stop.is_set():
                break
            writer.execute("INSERT INTO t (name) VALUES (?)", (f"w{i}",))
            commits.append(i)

    try:
        thread = threading.Thread(target=write)
        thread.start()
        results = [asyncio.run(probe(db).run()) for _ in range(3)]
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
        assert all(r.ok for r in results), [r.reason for r in results]
        assert all(values(r)["integrity_errors"] == 0 for r in results)
        assert commits and commits == list(range(len(commits)))
    finally:
        writer.close()


def test_exclusive_lock_fails_after_busy_timeout(tmp_path):
    db = make_db(tmp_path / "locked.db")
    writer = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        result = asyncio.run(probe(db, busy_timeout="200ms").run())
        assert not result.ok
        assert result.reason == f"quick_check on {db} failed: database is locked"
        assert values(result) == {"size_bytes": db.stat().st_size}
    finally:
        writer.close()


def test_timeout_interrupts_the_check(tmp_path):
    db = make_db(tmp_path / "slow.db", rows=300_000)
    store = Store()
    started = time.monotonic()
    status = asyncio.run(run_probe(probe(db, timeout="1ms"), store))
    assert not status.ok and status.reason == "timed out after 0.001s"
    # asyncio.run waits for the worker thread: it ended once interrupted, long before a full check would
    with sqlite3.connect(db) as conn:
        conn.execute("BEGIN EXCLUSIVE")  # nothing is left holding the file
        conn.rollback()
    conn.close()
    assert time.monotonic() - started < 60


def test_missing_file_is_a_clear_failure_and_stays_missing(tmp_path):
    missing = tmp_path / "nope.db"
    store = Store()
    status = asyncio.run(run_probe(probe(missing), store))
    assert not status.ok
    assert status.reason == f"{missing} does not exist"
    assert not missing.exists() and os.listdir(tmp_path) == []
    assert [s.value for s in store.series("caretaker_probe_success")] == [0.0]
    assert store.series("caretaker_sqlite_size_bytes") == []


def test_directory_is_not_a_database(tmp_path):
    result = asyncio.run(probe(tmp_path).run())
    assert not result.ok and result.reason == f"{tmp_path} is not a regular file"


@pytest.mark.parametrize("content", [b"", b"this is not a database" * 300])
def test_not_a_database_counts_as_corrupt(tmp_path, content):
    db = tmp_path / "junk.db"
    db.write_bytes(content)
    result = asyncio.run(probe(db).run())
    if content:
        assert values(result) == {"size_bytes": len(content), "integrity_errors": 1}
        assert "not a database" in result.summary
    else:  # SQLite treats an empty file as an empty database
        assert values(result) == {"size_bytes": 0, "integrity_errors": 0, "freelist_ratio": 0.0}


def test_path_with_uri_characters_is_opened_read_only(tmp_path):
    """One URI helper (agent.appdb.sqlite_uri) for the probe, app queries and the actions: `?`, `#`, `%`
    and spaces are escaped."""
    folder = tmp_path / "a dir?x=1#frag%20"
    folder.mkdir()
    db = make_db(folder / "app.db", rows=10)
    before = fingerprint(db)
    result = asyncio.run(probe(db).run())
    assert result.ok, result.reason
    assert fingerprint(db) == before
    with sqlite3.connect(sqlite_uri(db), uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 10
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM t")
    conn.close()
