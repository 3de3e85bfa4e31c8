"""clear_stuck_jobs: stuck runs are cleared and fresh ones untouched — Aphrodite (PostgreSQL rows), Tsundoku
(SQLite rows) and Aperture (its job API, through the local fake)."""

from __future__ import annotations

import sqlite3
import time

import psycopg

from action_helpers import act, db_checksum, run, runtime
from fakes import FakeAperture


def test_aphrodite_stuck_processing_jobs_marked_failed(tmp_path, fresh_aphrodite_db):
    dsn, manifest = fresh_aphrodite_db
    rt = runtime(tmp_path, databases=[{"name": "aphrodite", "dsn": dsn, "profile": "aphrodite"}])
    with psycopg.connect(dsn, autocommit=True) as conn:
        processing = dict(conn.execute("SELECT id, started_at < now() - interval '1 hour' FROM processing_jobs "
                                       "WHERE status = 'processing'"))
    stuck = {i for i, old in processing.items() if old}  # the fixture's 6-hour-old runs
    assert len(stuck) == manifest["processing_jobs"]["processing_stuck"] == 2
    try:
        checksum = db_checksum(dsn, ["processing_jobs", "batch_jobs", "schedule_executions"])
        plan = act(rt, "clear_stuck_jobs", dry_run=True)["result"]
        assert {int(r["run_id"]) for r in plan["runs"]} == stuck and {r["how"] for r in plan["runs"]} == {"sql"}
        assert db_checksum(dsn, ["processing_jobs", "batch_jobs", "schedule_executions"]) == checksum
        record = act(rt, "clear_stuck_jobs", confirm=True)
    finally:
        run(rt.close())
    assert record["outcome"] == "succeeded", record["error"]
    assert record["result"]["cleared"] == 2
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, status, error_message, completed_at IS NOT NULL FROM processing_jobs WHERE id = ANY(%s)",
            (list(processing),))}
        pending = conn.execute("SELECT count(*) FROM processing_jobs WHERE status = 'pending'").fetchone()[0]
    for run_id in stuck:
        status, error, completed = rows[run_id]
        assert status == "failed" and completed and error.startswith("cleared by caretaker: running 6h")
    [healthy] = set(processing) - stuck
    assert rows[healthy] == ("processing", None, False)  # started a minute ago: untouched
    assert pending == manifest["processing_jobs"]["pending"]


def test_tsundoku_stuck_refresh_runs(tmp_path, tsundoku_db):
    db_path, _, manifest = tsundoku_db
    rt = runtime(tmp_path, sqlite=[{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku"}])
    try:
        record = act(rt, "clear_stuck_jobs", confirm=True, params={"job": "series-refresh"})
    finally:
        run(rt.close())
    assert record["outcome"] == "succeeded", record["error"]
    assert sorted(int(r["run_id"]) for r in record["result"]["runs"]) == manifest["stuck_run_ids"]
    with sqlite3.connect(db_path) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, status, finished_at, error FROM series_refresh_runs WHERE id >= ?", (min(manifest["stuck_run_ids"]),))}
    for run_id in manifest["stuck_run_ids"]:
        status, finished, error = rows[run_id]
        assert status == "failure" and finished.endswith("Z") and "past its limit" in error
    assert rows[manifest["healthy_running_id"]] == ("running", None, None)


def test_aperture_stuck_job_cancelled_through_its_api(tmp_path, aperture_db):
    dsn, _ = aperture_db
    with FakeAperture(token="ap-admin") as fake:
        fake.active_jobs[:] = [{"job_name": "sync-movies", "started_at": time.time() - 5 * 3600},
                               {"job_name": "user-sync", "started_at": time.time() - 60}]
        rt = runtime(tmp_path, databases=[{"name": "aperture", "dsn": dsn, "profile": "aperture",
                                           "app": {"api": "aperture-api"}}],
                     services=[{"name": "aperture-api", "kind": "aperture", "url": fake.url,
                                "admin_token": "ap-admin"}])
        try:
            plan = act(rt, "clear_stuck_jobs", dry_run=True)["result"]
            assert [(r["job"], r["how"], r["do"]) for r in plan["runs"]] == [
                ("sync-movies", "api", "POST /api/jobs/sync-movies/cancel")]
            assert [m for m, *_ in fake.requests] == ["GET"]  # the dry run only looked
            record = act(rt, "clear_stuck_jobs", confirm=True)
        finally:
            run(rt.close())
        assert record["outcome"] == "succeeded", record["error"]
        assert record["result"]["cleared"] == 1
        assert [j["job_name"] for j in fake.active_jobs] == ["user-sync"]
        cancels = [(p, h.get("authorization")) for m, p, h in fake.requests if m == "POST"]
        assert cancels == [("/api/jobs/sync-movies/cancel", "Bearer ap-admin")]
