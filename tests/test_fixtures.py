"""The fixtures plant what their manifests say: each count is checked against the real database."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from fixtures import corrupt_index, create_scratch_index, plant_invalid_index, provider_item_id, set_poster_base


def q(dsn: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute(query, params or None).fetchall()


def one(dsn: str, query: str, params: tuple = ()) -> object:
    return q(dsn, query, params)[0][0]


# --- cluster ---------------------------------------------------------------------------------------------------


def test_cluster_roles_and_files(pg_cluster):
    assert pg_cluster.running and one(pg_cluster.dsn(), "SELECT 1") == 1
    assert one(pg_cluster.dsn(), "SHOW listen_addresses") == "127.0.0.1"
    dsn = pg_cluster.create_role("fixture_reader", "pw")
    assert one(dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
    assert pg_cluster.relation_filepath("postgres", "pg_class").is_file()


# --- aperture --------------------------------------------------------------------------------------------------


def test_aperture_items_and_posters(aperture_db):
    dsn, m = aperture_db
    for table, n in m["counts"].items():
        assert one(dsn, f"SELECT count(*) FROM {table}") == n
    assert sorted(r[0] for r in q(dsn, "SELECT id FROM movies WHERE poster_url IS NULL")) == \
        m["missing_poster_movie_ids"]
    items = m["jellyfin_items"]
    assert len(items) == m["counts"]["movies"] + m["counts"]["series"]
    prefix = m["jellyfin_base"] + "/Items/"
    for table, planted in (("movies", "stale_poster_movie_ids"), ("series", "stale_poster_series_ids")):
        stale = []
        for db_id, pid, url in q(dsn, f"SELECT id, provider_item_id, poster_url FROM {table} "
                                      "WHERE poster_url IS NOT NULL ORDER BY id"):
            assert url.startswith(f"{prefix}{pid}/Images/Primary?tag=")
            current = items[pid]["Primary"]
            if current is not None and url.rsplit("=", 1)[1] != current:
                stale.append(db_id)
        assert stale == m[planted]
    no_image = {pid for pid, it in items.items() if it["Primary"] is None}
    assert no_image == {provider_item_id("movie", i) for i in m["jellyfin_missing_image_movie_ids"]} | \
        {provider_item_id("series", i) for i in m["jellyfin_missing_image_series_ids"]}


def test_aperture_job_runs(aperture_db):
    dsn, m = aperture_db
    assert one(dsn, "SELECT count(*) FROM job_runs") == m["job_runs_total"]
    since = "now() - interval '24 hours'"
    assert one(dsn, f"SELECT count(*) FROM job_runs WHERE started_at >= {since}") == m["job_runs_last_24h"]
    assert one(dsn, f"SELECT count(*) FROM job_runs WHERE status = 'failed' AND started_at >= {since}") == 12
    assert m["failed_last_24h"] == 12
    config = {r[0]: r[1:] for r in q(dsn, "SELECT job_name, schedule_type, is_enabled, last_run_at, "
                                          "last_run_status FROM job_config")}
    assert config.keys() == m["jobs"].keys()
    for name, job in m["jobs"].items():
        assert config[name] == (job["schedule_type"], job["enabled"], job["last_run_at"], job["last_run_status"])
        last_ok = one(dsn, "SELECT max(started_at) FROM job_runs WHERE job_name = %s AND status = 'completed'",
                      (name,))
        assert last_ok == job["last_success_at"]
    assert m["overdue_jobs"] == ["sync-series"]
    assert m["built_at"] - m["jobs"]["sync-series"]["last_success_at"] >= timedelta(days=3)
    assert one(dsn, "SELECT count(*) FROM job_runs WHERE status NOT IN ('completed', 'failed', 'cancelled')") == 0


def test_aperture_embeddings_settings_errors(aperture_db):
    dsn, m = aperture_db
    for table, n in m["embeddings"].items():
        assert one(dsn, f"SELECT count(*) FROM {table}") == n
    for table, dim in (("embeddings_768", 768), ("series_embeddings_768", 768), ("embeddings_1536", 1536)):
        assert q(dsn, f"SELECT DISTINCT array_length(embedding, 1) FROM {table}") == [(dim,)]
    model = one(dsn, "SELECT value FROM system_settings WHERE key = 'embedding_model'")
    assert m["embedding_model_dimensions"][model] == m["active_embedding_dimension"] == 768
    assert one(dsn, "SELECT count(*) FROM api_errors") == m["api_errors"]["total"]
    for window, key in (("1 hour", "last_1h"), ("24 hours", "last_24h")):
        got = q(dsn, "SELECT provider, error_type, count(*) FROM api_errors "
                     f"WHERE created_at >= now() - interval '{window}' GROUP BY 1, 2")
        assert {(p, k): n for p, k, n in got} == \
            {(p, k): n for p, kinds in m["api_errors"][key].items() for k, n in kinds.items()}
    assert q(dsn, "SELECT retention_count, last_backup_size_bytes FROM backup_config") == [(7, 734_003_200)]


def test_aperture_invalid_index(aperture_db):
    dsn, m = aperture_db
    assert q(dsn, "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                  "WHERE NOT i.indisvalid") == [(name,) for name in m["invalid_indexes"]]
    with pytest.raises(ValueError, match="no duplicates"):
        plant_invalid_index(dsn, "job_config", "job_name")


def test_fresh_aperture_db_is_private(fresh_aperture_db, aperture_db):
    dsn, m = fresh_aperture_db
    assert m["dbname"] != "aperture" and one(dsn, "SELECT current_database()") == m["dbname"]
    set_poster_base(dsn, m["jellyfin_base"], "http://127.0.0.1:8096")
    assert one(dsn, "SELECT count(*) FROM movies WHERE poster_url LIKE 'http://127.0.0.1:8096/Items/%'") == \
        m["counts"]["movies"] - len(m["missing_poster_movie_ids"])
    assert one(aperture_db[0], "SELECT count(*) FROM movies WHERE poster_url LIKE 'http://127.0.0.1%'") == 0


def test_corrupt_index_is_detected_and_server_survives(pg_cluster, fresh_aperture_db):
    dsn, m = fresh_aperture_db
    index = create_scratch_index(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        conn.execute("SELECT bt_index_check(%s::regclass)", (index,))  # clean before
    corrupt_index(pg_cluster, m["dbname"], index)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(errors.IndexCorrupted):
            conn.execute("SELECT bt_index_check(%s::regclass)", (index,))
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("SELECT bt_index_check('movies_pkey'::regclass)")  # the rest of the database is fine
    assert one(pg_cluster.dsn(), "SELECT 1") == 1


# --- aphrodite -------------------------------------------------------------------------------------------------


def test_aphrodite_queue_jobs_schedules(aphrodite_db):
    dsn, m = aphrodite_db
    pj = m["processing_jobs"]
    assert one(dsn, "SELECT count(*) FROM processing_jobs") == pj["total"]
    assert one(dsn, "SELECT count(*) FROM processing_jobs WHERE status = 'processing' "
                    "AND started_at < now() - interval '1 hour'") == pj["processing_stuck"] == 2
    assert one(dsn, "SELECT count(*) FROM processing_jobs WHERE status = 'processing' "
                    "AND started_at >= now() - interval '1 hour'") == pj["processing_healthy"] == 1
    bj = m["batch_jobs"]
    assert dict(q(dsn, "SELECT status, count(*) FROM batch_jobs GROUP BY 1")) == \
        {k: bj[k] for k in ("queued", "processing", "paused", "completed", "failed", "cancelled")}
    assert one(dsn, "SELECT min(created_at) FROM batch_jobs WHERE status = 'queued'") == bj["oldest_queued_at"]
    assert one(dsn, "SELECT now() - min(created_at) > interval '10 minutes' FROM batch_jobs "
                    "WHERE status = 'queued'") is True
    rows = q(dsn, "SELECT s.name, s.cron_expression, s.timezone, s.enabled, max(e.started_at), count(e.id) "
                  "FROM schedules s LEFT JOIN schedule_executions e ON e.schedule_id = s.id GROUP BY s.id")
    got = {r[0]: r[1:] for r in rows}
    assert got == {n: (s["cron_expression"], s["timezone"], s["enabled"], s["last_execution_at"], s["executions"])
                   for n, s in m["schedules"].items()}
    assert m["overdue_schedules"] == ["badge-sync"]
    assert got["poster-refresh"][:2] == ("0 3 * * *", "Europe/Berlin")
    assert sorted(r[0] for r in q(dsn, "SELECT id FROM media_items WHERE poster_url IS NULL")) == \
        m["missing_poster_media_ids"]


# --- tsundoku --------------------------------------------------------------------------------------------------


def test_tsundoku_db_and_covers(tsundoku_db):
    path, data_dir, m = tsundoku_db
    assert path == data_dir / "db" / "tsundoku.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        one_ = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        assert one_("SELECT count(*) FROM series") == m["series_total"]
        assert one_("SELECT count(*) FROM series WHERE metadata_source = 'manual'") == m["manual"]
        assert one_("SELECT count(*) FROM series WHERE metadata_source != 'manual' "
                    "AND metadata_hash IS NOT NULL") == m["hashed_non_manual"]
        running = conn.execute("SELECT id, started_at FROM series_refresh_runs WHERE status = 'running' "
                               "ORDER BY id").fetchall()
        assert [r[0] for r in running] == [*m["stuck_run_ids"], m["healthy_running_id"]]
        assert running[0][1].endswith("Z") and "T" in running[0][1]
        status = dict(conn.execute("SELECT status, count(*) FROM series_refresh_runs GROUP BY 1").fetchall())
        assert status == m["runs_by_status"]
    conn.close()
    c = m["covers"]
    files = [Path(d, f) for d, _, names in os.walk(c["covers_dir"]) for f in names]  # walk never follows links
    files = [p for p in files if not p.is_symlink()]
    assert len(files) == c["regular_files_total"]
    assert sum(p.stat().st_size for p in files) == c["regular_bytes_total"]
    for name, target in c["symlinks"].items():
        link = c["covers_dir"] / name
        assert link.is_symlink() and os.readlink(link) == str(target)
        assert not target.resolve().is_relative_to(data_dir)
