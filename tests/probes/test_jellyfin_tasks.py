"""Jellyfin scheduled tasks as jobs, against FakeJellyfin's /ScheduledTasks, on a frozen clock."""

from __future__ import annotations

from datetime import datetime, timezone

from agent.probes import jellyfin_tasks
from app_helpers import config, run_built, value, values
from fakes import FakeJellyfin, make_task

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=timezone.utc).timestamp()
H = 3600.0
TICKS = 10_000_000


def tasks() -> list[dict]:
    scan = make_task("Scan Media Library", "RefreshLibrary", ended=NOW - 2 * H, duration=300)
    scan["Triggers"] = [{"Type": "IntervalTrigger", "IntervalTicks": 12 * 3600 * TICKS}]
    chapters = make_task("Extract Chapter Images", "ChapterImagesTask", ended=NOW - 3 * 24 * H, duration=900)
    chapters["Triggers"] = [{"Type": "DailyTrigger", "TimeOfDayTicks": 2 * 3600 * TICKS},
                            {"Type": "StartupTrigger"}]
    people = make_task("Refresh People", "RefreshPeople", status="Failed", error="boom", ended=NOW - H, duration=60)
    people["Triggers"] = [{"Type": "WeeklyTrigger", "TimeOfDayTicks": 3 * 3600 * TICKS, "DayOfWeek": "Sunday"}]
    transcode = make_task("Clean Transcode Directory", "DeleteTranscodeFiles", ended=NOW - 5 * H)  # no triggers
    hidden = make_task("Hidden", "HiddenTask", status="Aborted", ended=NOW - H)
    hidden["IsHidden"] = True
    fresh_server = make_task("Update Plugins", "PluginUpdates", status=None)
    fresh_server["Triggers"] = [{"Type": "IntervalTrigger", "IntervalTicks": 24 * 3600 * TICKS}]
    return [scan, chapters, people, transcode, hidden, fresh_server]


def test_tasks_as_jobs():
    with FakeJellyfin() as jf:
        jf.tasks = tasks()
        cfg = config(services=[{"name": "jellyfin", "kind": "jellyfin", "url": jf.url, "api_key": "jf-key"}])
        result = run_built(cfg, jellyfin_tasks.build, NOW)["jellyfin"]
        assert jf.requests[0][2]["authorization"] == 'MediaBrowser Token="jf-key"'
    assert result.ok, result.reason
    overdue = values(result, "caretaker_job_overdue_seconds", "job_name")
    # daily 02:00 UTC, last run ended 3 days ago at noon: due the next day at 02:00, plus 1 h grace
    ended = NOW - 3 * 24 * H
    due = datetime.fromtimestamp(ended, timezone.utc).replace(hour=2, minute=0).timestamp() + 24 * H
    assert overdue == {"RefreshLibrary": 0, "ChapterImagesTask": NOW - (due + H), "RefreshPeople": 0,
                       "PluginUpdates": 0}
    assert value(result, "caretaker_job_last_success_timestamp_seconds", job_name="RefreshLibrary") == NOW - 2 * H
    assert value(result, "caretaker_job_last_success_timestamp_seconds", job_name="RefreshPeople") is None  # it failed
    assert value(result, "caretaker_job_last_duration_seconds", job_name="ChapterImagesTask") == 900
    # last runs ended in 24 h: scan, people (failed), transcode; the hidden task is skipped
    assert value(result, "caretaker_jobs_failed", app="jellyfin") == 1
    assert value(result, "caretaker_job_error_ratio", app="jellyfin") == 1 / 3
    assert "1 overdue: Extract Chapter Images 2d9h" in result.summary


def test_daily_trigger_in_the_servers_time_zone():
    chapters = make_task("Extract Chapter Images", "ChapterImagesTask",
                         ended=datetime(2026, 6, 9, 0, 30, tzinfo=timezone.utc).timestamp())  # 02:30 in Berlin
    chapters["Triggers"] = [{"Type": "DailyTrigger", "TimeOfDayTicks": 2 * 3600 * TICKS}]
    with FakeJellyfin() as jf:
        jf.tasks = [chapters]
        cfg = config(services=[{"name": "jf", "kind": "jellyfin", "url": jf.url, "api_key": "jf-key",
                                "timezone": "Europe/Berlin"}])
        now = datetime(2026, 6, 10, 1, 0, tzinfo=timezone.utc).timestamp() + 1  # next 02:00 Berlin + 1 h grace + 1 s
        result = run_built(cfg, jellyfin_tasks.build, now)["jf"]
    assert value(result, "caretaker_job_overdue_seconds", job_name="ChapterImagesTask") == 1


def test_refused_key():
    with FakeJellyfin() as jf:
        cfg = config(services=[{"name": "jf", "kind": "jellyfin", "url": jf.url, "api_key": "bad-key-xyz"}])
        result = run_built(cfg, jellyfin_tasks.build, NOW)["jf"]
    assert not result.ok and "401" in result.reason and "bad-key-xyz" not in result.reason
    assert result.samples == []


def test_failed_count_is_returned_with_the_samples():
    samples, overdue, failed = jellyfin_tasks.task_samples("jf", tasks(), "UTC", NOW)
    assert failed == 1 and overdue == ["Extract Chapter Images 2d9h"]
    assert [(s.name, s.value) for s in samples if s.label("job_name") == ""] == [
        ("caretaker_jobs_failed", 1), ("caretaker_job_error_ratio", 1 / 3)]
