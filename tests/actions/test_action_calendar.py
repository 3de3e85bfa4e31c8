"""The maintenance calendar: cron slots in a time zone, a task with its follow-up action, silences while it
runs, and the service starting a due task."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from action_helpers import runtime
from agent.config import MaintenanceTask, parse_config
from agent.actions.calendar import next_slot
from agent.notify.silences import list_silences


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_slots_follow_the_time_zone_across_dst():
    task = MaintenanceTask(action="backup", schedule="0 1 * * *")
    # Berlin switches to summer time on 2025-03-30 at 02:00: 01:00 is 00:00 UTC that night, 23:00 UTC the next
    assert next_slot(task, utc("2025-03-29T12:00:00"), "Europe/Berlin") == utc("2025-03-30T00:00:00")
    assert next_slot(task, utc("2025-03-30T00:00:00"), "Europe/Berlin") == utc("2025-03-30T23:00:00")
    assert next_slot(task, utc("2025-03-30T00:00:00"), "UTC") == utc("2025-03-30T01:00:00")


def test_default_calendar_and_overrides():
    tasks = parse_config({"maintenance": {"tasks": {"posters": {"enabled": False},
                                                    "vacuum": {"schedule": "30 2 * * 6"},
                                                    "logs": {"action": "prune_logs", "schedule": "0 5 * * *",
                                                             "params": {"max_size": "50MiB"}}}}}
                         ).maintenance.effective_tasks
    assert (tasks["backup"].action, tasks["backup"].schedule, tasks["backup"].then) == (
        "backup", "0 1 * * *", ["verify_backup"])
    assert (tasks["vacuum"].action, tasks["vacuum"].schedule) == ("vacuum_analyze", "30 2 * * 6")
    assert tasks["posters"].enabled is False and tasks["logs"].params == {"max_size": "50MiB"}


def sections(db_path, tmp_path) -> dict:
    return {"sqlite": [{"name": "tsundoku", "path": str(db_path), "profile": "tsundoku"}],
            "backups": [{"name": "tsundoku", "database": "tsundoku", "directory": str(tmp_path / "bk"),
                         "pattern": "tsundoku_*.db", "kind": "sqlite"}]}


def test_backup_task_then_verifies_and_silences_while_it_runs(tmp_path, tsundoku_db):
    db_path, _, _ = tsundoku_db

    async def main():
        rt = runtime(tmp_path, alerting=True, **sections(db_path, tmp_path))
        try:
            started = time.time()
            records = await rt.calendar.run_task("backup")
            return records, list_silences(rt.state, time.time(), include_expired=True), started
        finally:
            await rt.close()

    records, silences, started = asyncio.run(main())
    assert [(r["action"], r["trigger"], r["who"], r["outcome"]) for r in records] == [
        ("backup", "schedule", "maintenance task backup", "succeeded"),
        ("verify_backup", "schedule", "maintenance task backup", "succeeded")]
    [silence] = silences
    assert [(m.name, m.value) for m in silence.matchers] == [("alertname", "DiskSpaceHigh")]
    assert silence.reason == "maintenance task backup on tsundoku"
    assert started <= silence.created_at <= silence.ends_at <= time.time()  # lifted when the task ended


def test_service_starts_a_due_task(tmp_path, tsundoku_db):
    db_path, _, _ = tsundoku_db
    shift = {"seconds": 0.0}

    async def main():
        rt = runtime(tmp_path, clock=lambda: time.time() + shift["seconds"],
                     maintenance={"tasks": {"backup": {"enabled": False}, "vacuum": {"enabled": False},
                                            "posters": {"enabled": False},
                                            "minutely": {"action": "backup", "schedule": "* * * * *"}}},
                     **sections(db_path, tmp_path))
        stop = asyncio.Event()
        shift["seconds"] = (60 - time.time() % 60) - 0.3  # the agent's clock: a minute boundary 0.3 s away
        service = asyncio.create_task(rt.calendar.service(stop))
        try:
            for _ in range(200):
                await asyncio.sleep(0.05)
                runs = rt.actions.runs()
                if runs and runs[0]["outcome"] != "running":
                    return runs
            raise AssertionError("the due task did not run within 10 s")
        finally:
            stop.set()
            await asyncio.wait_for(service, 10)
            await rt.close()

    [record] = asyncio.run(main())
    assert (record["action"], record["trigger"], record["who"], record["outcome"]) == (
        "backup", "schedule", "maintenance task minutely", "succeeded")
