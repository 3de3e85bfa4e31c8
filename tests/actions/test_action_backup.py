"""backup → verify_backup → restore on the real PostgreSQL Aperture database and on Tsundoku's SQLite file;
a corrupted backup fails verification; retention; atomic writes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import threading

import psycopg
import pytest

from action_helpers import act, run, runtime
from agent.actions import backup, runner
from agent.actions.base import Progress, Refused

def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT relname FROM pg_stat_user_tables ORDER BY 1")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def pg_backups(tmp_path, dsn: str, app: str = "aperture", **extra) -> dict:
    return {"databases": [{"name": app, "dsn": dsn, "profile": app}],
            "backups": [{"name": app, "database": app, "directory": str(tmp_path / "backups"),
                         "pattern": f"{app}_backup_*.dump", "kind": "pg_dump-custom", **extra}]}


def test_postgres_backup_verify_restore_round_trip(tmp_path, fresh_aperture_db):
    dsn, manifest = fresh_aperture_db
    original = counts(dsn)
    rt = runtime(tmp_path, **pg_backups(tmp_path, dsn))
    try:
        plan = act(rt, "backup", dry_run=True)["result"]
        assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
        backup = act(rt, "backup")
        assert backup["outcome"] == "succeeded", backup["error"]
        b = backup["result"]
        path = tmp_path / "backups" / b["file"]
        assert plan["file"].startswith("aperture_backup_") and path.name.startswith("aperture_backup_")
        assert path.read_bytes()[:5] == b"PGDMP" and path.stat().st_size == b["size_bytes"]
        sidecar = (tmp_path / "backups" / (b["file"] + ".sha256")).read_text()
        assert sidecar == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n" == f"{b['sha256']}  {path.name}\n"
        assert subprocess.run(["sha256sum", "-c", path.name + ".sha256"], cwd=path.parent,
                              capture_output=True).returncode == 0
        manifest_file = json.loads((tmp_path / "backups" / (b["file"] + ".json")).read_text())
        assert manifest_file["tables"]["public.movies"] == manifest["counts"]["movies"]
        assert b["rows"] == sum(original.values()) and b["tables"] == len(original)
        assert sorted(p.name for p in path.parent.iterdir()) == sorted(
            [path.name, path.name + ".sha256", path.name + ".json"])  # no temporary file left behind

        verified = act(rt, "verify_backup")
        assert verified["outcome"] == "succeeded", verified["error"]
        v = verified["result"]
        assert (v["verified"], v["checksum"], v["readable"], v["restored"], v["compared_with"]) == \
            (True, "ok", True, True, "manifest")
        assert v["mismatches"] == [] and v["rows"] == b["rows"] and v["tables"] == len(original)
        assert {s.labels: s.value for s in rt.store.series("caretaker_backup_verified")} == {(("target", "aperture"),): 1}
        with psycopg.connect(dsn.replace("dbname=" + manifest["dbname"], "dbname=postgres"), autocommit=True) as c:
            assert c.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'caretaker_verify_%'").fetchone()[0] == 0

        with psycopg.connect(dsn, autocommit=True) as conn:  # damage: rows gone, a table dropped
            conn.execute("DELETE FROM movies WHERE id % 3 = 0")
            conn.execute("DROP TABLE api_errors")
        with pytest.raises(Exception) as e:
            act(rt, "restore", dry_run=False)
        assert "confirm" in str(e.value)
        restored = act(rt, "restore", confirm=True, params={"file": b["file"]})
        assert restored["outcome"] == "succeeded", restored["error"]
        r = restored["result"]
        assert r["file"] == b["file"] and r["pre_restore_backup"] != b["file"]
        assert (tmp_path / "backups" / r["pre_restore_backup"]).is_file()  # the damaged state, kept
        assert counts(dsn) == original  # identical row counts
    finally:
        run(rt.close())


def test_corrupted_backup_fails_verification(tmp_path, aphrodite_db):
    dsn, _ = aphrodite_db
    rt = runtime(tmp_path, **pg_backups(tmp_path, dsn, "aphrodite"))
    try:
        b = act(rt, "backup")["result"]
        path = tmp_path / "backups" / b["file"]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in the middle of the archive
        path.write_bytes(bytes(data))
        broken = act(rt, "verify_backup")
        assert broken["outcome"] == "failed"
        assert (broken["result"]["verified"], broken["result"]["checksum"]) == (False, "mismatch")
        assert {s.labels: s.value for s in rt.store.series("caretaker_backup_verified")} == {
            (("target", "aphrodite"),): 0}
        # without its sidecar (a backup the app wrote itself) the damage is found by the test restore
        (tmp_path / "backups" / (b["file"] + ".sha256")).unlink()
        broken = act(rt, "verify_backup")
        assert broken["outcome"] == "failed"
        res = broken["result"]
        assert res["checksum"] == "absent" and res["verified"] is False
        assert res["readable"] is False or res["restored"] is False or res["mismatches"]
        with pytest.raises(Refused) as e:  # and it will not be restored
            act(rt, "restore", confirm=True)
        assert "has not passed verify_backup" in e.value.reason
    finally:
        run(rt.close())


def test_retention_keeps_the_newest(tmp_path, aphrodite_db):
    dsn, _ = aphrodite_db
    rt = runtime(tmp_path, **pg_backups(tmp_path, dsn, "aphrodite", retention=2))
    try:
        files = [act(rt, "backup")["result"]["file"] for _ in range(3)]
    finally:
        run(rt.close())
    left = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert left == sorted(f + s for f in files[1:] for s in ("", ".sha256", ".json"))


def test_failed_dump_leaves_no_file(tmp_path, pg_cluster):
    dsn = pg_cluster.dsn("no_such_db")
    rt = runtime(tmp_path, **pg_backups(tmp_path, dsn))
    try:
        record = act(rt, "backup")
    finally:
        run(rt.close())
    assert record["outcome"] == "failed" and "does not exist" in record["error"]
    assert list((tmp_path / "backups").iterdir()) == []


def sqlite_backups(tmp_path, db_path) -> dict:
    return {"sqlite": [{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku"}],
            "backups": [{"name": "tsundoku", "database": "tsundoku", "directory": str(tmp_path / "bk"),
                         "pattern": "tsundoku_*.db", "kind": "sqlite", "retention": 7}]}


def series_count(db_path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT count(*) FROM series").fetchone()[0]


def test_sqlite_backup_verify_restore(tmp_path, tsundoku_db):
    db_path, _, manifest = tsundoku_db
    rt = runtime(tmp_path, **sqlite_backups(tmp_path, db_path))
    try:
        b = act(rt, "backup")
        assert b["outcome"] == "succeeded", b["error"]
        copy = tmp_path / "bk" / b["result"]["file"]
        assert copy.read_bytes()[:16] == b"SQLite format 3\x00"
        assert b["result"]["rows"] == manifest["series_total"] + manifest["runs_total"]
        v = act(rt, "verify_backup")
        assert v["outcome"] == "succeeded" and v["result"]["compared_with"] == "manifest", v
        with sqlite3.connect(db_path) as conn:
            conn.execute("DELETE FROM series WHERE id > 100")
        r = act(rt, "restore", confirm=True)
        assert r["outcome"] == "succeeded", r["error"]
    finally:
        run(rt.close())
    assert series_count(db_path) == manifest["series_total"]


def test_restore_refuses_a_file_whose_newest_verification_failed(tmp_path, tsundoku_db):
    db_path, _, manifest = tsundoku_db
    rt = runtime(tmp_path, **sqlite_backups(tmp_path, db_path))
    try:
        b = act(rt, "backup")["result"]
        path = tmp_path / "bk" / b["file"]
        assert act(rt, "verify_backup")["outcome"] == "succeeded"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # corrupted after it passed
        path.write_bytes(bytes(data))
        assert act(rt, "verify_backup")["outcome"] == "failed"
        with sqlite3.connect(db_path) as conn:
            conn.execute("DELETE FROM series WHERE id > 100")
        with pytest.raises(Refused) as e:  # the older pass does not count any more
            act(rt, "restore", confirm=True, params={"file": b["file"]})
        assert "has not passed verify_backup" in e.value.reason and "failed" in e.value.reason
        assert series_count(db_path) < manifest["series_total"]

        # a backup without its .sha256 sidecar (checksum "absent") is restored once it passed verification
        clean = act(rt, "backup")["result"]["file"]
        (tmp_path / "bk" / (clean + ".sha256")).unlink()
        v = act(rt, "verify_backup", params={"file": clean})
        assert v["outcome"] == "succeeded" and v["result"]["checksum"] == "absent", v
        r = act(rt, "restore", confirm=True, params={"file": clean})
        assert r["outcome"] == "succeeded", r["error"]
    finally:
        run(rt.close())


class GatedProgress(Progress):
    """Progress whose restore copy, in its worker thread, waits at its first page step until released."""

    entered = threading.Event()
    release = threading.Event()

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        if name == "version" and self.phase == "restore" and threading.current_thread() is not threading.main_thread():
            GatedProgress.entered.set()
            assert GatedProgress.release.wait(10)


def test_sqlite_restore_stops_when_the_run_is_cancelled(tmp_path, tsundoku_db, monkeypatch):
    db_path, _, manifest = tsundoku_db
    GatedProgress.entered.clear()
    GatedProgress.release.clear()
    monkeypatch.setattr(runner, "Progress", GatedProgress)
    monkeypatch.setattr(backup, "SQLITE_PAGES_PER_STEP", 1)  # many steps, so the copy is stopped mid-way
    rt = runtime(tmp_path, **sqlite_backups(tmp_path, db_path))

    async def main() -> dict:
        prep = rt.actions.prepare("restore", params={"require_verified": False}, confirm=True)
        started = await rt.actions.start(prep, "cli", "t")
        try:
            assert await asyncio.to_thread(GatedProgress.entered.wait, 30), "the restore copy never started"
            await rt.actions.cancel_all()  # the agent shutting down
        finally:
            GatedProgress.release.set()
        return rt.actions.get_run(started["run_id"])

    try:
        assert act(rt, "backup")["outcome"] == "succeeded"
        with sqlite3.connect(db_path) as conn:
            conn.execute("DELETE FROM series WHERE id > 100")
        damaged = series_count(db_path)
        record = run(main())  # asyncio.run waits for the copy's worker thread to end
    finally:
        run(rt.close())
    assert record["outcome"] == "cancelled"
    assert damaged < manifest["series_total"] and series_count(db_path) == damaged  # stopped and rolled back
