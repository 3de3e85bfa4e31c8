"""Healthchecks-style push pings for cron scripts: `POST /api/v1/ping/{job}`, `…/start`, `…/fail`.

A script reports success (`/ping/{job}`), its start (`/start`, so its duration and a hung run are known)
and its failure (`/fail`); each ping is kept in the state file, the last `KEEP` per job. Only jobs in the
config's `jobs:` section are accepted (404 otherwise).

Auth: `Authorization: Bearer T` where T is the job's own `token` (so a script holds no admin power) or the
admin token; both compared in constant time. 401 without a token, 403 with a wrong one, 503 when neither
the job nor the agent has a token configured (DESIGN.md §9: mutating endpoints need a token).

    curl -fsS -m 10 --retry 3 -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9464/api/v1/ping/backup-db
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Literal

from fastapi import APIRouter, HTTPException, Request

from agent.auth import bearer_token, check_token
from agent.config import PushJobConfig
from agent.state import State

KEEP = 1000  # pings per job: a day of history for jobs running up to every 90 s
Kind = Literal["start", "success", "fail"]

router = APIRouter()


def record_ping(state: State, job: str, kind: Kind, at: float) -> None:
    """Store one ping and drop the job's pings beyond the newest KEEP."""
    with state.tx() as db:
        db.execute("INSERT INTO job_pings (job, kind, at) VALUES (?, ?, ?)", (job, kind, at))
        db.execute("DELETE FROM job_pings WHERE job = ? AND id <= (SELECT id FROM job_pings WHERE job = ? "
                   "ORDER BY id DESC LIMIT 1 OFFSET ?)", (job, job, KEEP))


def recent_pings(state: State, job: str) -> list[tuple[str, float]]:
    """The job's stored pings as (kind, at), oldest first."""
    rows = state.query("SELECT kind, at FROM job_pings WHERE job = ? ORDER BY id DESC LIMIT ?", (job, KEEP))
    return [(r["kind"], r["at"]) for r in reversed(rows)]


def _authorize(request: Request, job: PushJobConfig | None) -> None:
    if job is not None and job.token is not None:
        given = bearer_token(request)
        if given and hmac.compare_digest(given.encode(), job.token.get_secret_value().encode()):
            return
        if request.app.state.admin_token is None:
            raise HTTPException(403 if given else 401, "invalid token" if given else "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
    check_token(request, mutating=True)


async def _ping(request: Request, job_name: str, kind: Kind) -> dict:
    rt = request.app.state.rt
    job = next((j for j in rt.config.jobs if j.name == job_name), None)
    _authorize(request, job)
    if job is None:
        raise HTTPException(404, f"no push job named {job_name!r} in the config's jobs: section")
    await asyncio.to_thread(record_ping, rt.state, job.name, kind, rt.clock())
    # Re-probe now, so a late job's overdue alert clears with its ping, not one interval later.
    for probe in rt.probes:
        if probe.kind == "push_jobs" and probe.target == job.app:
            await rt.probe_once(probe)
    return {"ok": True, "job": job.name, "kind": kind}


@router.post("/api/v1/ping/{job}")
async def ping_success(job: str, request: Request) -> dict:
    return await _ping(request, job, "success")


@router.post("/api/v1/ping/{job}/start")
async def ping_start(job: str, request: Request) -> dict:
    return await _ping(request, job, "start")


@router.post("/api/v1/ping/{job}/fail")
async def ping_fail(job: str, request: Request) -> dict:
    return await _ping(request, job, "fail")
