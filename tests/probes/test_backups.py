"""Backups probe on files made at test time (real pg_dump archives from the test cluster, gzip, SQLite
copies) and on Aperture's backup_config row in the Aperture-shaped database."""

from __future__ import annotations

import asyncio
import gzip
import os
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
import yaml

from agent.config import ConfigError, parse_config
from agent.probes.backups import build
from agent.store import Store
from agent.probes.base import run_probe
from pgcluster import free_port

T0 = 1_700_000_000  # mtimes are whole seconds, so st_mtime compares exactly
NOW = T0 + 3 * 86400
PGDMP = b"PGDMP\x01\x0e\x00" + b"\x00" * 200
SQL = b"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"


def put(directory: Path, name: str, content: bytes, mtime: int) -> Path:
    path = directory / name
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def probe_for(backup: dict, databases: list | None = None, now: float = NOW):
    config = parse_config({"backups": [backup], "databases": databases or []})
    [probe] = build(config, SimpleNamespace(clock=lambda: now))
    return probe


def values(result) -> dict[str, float]:
    return {s.name.removeprefix("caretaker_backup_"): s.value for s in result.samples}


def run(probe):
    return asyncio.run(probe.run())


def test_aperture_preset_newest_valid_file(tmp_path):
    put(tmp_path, "aperture_backup_2023-11-12.dump", PGDMP, T0)
    put(tmp_path, "aperture_backup_2023-11-13.dump", PGDMP + b"x" * 100, T0 + 86400)
    newest = put(tmp_path, "aperture_backup_2023-11-14.dump", PGDMP + b"y" * 300, T0 + 2 * 86400)
    put(tmp_path, "notes.txt", b"not a backup", T0 + 3 * 86400)  # newer, but not matched
    result = run(probe_for({"name": "aperture", "preset": "aperture", "directory": str(tmp_path)}))
    assert result.ok, result.reason
    assert values(result) == {"files": 3, "last_success_timestamp_seconds": T0 + 2 * 86400,
                              "size_bytes": newest.stat().st_size}
    assert newest.stat().st_size == len(PGDMP) + 300
    assert result.summary == f"3 file(s), newest valid {newest.name}: 1d old, 508 B"
    assert {s.label("target") for s in result.samples} == {"aperture"}


@pytest.mark.parametrize("content, why", [
    (b"", "is empty"),
    (b"<html>502 Bad Gateway</html>", "does not start with b'PGDMP'"),
    (b"PGD", "does not start with b'PGDMP'"),
])
def test_broken_newest_file_falls_back_and_fails(tmp_path, content, why):
    good = put(tmp_path, "aperture_backup_1.dump", PGDMP, T0)
    put(tmp_path, "aperture_backup_2.dump", content, T0 + 3600)
    result = run(probe_for({"name": "aperture", "preset": "aperture", "directory": str(tmp_path)}))
    assert not result.ok
    assert result.reason.startswith(f"newest file aperture_backup_2.dump {why}")
    assert values(result) == {"files": 2, "last_success_timestamp_seconds": T0, "size_bytes": good.stat().st_size}


def test_aphrodite_plain_and_gzip_sql(tmp_path):
    put(tmp_path, "aphrodite_1.sql", SQL, T0)
    newest = put(tmp_path, "aphrodite_2.sql.gz", gzip.compress(SQL * 50), T0 + 60)
    result = run(probe_for({"name": "aphrodite", "preset": "aphrodite", "directory": str(tmp_path)}))
    assert result.ok, result.reason
    assert values(result) == {"files": 2, "last_success_timestamp_seconds": T0 + 60,
                              "size_bytes": newest.stat().st_size}


