"""App jobs probe: freshness, failures and stuck runs of an app's jobs, read through its profile.

Series (DESIGN.md §6 "jobs"), all with `app` = the database/sqlite entry's name:
`caretaker_job_last_success_timestamp_seconds{job_name}`, `caretaker_job_last_duration_seconds{job_name}`,
`caretaker_job_overdue_seconds{job_name}` (Healthchecks semantics, agent/freshness.py; absent for manual jobs;
disabled jobs export nothing), `caretaker_jobs_failed` and `caretaker_job_error_ratio` (runs finished in
`app.failure_window`), `caretaker_job_running_seconds{job_name}` and `caretaker_job_stuck{job_name}` for jobs with a
run in progress — from the profile's `running` SQL and, for apps that keep running jobs in memory
(Aperture), its `api.running_jobs` call. A run is stuck past its job's limit (`stuck_limit`).
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from agent.appapi import ApiError, call_json, dig
from agent.appdb import app_entries, describe_db_error, open_app_db, query_params, service, to_epoch
from agent.config import AppProbesConfig, Config, DatabaseConfig, ServiceConfig, SQLiteConfig
from agent.durations import format_duration
from agent.freshness import ScheduleError, judge, parse_schedule_text, schedule_from
from agent.probes.base import Probe, ProbeResult
from agent.profiles import JobsSection, Profile
from agent.samples import Sample, sample

log = logging.getLogger("caretaker.probe.jobs")


@dataclass(frozen=True)
class Run:
    """A run in progress: its job, start (epoch seconds) and the app's id for it (for messages)."""

    job: str
    started_at: float
    run_id: str = ""


@dataclass(frozen=True)
class RunVerdict:
    run: Run
    running_seconds: float
    limit: float
    stuck: bool


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def freshness_samples(app: str, rows: list[dict], section: JobsSection, settings: AppProbesConfig,
                      now: float) -> tuple[list[Sample], list[str], list[str]]:
    """Rows of the profile's `freshness` query → (samples, problems, overdue job descriptions).

    Columns: job, kind (cron|daily|weekly|interval|manual; NULL = manual unless app.schedules names the
    job), cron, every_seconds, hour, minute, day_of_week, timezone, enabled (NULL = enabled),
    last_success_at, last_duration_seconds. Times: epoch seconds, timestamps or ISO-8601 text.
    """
    grace = section.grace if settings.grace is None else settings.grace
    samples: list[Sample] = []
    problems: list[str] = []
    overdue: list[str] = []
    seen = set()
    for row in rows:
        job = str(row["job"])
        seen.add(job)
        if row.get("enabled") is not None and not row["enabled"]:
            continue
        tz = row.get("timezone") or settings.timezone or section.timezone
        try:
            if job in settings.schedules:
                schedule = parse_schedule_text(settings.schedules[job], tz)
            else:
                schedule = schedule_from(row.get("kind"), cron=row.get("cron"), every=row.get("every_seconds"),
                                         hour=_int(row.get("hour")), minute=_int(row.get("minute")),
                                         day_of_week=_int(row.get("day_of_week")), tz=tz)
            last = to_epoch(row.get("last_success_at"))
        except (ScheduleError, ValueError) as exc:
            problems.append(f"job {job}: {exc}")
            continue
        labels = {"app": app, "job_name": job}
        if last is not None:
            samples.append(sample("caretaker_job_last_success_timestamp_seconds", last, **labels))
        if row.get("last_duration_seconds") is not None:
            samples.append(sample("caretaker_job_last_duration_seconds", float(row["last_duration_seconds"]),
                                  **labels))
        verdict = judge(schedule, last, grace, now)
        if verdict.status != "manual":
            samples.append(sample("caretaker_job_overdue_seconds", verdict.overdue_seconds, **labels))
        if verdict.status == "down":
            overdue.append(f"{job} {format_duration(verdict.overdue_seconds)}")
    problems += [f"app.schedules names job {j!r}, which {app} does not report" for j in settings.schedules
                 if j not in seen]
    return samples, problems, overdue


def job_failure_samples(app: str, failed: int, finished: int) -> list[Sample]:
    """`caretaker_jobs_failed` and `caretaker_job_error_ratio` (failed / finished, 0 with no finished run)
    of one app's runs in its failure window; every jobs probe (app, Jellyfin tasks, push jobs) exports them."""
    return [sample("caretaker_jobs_failed", failed, app=app),
            sample("caretaker_job_error_ratio", failed / finished if finished else 0.0, app=app)]


def failure_samples(app: str, rows: list[dict]) -> tuple[list[Sample], int]:
    """Rows (failed, finished) of the profile's `failures` query, summed → (jobs_failed and job_error_ratio
    samples, the failed count)."""
    failed = sum(int(r.get("failed") or 0) for r in rows)
    finished = sum(int(r.get("finished") or 0) for r in rows)
    return job_failure_samples(app, failed, finished), failed


def medians(rows: list[dict]) -> dict[str, float]:
    """Rows (job, duration_seconds) — one per run, or one per job already aggregated — → median per job."""
    by_job: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("duration_seconds") is not None:
            by_job[str(r["job"])].append(float(r["duration_seconds"]))
    return {job: statistics.median(values) for job, values in by_job.items()}


def stuck_limit(job: str, median: float | None, settings: AppProbesConfig) -> float:
    """Seconds a run of `job` may take: `stuck_after[job]` (or `["*"]`) when configured, else
    `stuck_factor` × its median duration but at least `stuck_floor`; `stuck_default` without a median."""
    fixed = settings.stuck_after.get(job, settings.stuck_after.get("*"))
    if fixed is not None:
        return fixed
    if median is None:
        return settings.stuck_default
    return max(settings.stuck_floor, settings.stuck_factor * median)


