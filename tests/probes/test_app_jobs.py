"""App jobs probe (freshness, failures, stuck runs) against the Aperture, Aphrodite and Tsundoku fixtures."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest

from agent.config import AppProbesConfig
from agent.probes import app_jobs
from agent.probes.app_jobs import Run, judge_runs, stuck_limit
from app_helpers import config, pg_app, run_built, run_on, value, values
from fakes import FakeAperture

OVERDUE = "caretaker_job_overdue_seconds"


def test_aperture_freshness_and_failures(aperture_db):
    result, m, _ = run_on(aperture_db, "aperture", app_jobs.build)
    assert result.ok, result.reason
    overdue = values(result, OVERDUE, "job_name")
    # library-build is manual (no series), top-picks disabled (nothing at all)
    assert set(overdue) == {"sync-movies", "sync-series", "watch-history-sync", "recommendations", "user-sync"}
    assert {j for j, v in overdue.items() if v > 0} == set(m["overdue_jobs"]) == {"sync-series"}
    # daily 02:00 UTC: due the day after its last success, plus 1h grace
    last_ok = m["jobs"]["sync-series"]["last_run_completed_at"].timestamp()
    assert value(result, "caretaker_job_last_success_timestamp_seconds", job_name="sync-series") == pytest.approx(last_ok)
    assert overdue["sync-series"] > 2 * 86400 - 3600
    assert all(s.label("job_name") != "top-picks" for s in result.samples)
    # library-build's latest run failed: its last success is the run 12 days ago (3 min + 1 s long)
    assert value(result, "caretaker_job_last_success_timestamp_seconds", job_name="library-build") == pytest.approx(
        m["jobs"]["library-build"]["last_success_at"].timestamp() + 181)
    assert value(result, "caretaker_job_last_duration_seconds", job_name="sync-movies") == pytest.approx(14 * 60, abs=7)
    assert value(result, "caretaker_jobs_failed", app="aperture") == m["failed_last_24h"] == 12
    assert value(result, "caretaker_job_error_ratio", app="aperture") == pytest.approx(12 / m["job_runs_last_24h"])
    assert "1 overdue: sync-series 2d" in result.summary
    assert "; 12 failed; " in result.summary


def test_aperture_stuck_jobs_from_its_api(aperture_db):
    dsn, m = aperture_db
    now = m["built_at"].timestamp() + 60
    with FakeAperture(token="ap-admin") as fake:
        fake.active_jobs = [{"job_name": "sync-movies", "started_at": now - 3 * 3600},  # median 14 min: stuck
                            {"job_name": "user-sync", "started_at": now - 10}]  # median 25 s, floor 10 min: fine
        cfg = pg_app("aperture", dsn, [{"name": "aperture-api", "kind": "aperture", "url": fake.url,
                                        "admin_token": "ap-admin"}], api="aperture-api")
        result = run_built(cfg, app_jobs.build, now)["aperture"]
        assert result.ok, result.reason
        assert values(result, "caretaker_job_stuck", "job_name") == {"sync-movies": 1, "user-sync": 0}
        running = values(result, "caretaker_job_running_seconds", "job_name")
        assert running == pytest.approx({"sync-movies": 3 * 3600, "user-sync": 10}, abs=0.001)  # ms in the API
        assert fake.requests[-1][2]["authorization"] == "Bearer ap-admin"
        fake.mode = "bad_key"
        result = run_built(cfg, app_jobs.build, now)["aperture"]
    # the API's refusal fails the probe but the SQL series stay
    assert not result.ok and "401" in result.reason and "ap-admin" not in result.reason
    assert value(result, "caretaker_jobs_failed", app="aperture") == 12
    assert values(result, "caretaker_job_stuck", "job_name") == {}


def test_aphrodite_schedules_failures_and_stuck_processing(aphrodite_db):
    result, m, _ = run_on(aphrodite_db, "aphrodite", app_jobs.build)
    assert result.ok, result.reason
    overdue = values(result, OVERDUE, "job_name")
    assert set(overdue) == {"poster-refresh", "badge-sync", "library-scan"}  # weekly-cleanup is disabled
    assert {j for j, v in overdue.items() if v > 0} == set(m["overdue_schedules"]) == {"badge-sync"}
    # 150 failed processing jobs and the hourly library-scan's failed execution, 6 hours ago
    assert value(result, "caretaker_jobs_failed", app="aphrodite") == m["processing_jobs"]["failed"] + 1 == 151
    since = m["built_at"] - timedelta(seconds=86400 - 60)
    with psycopg.connect(aphrodite_db[0]) as conn:
        finished = sum(conn.execute(f"SELECT count(*) FROM {t} WHERE status IN ('completed', 'failed', 'cancelled') "
                                    "AND completed_at >= %s", (since,)).fetchone()[0]
                       for t in ("processing_jobs", "schedule_executions", "batch_jobs"))
    assert value(result, "caretaker_job_error_ratio", app="aphrodite") == pytest.approx(151 / finished)
    # two processing rows left 'processing' for six hours; the batch in progress is 3 minutes old
    assert values(result, "caretaker_job_stuck", "job_name") == {"poster": 1, "badge": 1, "batch": 0}
    assert value(result, "caretaker_job_running_seconds", job_name="poster") == pytest.approx(6 * 3600 + 60)
    assert "2 of 4 running stuck" in result.summary


def test_aphrodite_run_verdicts(aphrodite_db):
    """Run by run: the two stuck processing jobs are stuck, the one started a minute ago is not."""
    dsn, m = aphrodite_db
    now = m["built_at"].timestamp() + 60
    cfg = pg_app("aphrodite", dsn)
    probe = app_jobs.build(cfg, SimpleNamespace(clock=lambda: now))[0]
    _, problems, verdicts, _, _ = asyncio.run(probe.collect(now))
    assert problems == []
    processing = sorted((v.run.job, round(v.running_seconds), v.stuck) for v in verdicts if v.run.job != "batch")
    assert processing == [("badge", 6 * 3600 + 4 * 60 + 60, True), ("poster", 120, False),
                          ("poster", 6 * 3600 + 60, True)]
    assert sum(v.stuck for v in verdicts) == m["processing_jobs"]["processing_stuck"] == 2
    assert {v.limit for v in verdicts if v.run.job == "poster"} == {600.0}  # 5 × ~25 s median < 10 min floor


def test_tsundoku_stuck_runs_and_schedule_override(tsundoku_db):
    path, _, m = tsundoku_db
    now = m["built_at"].timestamp() + 60
    cfg = config(sqlite=[{"name": "tsundoku", "path": str(path), "profile": "tsundoku"}])
    probe = app_jobs.build(cfg, SimpleNamespace(clock=lambda: now))[0]
    samples, problems, verdicts, _, _ = asyncio.run(probe.collect(now))
    assert problems == []
    stuck = sorted(int(v.run.run_id) for v in verdicts if v.stuck)
    assert stuck == m["stuck_run_ids"] and len(stuck) == 3
    healthy = [v for v in verdicts if not v.stuck]
    assert [int(v.run.run_id) for v in healthy] == [m["healthy_running_id"]]
    assert healthy[0].limit == pytest.approx(5 * 240)  # 5 × the 4-minute median of successful refreshes
    result = run_built(cfg, app_jobs.build, now)["tsundoku"]
    assert value(result, "caretaker_job_stuck", job_name="series-refresh") == 1
    assert value(result, "caretaker_job_running_seconds", job_name="series-refresh") == pytest.approx(6 * 86400 + 60)
    # four refreshes finished in the last 24 h, none failed; the schedule lives in Tsundoku's config: no series
    assert value(result, "caretaker_jobs_failed", app="tsundoku") == 0
    assert value(result, "caretaker_job_error_ratio", app="tsundoku") == 0
    assert values(result, OVERDUE, "job_name") == {}
    last_ok = value(result, "caretaker_job_last_success_timestamp_seconds", job_name="series-refresh")
    assert last_ok == pytest.approx(now - 60 - 3 * 3600 + 240, abs=0.01)  # the run 3 h ago, 4 min long
    cfg = config(sqlite=[{"name": "tsundoku", "path": str(path), "profile": "tsundoku",
                          "app": {"schedules": {"series-refresh": "1h"}, "grace": "30m"}}])
    result = run_built(cfg, app_jobs.build, now)["tsundoku"]
    assert value(result, OVERDUE, job_name="series-refresh") == pytest.approx(now - (last_ok + 3600 + 1800), abs=0.01)


def test_stuck_limits():
    settings = AppProbesConfig(stuck_after={"backup": "2h"}, stuck_floor="10m", stuck_default="1h")
    assert stuck_limit("backup", 30.0, settings) == 7200
    assert stuck_limit("sync", 600.0, settings) == 3000  # 5 × median
    assert stuck_limit("sync", 10.0, settings) == 600  # the floor
    assert stuck_limit("new-job", None, settings) == 3600
    assert stuck_limit("any", 10.0, AppProbesConfig(stuck_after={"*": "3h"})) == 10800
    verdicts = judge_runs([Run("sync", 0.0), Run("sync", 3500.0)], {"sync": 600.0}, settings, 4000.0)
    assert [(v.running_seconds, v.stuck) for v in verdicts] == [(4000.0, True), (500.0, False)]


def test_database_down_is_a_reason_without_password(pg_cluster):
    dsn = f"host=127.0.0.1 port={pg_cluster.port} dbname=nope user=postgres password=s3cr3t-pw"
    result = run_built(pg_app("aperture", dsn), app_jobs.build, 0.0)["aperture"]
    assert not result.ok and 'database "nope" does not exist' in result.reason
    assert "s3cr3t-pw" not in result.reason and result.samples == []


def test_sqlite_file_missing(tmp_path):
    cfg = config(sqlite=[{"name": "tsundoku", "path": str(tmp_path / "gone.db"), "profile": "tsundoku"}])
    result = run_built(cfg, app_jobs.build, 0.0)["tsundoku"]
    assert not result.ok and "does not exist" in result.reason
    assert not (tmp_path / "gone.db").exists()  # mode=ro never creates it
