"""Push jobs probe: freshness of cron scripts that report through `POST /api/v1/ping/{job}` (agent/pings.py).

Healthchecks semantics (hc/api/models.py `Check.ping`, `get_status`): a success ping sets the last success
and, when a start ping came before it (within 72 h), the duration; a fail ping ends a run without a
success; a start ping with no end yet is a run in progress, stuck once older than the job's `max_runtime`
(Healthchecks: its `grace`). Series, with `app` = the job's `app` (default "cron"):
`caretaker_job_last_success_timestamp_seconds{job_name}`, `caretaker_job_last_duration_seconds{job_name}`,
`caretaker_job_overdue_seconds{job_name}` (against its cron `schedule` in `timezone`, or its `period`; 0 for a
job that never succeeded), `caretaker_job_running_seconds{job_name}` / `caretaker_job_stuck{job_name}` while a run
is open, and `caretaker_jobs_failed` / `caretaker_job_error_ratio` over the last 24 h.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agent.config import Config, PushJobConfig
from agent.durations import format_duration
from agent.freshness import Schedule, judge, schedule_from
from agent.pings import recent_pings
from agent.probes.app_jobs import job_failure_samples
from agent.probes.base import Probe, ProbeResult
from agent.samples import Sample, sample

INTERVAL = 30.0  # reading the state file is cheap; pings also re-run the probe at once
WINDOW = 86400.0  # the failure window of DESIGN.md §6
MAX_DELTA = 72 * 3600.0  # a start this much older than its end is not the same run (Healthchecks' MAX_DELTA)


@dataclass(frozen=True)
class PushStatus:
    last_success: float | None
    last_duration: float | None  # of the last finished run, when its start was reported
    running_since: float | None
    failed: int  # fail pings within the window
    finished: int  # success and fail pings within the window


def push_status(pings: list[tuple[str, float]], now: float, window: float = WINDOW) -> PushStatus:
    """Fold a job's pings (kind, at), oldest first, into its status at `now`."""
    last_success = last_duration = start = None
    failed = finished = 0
    for kind, at in pings:
        if kind == "start":
            start = at
            continue
        last_duration = at - start if start is not None and 0 <= at - start <= MAX_DELTA else None
        start = None
        if kind == "success":
            last_success = at
        if at >= now - window:
            finished += 1
            failed += kind == "fail"
    return PushStatus(last_success, last_duration, start, failed, finished)


def job_schedule(job: PushJobConfig) -> Schedule:
    if job.schedule is not None:
        return schedule_from("cron", cron=job.schedule, tz=job.timezone)
    return schedule_from("interval", every=job.period)


def job_samples(job: PushJobConfig, status: PushStatus, now: float) -> tuple[list[Sample], str]:
    """Samples of one job, and a word for the summary ("" when all is well)."""
    labels = {"app": job.app, "job_name": job.name}
    samples = []
    if status.last_success is not None:
        samples.append(sample("caretaker_job_last_success_timestamp_seconds", status.last_success, **labels))
    if status.last_duration is not None:
        samples.append(sample("caretaker_job_last_duration_seconds", status.last_duration, **labels))
    verdict = judge(job_schedule(job), status.last_success, job.grace, now)
    samples.append(sample("caretaker_job_overdue_seconds", verdict.overdue_seconds, **labels))
    note = f"{job.name} overdue {format_duration(verdict.overdue_seconds)}" if verdict.status == "down" else ""
    if status.running_since is not None:
        running = max(0.0, now - status.running_since)
        limit = job.max_runtime if job.max_runtime is not None else job.grace
        samples.append(sample("caretaker_job_running_seconds", running, **labels))
        samples.append(sample("caretaker_job_stuck", 1 if running > limit else 0, **labels))
        if running > limit:
            note = f"{job.name} stuck {format_duration(running)}"
    return samples, note


class PushJobsProbe(Probe):
    """All push jobs of one `app` label."""

    kind = "push_jobs"

    def __init__(self, app: str, jobs: list[PushJobConfig], deps):
        super().__init__(app, INTERVAL, 10.0)
        self.jobs, self.deps = jobs, deps

    def _measure(self, now: float) -> ProbeResult:
        samples: list[Sample] = []
        notes: list[str] = []
        failed = finished = 0
        for job in self.jobs:
            status = push_status(recent_pings(self.deps.state, job.name), now)
            job_out, note = job_samples(job, status, now)
            samples += job_out
            notes += [note] if note else []
            failed, finished = failed + status.failed, finished + status.finished
        samples += job_failure_samples(self.target, failed, finished)
        return ProbeResult(samples, summary=f"{len(self.jobs)} jobs; {failed} failed in 24h"
                                            + (f"; {', '.join(notes)}" if notes else ""))

    async def run(self) -> ProbeResult:
        return await asyncio.to_thread(self._measure, self.deps.clock())


def build(config: Config, deps) -> list[Probe]:
    apps: dict[str, list[PushJobConfig]] = {}
    for job in config.jobs:
        apps.setdefault(job.app, []).append(job)
    return [PushJobsProbe(app, jobs, deps) for app, jobs in sorted(apps.items())]
