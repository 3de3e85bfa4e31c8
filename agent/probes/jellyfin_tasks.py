"""Jellyfin/Emby scheduled tasks as jobs: freshness and failures from `GET /ScheduledTasks` (admin).

Each task (DESIGN.md §5 "jellyfin") has `Key`, `Name`, `State` Idle|Cancelling|Running, `IsHidden`,
`Triggers` [{Type DailyTrigger|WeeklyTrigger|IntervalTrigger|StartupTrigger, TimeOfDayTicks, DayOfWeek,
IntervalTicks}] (1 tick = 100 ns) and `LastExecutionResult` {StartTimeUtc, EndTimeUtc, Status
Completed|Failed|Cancelled|Aborted}. Jellyfin keeps only the last result, so a task whose last run did not
complete has no known last success; its due time then counts from that run's end (the scheduler did run
it), and the failure shows in `caretaker_jobs_failed`. Daily and weekly triggers run in the server's local
time: the service's `timezone`. Tasks with no schedulable trigger are manual; hidden tasks are skipped.

Series, with `app` = the service name and `job_name` = the task's Key (stable; Names are translated):
`caretaker_job_last_success_timestamp_seconds`, `caretaker_job_last_duration_seconds`,
`caretaker_job_overdue_seconds` (grace 1h), and `caretaker_jobs_failed` / `caretaker_job_error_ratio`
over the tasks whose last run ended in the last 24 h (Failed and Aborted count as failed).
"""

from __future__ import annotations

from typing import Any

from agent.appapi import ApiError, call_json, media_auth
from agent.appdb import to_epoch
from agent.config import Config, ServiceConfig
from agent.durations import format_duration
from agent.freshness import Schedule, Verdict, judge, schedule_from
from agent.probes.app_jobs import job_failure_samples
from agent.probes.base import Probe, ProbeResult
from agent.profiles import MediaServerSection, load_profile
from agent.samples import Sample, sample

TICKS_PER_SECOND = 10_000_000
GRACE = 3600.0  # Healthchecks' default grace
WINDOW = 86400.0  # the failure window of DESIGN.md §6
FAILED = ("Failed", "Aborted")
_DAYS = {d: i for i, d in enumerate(("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"))}


def trigger_schedules(triggers: list[dict[str, Any]], tz: str) -> list[Schedule]:
    """Jellyfin triggers → schedules; startup triggers and unreadable ones are left out."""
    out = []
    for t in triggers or []:
        kind = t.get("Type")
        try:
            if kind == "IntervalTrigger" and t.get("IntervalTicks"):
                out.append(schedule_from("interval", every=t["IntervalTicks"] / TICKS_PER_SECOND))
            elif kind in ("DailyTrigger", "WeeklyTrigger") and t.get("TimeOfDayTicks") is not None:
                minutes = int(t["TimeOfDayTicks"] // (60 * TICKS_PER_SECOND))
                out.append(schedule_from("weekly" if kind == "WeeklyTrigger" else "daily", hour=minutes // 60,
                                         minute=minutes % 60, day_of_week=_DAYS.get(t.get("DayOfWeek", "")),
                                         tz=tz))
        except ValueError:
            continue
    return out


def task_samples(app: str, tasks: list[dict[str, Any]], tz: str,
                 now: float) -> tuple[list[Sample], list[str], int]:
    """(samples, overdue task descriptions, tasks whose last run in the window failed) for one server."""
    samples: list[Sample] = []
    overdue: list[str] = []
    failed = finished = 0
    for task in tasks:
        if task.get("IsHidden"):
            continue
        job = str(task.get("Key") or task.get("Name"))
        labels = {"app": app, "job_name": job}
        result = task.get("LastExecutionResult") or {}
        start, end = to_epoch(result.get("StartTimeUtc")), to_epoch(result.get("EndTimeUtc"))
        ok = result.get("Status") == "Completed"
        if end is not None and ok:
            samples.append(sample("caretaker_job_last_success_timestamp_seconds", end, **labels))
        if start is not None and end is not None:
            samples.append(sample("caretaker_job_last_duration_seconds", max(0.0, end - start), **labels))
        if end is not None and end >= now - WINDOW:
            finished += 1
            failed += result.get("Status") in FAILED
        schedules = trigger_schedules(task.get("Triggers") or [], tz)
        if not schedules:
            continue
        verdicts = [judge(s, end, GRACE, now) for s in schedules]
        worst: Verdict = max(verdicts, key=lambda v: v.overdue_seconds)
        samples.append(sample("caretaker_job_overdue_seconds", worst.overdue_seconds, **labels))
        if worst.status == "down":
            overdue.append(f"{task.get('Name', job)} {format_duration(worst.overdue_seconds)}")
    samples += job_failure_samples(app, failed, finished)
    return samples, overdue, failed


class JellyfinTasksProbe(Probe):
    kind = "jellyfin_tasks"

    def __init__(self, server: ServiceConfig, section: MediaServerSection, deps):
        super().__init__(server.name, server.interval, server.timeout)
        self.server, self.section, self.deps = server, section, deps

    async def run(self) -> ProbeResult:
        try:
            tasks = await call_json(self.deps.http, self.server, "GET", self.section.scheduled_tasks,
                                    auth=media_auth(self.server, self.section.auth), timeout=self.timeout)
        except ApiError as exc:
            return ProbeResult(ok=False, reason=str(exc))
        if not isinstance(tasks, list):
            return ProbeResult(ok=False, reason=f"{self.section.scheduled_tasks} did not answer a list")
        samples, overdue, failed = task_samples(self.target, tasks, self.server.timezone, self.deps.clock())
        summary = f"{len(tasks)} tasks, {len(overdue)} overdue{': ' + ', '.join(overdue) if overdue else ''}, " \
                  f"{failed} failed in 24h"
        return ProbeResult(samples, summary=summary)


def build(config: Config, deps) -> list[Probe]:
    servers = [s for s in config.services if s.kind in ("jellyfin", "emby") and s.api_key is not None]
    if not servers:
        return []
    section = load_profile("jellyfin").media_server
    assert section is not None
    return [JellyfinTasksProbe(s, section, deps) for s in servers]