@pytest.mark.parametrize("name, content, why", [
    ("b.sql.gz", gzip.compress(b"\x00binary garbage"), "does not start with b'--'"),
    ("b.sql.gz", b"\x1f\x8b" + b"\x00" * 30, "gzip stream is unreadable"),
    ("b.sql.gz", gzip.compress(b""), "is empty after decompression"),
    ("b.sql", b"PGDMP", "does not start with b'--'"),
])
def test_aphrodite_broken_files(tmp_path, name, content, why):
    put(tmp_path, name, content, T0)
    result = run(probe_for({"name": "aphrodite", "preset": "aphrodite", "directory": str(tmp_path)}))
    assert not result.ok and result.reason.startswith(f"newest file {name} {why}")
    assert values(result) == {"files": 1, "last_success_timestamp_seconds": 0, "size_bytes": 0}
    assert result.summary == "1 file(s), none valid"


def test_sql_gz_kind_requires_compression(tmp_path):
    put(tmp_path, "x.sql.gz", SQL, T0)
    result = run(probe_for({"name": "x", "directory": str(tmp_path), "pattern": "*.sql.gz", "kind": "sql.gz"}))
    assert not result.ok and result.reason == "newest file x.sql.gz is not gzip-compressed (no 1f 8b magic)"


def test_sqlite_copy(tmp_path):
    src = sqlite3.connect(tmp_path / "live.db")
    src.execute("CREATE TABLE t (x)")
    src.commit()
    copy = sqlite3.connect(tmp_path / "jellyfin-copy.db")
    src.backup(copy)
    src.close()
    copy.close()
    os.utime(tmp_path / "jellyfin-copy.db", (T0, T0))
    result = run(probe_for({"name": "jf", "directory": str(tmp_path), "pattern": "*-copy.db", "kind": "sqlite"}))
    assert result.ok, result.reason
    assert values(result) == {"files": 1, "last_success_timestamp_seconds": T0,
                              "size_bytes": (tmp_path / "jellyfin-copy.db").stat().st_size}


