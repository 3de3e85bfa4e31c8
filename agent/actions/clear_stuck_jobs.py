"""clear_stuck_jobs (destructive): end the runs an app left "running" past their limit.

Which runs are stuck is decided exactly as the jobs probe decides it (agent/probes/app_jobs.py: the
profile's `running` query and the app's running-jobs API, against `app.stuck_after`, or `stuck_factor` ×
the job's median duration), so the action clears what JobStuck fired for, and nothing younger. Each run
is ended through the profile's `actions:` — `clear_stuck_jobs`, a statement that marks one run failed
with a reason only if it is still running (Tsundoku's series_refresh_runs, Aphrodite's processing_jobs),
or `cancel_job`, an API call (Aperture keeps running jobs in memory: ``POST /api/jobs/{job}/cancel``).

Destructive, because it ends work; but a run scoped to a firing JobStuck alert is `auto_safe`: it only
touches runs past the limit that made the alert fire, and marks them failed rather than deleting them.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from agent.actions.appwrite import open_writer
from agent.actions.base import Action, ActionFailed, Context, Params, ResultModel
from agent.actions.targets import Target, app_targets, entry_of
from agent.appapi import ApiError, call_json
from agent.config import Config, Duration
from agent.durations import format_duration
from agent.probes.app_jobs import AppJobsProbe
from agent.profiles import ApiCall, load_profile


class StuckParams(Params):
    job: str | None = None  # only this job's runs; default: every job
    older_than: Duration | None = None  # a run older than this is stuck; default: the jobs probe's limit


class ClearedRun(ResultModel):
    job: str
    run_id: str
    running_seconds: float
    limit_seconds: float
    how: Literal["sql", "api"]
    cleared: bool
    error: str | None = None


class StuckResult(ResultModel):
    cleared: int
    runs: list[ClearedRun]


def _means(target: Target) -> tuple[str | None, ApiCall | None]:
    actions = load_profile(target.profile).actions
    statement = actions.get("clear_stuck_jobs")
    call = actions.get("cancel_job")
    return (statement if isinstance(statement, str) and entry_of(target) else None,
            call if isinstance(call, ApiCall) and target.service else None)


class ClearStuckJobs(Action):
    name = "clear_stuck_jobs"
    description = "Mark an app's runs stuck past their limit failed (or cancel them through the app's API)."
    Params = StuckParams
    Result = StuckResult
    destructive = True
    auto_safe = True
    timeout = 300.0
    target_labels = ("app",)

    def targets(self, config: Config) -> dict[str, Target]:
        return {n: t for n, t in app_targets(config).items()
                if entry_of(t) is not None and load_profile(t.profile).jobs is not None and any(_means(t))}

    def alert_params(self, labels: dict[str, str]) -> dict[str, Any]:
        return {"job": labels["job_name"]} if labels.get("job_name") else {}

    async def plan(self, ctx: Context) -> dict[str, Any]:
        t, p = ctx.target, ctx.params
        statement, call = _means(t)
        probe = AppJobsProbe(entry_of(t), load_profile(t.profile), t.service, ctx.deps)
        _, problems, verdicts, _, _ = await probe.collect(ctx.now())
        runs = []
        for v in verdicts:
            limit = v.limit if p.older_than is None else p.older_than
            if v.running_seconds <= limit or (p.job is not None and v.run.job != p.job):
                continue
            how = "sql" if statement and v.run.run_id else "api" if call else None
            if how is None:
                problems.append(f"{v.run.job}: no way to end this run (profile has no matching action)")
                continue
            reason = (f"cleared by caretaker: running {format_duration(v.running_seconds)}, "
                      f"past its limit of {format_duration(limit)}")
            runs.append({"job": v.run.job, "run_id": v.run.run_id, "started_at": v.run.started_at,
                         "running_seconds": round(v.running_seconds, 1), "limit_seconds": limit, "how": how,
                         "reason": reason,
                         "do": statement if how == "sql" else f"{call.method} {call.path.format(job=v.run.job)}"})
        return {"runs": runs, "problems": problems}

    async def execute(self, ctx: Context, plan: dict[str, Any]) -> dict[str, Any]:
        t = ctx.target
        statement, call = _means(t)
        ctx.progress.start("clear", len(plan["runs"]))
        out = []
        sql_runs = [r for r in plan["runs"] if r["how"] == "sql"]
        if sql_runs:
            async with open_writer(entry_of(t), ctx.timeout) as db:
                for r in sql_runs:
                    n = await db.run(statement, job=r["job"], run_id=r["run_id"], reason=r["reason"])
                    out.append(self._row(r, n > 0, None if n else "no longer running"))
                    ctx.progress.advance()
        api = load_profile(t.profile).api
        for r in (r for r in plan["runs"] if r["how"] == "api"):
            error = None
            try:
                await call_json(ctx.http, t.service, call.method, call.path.format(job=quote(r["job"], safe="")),
                                auth=api.auth if api else "bearer", timeout=min(ctx.timeout, 30.0))
            except ApiError as exc:
                error = str(exc)
            out.append(self._row(r, error is None, error))
            ctx.progress.advance()
        result = {"cleared": sum(r["cleared"] for r in out), "runs": out}
        errors = [r for r in out if r["error"] and r["error"] != "no longer running"]
        if errors:
            raise ActionFailed(f"{len(errors)} run(s) could not be cleared: {errors[0]['error']}", result)
        return result

    @staticmethod
    def _row(run: dict[str, Any], cleared: bool, error: str | None) -> dict[str, Any]:
        return {"job": run["job"], "run_id": run["run_id"], "running_seconds": run["running_seconds"],
                "limit_seconds": run["limit_seconds"], "how": run["how"], "cleared": cleared, "error": error}

    def summary(self, target: str, result: dict[str, Any]) -> str:
        jobs = sorted({r["job"] for r in result.get("runs", []) if r["cleared"]})
        return f"on {target}: {result.get('cleared', 0)} stuck run(s) cleared" + (f" ({', '.join(jobs)})" if jobs else "")