def judge_runs(runs: list[Run], job_medians: dict[str, float], settings: AppProbesConfig,
               now: float) -> list[RunVerdict]:
    """Each run in progress against its job's limit (also used by the clear_stuck_jobs action)."""
    out = []
    for run in runs:
        limit = stuck_limit(run.job, job_medians.get(run.job), settings)
        seconds = max(0.0, now - run.started_at)
        out.append(RunVerdict(run, seconds, limit, seconds > limit))
    return out


def running_samples(app: str, verdicts: list[RunVerdict]) -> list[Sample]:
    """Per job with a run in progress: its longest-running run's age, and 1 if any of its runs is stuck."""
    longest: dict[str, float] = {}
    stuck: dict[str, bool] = {}
    for v in verdicts:
        longest[v.run.job] = max(longest.get(v.run.job, 0.0), v.running_seconds)
        stuck[v.run.job] = stuck.get(v.run.job, False) or v.stuck
    out = []
    for job in sorted(longest):
        out.append(sample("caretaker_job_running_seconds", longest[job], app=app, job_name=job))
        out.append(sample("caretaker_job_stuck", 1 if stuck[job] else 0, app=app, job_name=job))
    return out


def runs_from_rows(rows: list[dict]) -> list[Run]:
    """Rows (job, started_at[, run_id]) of the profile's `running` query; rows without a start are skipped."""
    out = []
    for r in rows:
        started = to_epoch(r.get("started_at"))
        if started is not None:
            out.append(Run(str(r["job"]), started, str(r.get("run_id") or "")))
    return out


class AppJobsProbe(Probe):
    kind = "jobs"

    def __init__(self, entry: DatabaseConfig | SQLiteConfig, profile: Profile, api: ServiceConfig | None,
                 deps):
        super().__init__(entry.name, entry.app.interval, entry.timeout)
        self.entry, self.profile, self.api, self.deps = entry, profile, api, deps
        self.section: JobsSection = profile.jobs  # type: ignore[assignment]  # build() checks it

    async def _api_runs(self) -> list[Run]:
        call = self.profile.api.running_jobs  # type: ignore[union-attr]
        assert call is not None and self.api is not None
        data = await call_json(self.deps.http, self.api, call.method, call.path, auth=self.profile.api.auth,
                               timeout=self.timeout)
        items = dig(data, call.items)
        if not isinstance(items, list):
            raise ApiError(f"{self.api.name}: {call.path} did not answer a list")
        out = []
        for item in items:
            try:
                out.append(Run(str(item[call.job]), float(to_epoch(item[call.started_at]))))  # type: ignore[arg-type]
            except (KeyError, TypeError, ValueError):
                raise ApiError(f"{self.api.name}: {call.path}: an item lacks {call.job!r} or "
                               f"a valid {call.started_at!r}") from None
        return out

    async def collect(self, now: float) -> tuple[list[Sample], list[str], list[RunVerdict], list[str], int]:
        """(samples, problems, run verdicts, overdue jobs, failed runs) at `now`; the database must be
        reachable. Failed runs are 0 without a `failures` query."""
        s, settings = self.section, self.entry.app
        params = query_params(self.entry, now)
        samples: list[Sample] = []
        problems: list[str] = []
        overdue: list[str] = []
        failed = 0
        runs: list[Run] = []
        job_medians: dict[str, float] = {}
        async with open_app_db(self.entry) as db:
            if s.freshness:
                fresh, bad, overdue = freshness_samples(self.target, await db.rows(s.freshness, **params), s,
                                                        settings, now)
                samples += fresh
                problems += bad
            if s.failures:
                failures, failed = failure_samples(self.target, await db.rows(s.failures, **params))
                samples += failures
            if s.running:
                runs += runs_from_rows(await db.rows(s.running, **params))
            if s.durations:
                job_medians = medians(await db.rows(s.durations, **params))
        if self.api is not None and self.profile.api and self.profile.api.running_jobs:
            try:
                runs += await self._api_runs()
            except ApiError as exc:
                problems.append(f"running jobs: {exc}")
        verdicts = judge_runs(runs, job_medians, settings, now)
        samples += running_samples(self.target, verdicts)
        return samples, problems, verdicts, overdue, failed

    async def run(self) -> ProbeResult:
        try:
            samples, problems, verdicts, overdue, failed = await self.collect(self.deps.clock())
        except Exception as exc:  # the database is down or a query is wrong: say which, without secrets
            return ProbeResult(ok=False, reason=describe_db_error(exc))
        stuck = [v for v in verdicts if v.stuck]
        summary = (f"{len(overdue)} overdue{': ' + ', '.join(overdue) if overdue else ''}; {failed} failed; "
                   f"{len(stuck)} of {len(verdicts)} running stuck")
        return ProbeResult(samples, ok=not problems, reason="; ".join(problems), summary=summary)


def build(config: Config, deps) -> list[Probe]:
    probes: list[Probe] = []
    for entry, profile in app_entries(config):
        if profile.jobs is None:
            continue
        api = service(config, entry.app.api)
        if api is None and profile.api is not None and profile.api.running_jobs is not None:
            log.warning("%s: profile %s reads running jobs from the app's API; set app.api to its service "
                        "to detect stuck jobs", entry.name, profile.name)
        probes.append(AppJobsProbe(entry, profile, api, deps))
    return probes