def test_real_pg_dump_files_pass(pg_cluster, tmp_path):
    pg_cluster.create_database("backup_src")
    with psycopg.connect(pg_cluster.dsn("backup_src"), autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
    conn_args = ["-h", "127.0.0.1", "-p", str(pg_cluster.port), "-U", "postgres", "backup_src"]
    custom = tmp_path / "aperture_backup_2023.dump"
    subprocess.run(["pg_dump", "-F", "c", "-Z", "6", "-f", str(custom), *conn_args], check=True, timeout=60)
    plain = tmp_path / "aphrodite.sql"
    subprocess.run(["pg_dump", "-f", str(plain), *conn_args], check=True, timeout=60)
    (tmp_path / "aphrodite.sql.gz").write_bytes(gzip.compress(plain.read_bytes()))
    for path, mtime in ((custom, T0), (plain, T0 + 1), (tmp_path / "aphrodite.sql.gz", T0 + 2)):
        os.utime(path, (mtime, mtime))
    aperture = run(probe_for({"name": "a", "preset": "aperture", "directory": str(tmp_path)}))
    aphrodite = run(probe_for({"name": "b", "preset": "aphrodite", "directory": str(tmp_path)}))
    assert aperture.ok and aphrodite.ok, (aperture.reason, aphrodite.reason)
    assert values(aperture) == {"files": 1, "last_success_timestamp_seconds": T0, "size_bytes": custom.stat().st_size}
    assert values(aphrodite) == {"files": 2, "last_success_timestamp_seconds": T0 + 2,
                                 "size_bytes": (tmp_path / "aphrodite.sql.gz").stat().st_size}


def test_empty_directory_reports_zero_so_backup_stale_fires(tmp_path):
    result = run(probe_for({"name": "a", "preset": "aperture", "directory": str(tmp_path)}))
    assert result.ok
    assert values(result) == {"files": 0, "last_success_timestamp_seconds": 0, "size_bytes": 0}
    assert result.summary == f"no backups in {tmp_path}"


def test_missing_directory_fails_without_samples(tmp_path):
    store = Store()
    status = asyncio.run(run_probe(probe_for({"name": "a", "preset": "aperture",
                                              "directory": str(tmp_path / "gone")}), store))
    assert not status.ok and status.reason == f"directory {tmp_path / 'gone'} does not exist"
    assert store.series("caretaker_backup_files") == []


def test_aperture_backup_config_row_gives_the_directory(fresh_aperture_db, tmp_path):
    dsn, manifest = fresh_aperture_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE backup_config SET backup_path = %s", (str(tmp_path),))
    put(tmp_path, "aperture_backup_x.dump", PGDMP, T0)
    built_at = manifest["built_at"].timestamp()
    probe = probe_for({"name": "aperture-backups", "preset": "aperture", "database": "aperture"},
                      [{"name": "aperture", "dsn": dsn, "profile": "aperture"}], now=built_at)
    result = run(probe)
    assert result.ok, result.reason
    assert values(result) == {"files": 1, "last_success_timestamp_seconds": T0, "size_bytes": len(PGDMP)}
    assert result.summary.endswith("; Aperture's last backup: 5h ago")  # the fixture's last_backup_at


def test_aperture_row_path_not_visible_here(aperture_db):
    dsn, manifest = aperture_db
    probe = probe_for({"name": "ab", "preset": "aperture", "database": "aperture"},
                      [{"name": "aperture", "dsn": dsn, "profile": "aperture"}])
    result = run(probe)
    assert not result.ok
    assert result.reason == f"directory {manifest['backup_config']['backup_path']} does not exist"


def test_unreachable_database_is_a_note_and_hides_the_password(tmp_path):
    put(tmp_path, "aperture_backup_1.dump", PGDMP, T0)
    dsn = f"host=127.0.0.1 port={free_port()} user=aperture password=hunter2 dbname=aperture"
    db = {"name": "aperture", "dsn": dsn, "profile": "aperture", "connect_timeout": "2s"}
    with_dir = run(probe_for({"name": "a", "preset": "aperture", "database": "aperture",
                              "directory": str(tmp_path)}, [db]))
    assert with_dir.ok
    assert "backup_config of aperture unreadable: " in with_dir.summary
    without_dir = run(probe_for({"name": "a", "preset": "aperture", "database": "aperture"}, [db]))
    assert not without_dir.ok
    assert without_dir.reason.startswith("no directory configured, and backup_config of aperture unreadable: ")
    assert "hunter2" not in with_dir.summary + without_dir.reason


def test_config_presets_and_errors():
    config = parse_config({"backups": [
        {"name": "a", "preset": "aperture", "directory": "/b"},
        {"name": "b", "preset": "aphrodite", "directory": "/c", "pattern": "nightly-*.sql.gz", "kind": "sql.gz"}]})
    a, b = config.backups
    assert (a.pattern, a.kind, a.retention) == (["aperture_backup_*.dump"], "pg_dump-custom", 7)
    assert (b.pattern, b.kind, b.retention) == (["nightly-*.sql.gz"], "sql.gz", None)
    for bad, message in [
        ({"name": "x", "directory": "/b"}, "backups[0].pattern: Field required"),
        ({"name": "x", "preset": "aperture"}, "give directory, or database"),
        ({"name": "x", "preset": "aperture", "database": "nope"}, "backups[0].database: no databases or sqlite"),
        ({"name": "x", "preset": "aperture", "directory": "/b", "kind": "tar"}, "backups[0].kind: Input should be"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config({"backups": [bad]})
        assert message in str(err.value)
    with pytest.raises(ConfigError, match="directory: required unless database has profile aperture"):
        parse_config({"backups": [{"name": "x", "preset": "aphrodite", "database": "d"}],
                      "databases": [{"name": "d", "dsn": "host=x", "profile": "aphrodite"}]})


def test_example_config_parses(monkeypatch):
    monkeypatch.setenv("APERTURE_DSN", "host=127.0.0.1 dbname=aperture")
    with open(Path(__file__).parents[2] / "examples" / "files.yaml", encoding="utf-8") as f:
        config = parse_config(yaml.safe_load(f))
    assert [b.name for b in config.backups] == ["aperture", "aphrodite", "jellyfin-db"]
    assert config.backups[1].pattern == ["*.sql", "*.sql.gz"]
    assert [log.app for log in config.logs] == ["jellyfin", "aperture", "myapp"]
