"""Alerts and silences over HTTP (DESIGN.md §9), with the admin bearer token.

- ``GET /api/v1/alerts`` → ``{"alerts": [...]}`` (see Alerting.alerts).
- ``GET /api/v1/silences[?all=true]`` → ``{"silences": [...]}``: current and future ones (all: ended too).
- ``POST /api/v1/silences`` ``{"matchers": ["alertname=DiskSpaceHigh", "mountpoint=/"], "duration": "2h"
  | "ends_at": ISO-8601 or epoch, "starts_at": optional, "reason": "…", "created_by": "…"}`` → 201 with the
  silence; 422 naming the problem.
- ``DELETE /api/v1/silences/{id}`` → the silence, ended now; 404 when unknown or already ended.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, model_validator

from agent.auth import admin_read, admin_write
from agent.config import Duration
from agent.notify.silences import add_silence, expire_silence, list_silences

router = APIRouter(prefix="/api/v1")


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: list[str]
    duration: Duration | None = None
    ends_at: datetime | None = None
    starts_at: datetime | None = None
    reason: str = ""
    created_by: str = "api"

    @model_validator(mode="after")
    def _one_end(self) -> "SilenceIn":
        if (self.duration is None) == (self.ends_at is None):
            raise ValueError("give exactly one of duration or ends_at")
        return self


def _alerting(request: Request):
    return request.app.state.rt.alerting


@router.get("/alerts", dependencies=[Depends(admin_read)])
def get_alerts(request: Request) -> dict:
    return {"alerts": _alerting(request).alerts()}


@router.get("/silences", dependencies=[Depends(admin_read)])
def get_silences(request: Request, all: bool = False) -> dict:
    alerting = _alerting(request)
    return {"silences": [s.as_dict() for s in list_silences(alerting.state, alerting.clock(), all)]}


@router.post("/silences", status_code=201, dependencies=[Depends(admin_write)])
def post_silence(request: Request, body: SilenceIn) -> dict:
    alerting = _alerting(request)
    now = alerting.clock()
    start = body.starts_at.timestamp() if body.starts_at else now
    end = body.ends_at.timestamp() if body.ends_at else start + body.duration
    try:
        silence = add_silence(alerting.state, body.matchers, end, body.reason, body.created_by, now, start)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return silence.as_dict()


@router.delete("/silences/{silence_id}", dependencies=[Depends(admin_write)])
def delete_silence(request: Request, silence_id: str) -> dict:
    alerting = _alerting(request)
    now = alerting.clock()
    if not expire_silence(alerting.state, silence_id, now):
        raise HTTPException(404, f"no active silence {silence_id}")
    return next(s.as_dict() for s in list_silences(alerting.state, now, True) if s.id == silence_id)
