"""Queues probe against the Aphrodite fixture: batch queue length and queue time."""

from __future__ import annotations

import pytest

from agent.probes import queues
from app_helpers import config, run_built, run_on, value


def test_aphrodite_batch_queue(aphrodite_db):
    result, m, now = run_on(aphrodite_db, "aphrodite", queues.build, offset=30)
    assert result.ok, result.reason
    assert value(result, "caretaker_queue_length", queue="batch_jobs") == m["batch_jobs"]["queued"] == 40
    oldest = now - m["batch_jobs"]["oldest_queued_at"].timestamp()
    assert value(result, "caretaker_queue_oldest_age_seconds", queue="batch_jobs") == pytest.approx(oldest)
    assert oldest == pytest.approx(20 * 60 + 30)  # over QueueTimeHigh's 10 minutes
    assert value(result, "caretaker_queue_length", queue="processing_jobs") == m["processing_jobs"]["pending"] == 5
    assert value(result, "caretaker_queue_oldest_age_seconds", queue="processing_jobs") == pytest.approx(5 * 60 + 30)
    assert result.summary == "batch_jobs 40 (oldest 20m30s), processing_jobs 5 (oldest 5m30s)"


def test_empty_queue_has_age_zero(tmp_path):
    import sqlite3

    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE q (created_at TEXT, state TEXT)")
        conn.execute("INSERT INTO q VALUES ('2026-01-01T00:00:00.000Z', 'done')")
    profile = tmp_path / "mine.yaml"
    profile.write_text("name: mine\nengine: sqlite\nqueues:\n  - name: q\n    sql: >-\n"
                       "      SELECT count(*) AS length, min(created_at) AS oldest_at FROM q WHERE state = 'queued'\n")
    cfg = config(sqlite=[{"name": "mine", "path": str(db), "profile": str(profile)}])
    result = run_built(cfg, queues.build, 1_800_000_000.0)["mine"]
    assert result.ok, result.reason
    assert value(result, "caretaker_queue_length", queue="q") == 0
    assert value(result, "caretaker_queue_oldest_age_seconds", queue="q") == 0
