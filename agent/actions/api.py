"""The actions API (DESIGN.md §9), behind the admin bearer token (agent/auth.py: 401 without, 403 wrong,
503 for mutating endpoints when no token is configured):

- ``GET /api/v1/actions``: every action with its description, destructive flag, targets, params schema.
- ``POST /api/v1/actions/{name}`` ``{dry_run, confirm, params, target}``: 202 ``{"triggered": true,
  "run_id"}``; a dry run answers 200 with the plan (502 when the target could not be read); 409
  ``{"triggered": false, "reason": "running", "run_id"}`` while a run of the same action and target holds
  the lock; 404 unknown action or target, 400 bad params or a destructive action without ``confirm:
  true``, 409 a failed precondition — each with a `reason`.
- ``GET /api/v1/actions/runs`` (newest first, ``?action=&limit=``) and ``GET /api/v1/actions/runs/{id}``:
  the audit record, with progress (done/total) while the run goes on.
- ``POST /api/v1/alertmanager``: Alertmanager's webhook (payload version 4); each firing alert whose
  name is a Caretaker rule takes the auto-remediation path (agent/actions/remediation.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from agent.actions import ACTIONS
from agent.actions.base import ActionError
from agent.auth import admin_read, admin_write

router = APIRouter(prefix="/api/v1")


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = False
    confirm: bool = False
    params: dict[str, Any] = {}
    target: str | None = None


class AlertmanagerAlert(BaseModel):
    status: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    startsAt: str | None = None  # noqa: N815 — Alertmanager's field names
    endsAt: str | None = None  # noqa: N815
    fingerprint: str | None = None


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook body (prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    version: str = "4"
    receiver: str = ""
    status: str = ""
    alerts: list[AlertmanagerAlert] = Field(default_factory=list)


def _who(request: Request) -> str:
    return f"api from {request.client.host if request.client else 'unknown'}"


@router.get("/actions", dependencies=[Depends(admin_read)])
def list_actions(request: Request) -> JSONResponse:
    config = request.app.state.rt.config
    return JSONResponse({"actions": [a.describe(config) for a in ACTIONS.values()]})


@router.get("/actions/runs", dependencies=[Depends(admin_read)])
def list_runs(request: Request, action: str | None = None, limit: int = 50) -> JSONResponse:
    return JSONResponse({"runs": request.app.state.rt.actions.runs(action, max(1, min(limit, 500)))})


@router.get("/actions/runs/{run_id}", dependencies=[Depends(admin_read)])
def get_run(request: Request, run_id: int) -> JSONResponse:
    record = request.app.state.rt.actions.get_run(run_id)
    if record is None:
        return JSONResponse({"reason": f"no action run {run_id}"}, 404)
    return JSONResponse(record)


@router.post("/actions/{name}", dependencies=[Depends(admin_write)])
async def trigger(request: Request, name: str, body: ActionRequest) -> JSONResponse:
    runner = request.app.state.rt.actions
    try:
        prep = runner.prepare(name, body.target, body.params, confirm=body.confirm, dry_run=body.dry_run)
        started = await runner.start(prep, "api", _who(request))
    except ActionError as exc:
        return JSONResponse({"triggered": False, "reason": exc.reason}, exc.status)
    if not started["triggered"]:
        return JSONResponse(started, 409)
    if body.dry_run:  # the plan is made now: a refusal or a failure to read the target shows in the status
        return JSONResponse(started, {"planned": 200, "refused": 409}.get(started["outcome"], 502))
    return JSONResponse(started, 202)


@router.post("/alertmanager", dependencies=[Depends(admin_write)])
async def alertmanager(request: Request, body: AlertmanagerPayload) -> JSONResponse:
    remediator = request.app.state.rt.remediator
    results = [await remediator.alertmanager(alert.model_dump()) for alert in body.alerts]
    return JSONResponse({"receiver": body.receiver, "alerts": results})
