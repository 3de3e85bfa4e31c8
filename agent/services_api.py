"""`POST /api/v1/services/{name}/test` — "Test connection" (DESIGN.md §9): run one service probe now.

Answers ``{service, outcome, ok, reason, response_seconds, summary}``; 404 for a name not in `services:`.
The run is a normal probe run: its samples replace the stored ones and it counts in the error window.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from agent.auth import admin_write
from agent.probes.services import ServiceProbe

router = APIRouter()


@router.post("/api/v1/services/{name}/test", dependencies=[Depends(admin_write)])
async def test_service(name: str, request: Request) -> dict:
    rt = request.app.state.rt
    probe = next((p for p in rt.probes if isinstance(p, ServiceProbe) and p.target == name), None)
    if probe is None:
        raise HTTPException(404, f"no service named {name!r} in the config")
    status = await rt.probe_once(probe)
    call = probe.last  # None when the runner's own time limit stopped the check
    return {"service": name, "outcome": call.outcome if call else "timeout", "ok": status.ok,
            "reason": status.reason, "response_seconds": call.response_seconds if call else None,
            "summary": status.summary}
