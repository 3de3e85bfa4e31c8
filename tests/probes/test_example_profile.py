"""The example profile a user copies (examples/profile-myapp.yaml) against a SQLite app built here."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.probes import app_jobs, queues
from app_helpers import config, run_built, value, values

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "profile-myapp.yaml"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_example_profile_end_to_end(tmp_path):
    """The example profile a user copies works: overdue, failures, stuck runs and the queue of its app."""
    now = datetime(2026, 6, 10, 12, 0, tzinfo=timezone.utc)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE tasks (name TEXT, cron TEXT, tz TEXT, enabled INTEGER);
            CREATE TABLE task_runs (id INTEGER PRIMARY KEY, task TEXT, state TEXT, started_at TEXT, ended_at TEXT);
            CREATE TABLE upload_queue (id INTEGER PRIMARY KEY, state TEXT, created_at TEXT);""")
        conn.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?)", [
            ("import", "0 * * * *", "UTC", 1), ("thumbnails", "0 3 * * *", "Europe/Berlin", 1),
            ("old", "0 4 * * *", "UTC", 0)])
        runs = []
        for k in range(1, 6):  # hourly imports, 2 minutes each; the one 3 h ago failed
            start = now - timedelta(hours=k, minutes=-1)
            runs.append(("import", "error" if k == 3 else "ok", _iso(start), _iso(start + timedelta(minutes=2))))
        runs.append(("import", "running", _iso(now - timedelta(minutes=30)), None))  # 15 × the median: stuck
        start = now - timedelta(days=3)
        runs.append(("thumbnails", "ok", _iso(start), _iso(start + timedelta(minutes=20))))  # overdue
        conn.executemany("INSERT INTO task_runs (task, state, started_at, ended_at) VALUES (?, ?, ?, ?)", runs)
        conn.executemany("INSERT INTO upload_queue (state, created_at) VALUES (?, ?)",
                         [("waiting", _iso(now - timedelta(minutes=m))) for m in (3, 12)] + [("done", _iso(now))])
    cfg = config(sqlite=[{"name": "myapp", "path": str(db), "profile": str(EXAMPLE)}])
    jobs = run_built(cfg, app_jobs.build, now.timestamp())["myapp"]
    assert jobs.ok, jobs.reason
    overdue = values(jobs, "caretaker_job_overdue_seconds", "job_name")
    assert overdue["import"] == 0 and set(overdue) == {"import", "thumbnails"}  # "old" is disabled
    # thumbnails: last success 3 days ago + 20 min; next 03:00 Berlin (01:00 UTC) after it, plus 30 min grace
    due = datetime(2026, 6, 8, 1, 0, tzinfo=timezone.utc).timestamp()
    assert overdue["thumbnails"] == now.timestamp() - (due + 1800)
    assert value(jobs, "caretaker_jobs_failed", app="myapp") == 1
    assert value(jobs, "caretaker_job_error_ratio", app="myapp") == pytest.approx(1 / 5)  # thumbnails: 3 days ago
    assert value(jobs, "caretaker_job_stuck", job_name="import") == 1
    queue = run_built(cfg, queues.build, now.timestamp())["myapp"]
    assert value(queue, "caretaker_queue_length", queue="uploads") == 2
    assert value(queue, "caretaker_queue_oldest_age_seconds", queue="uploads") == 12 * 60
