"""Attach the actions to a Runtime: `rt.actions` (the runner), `rt.remediator`, `rt.calendar`, the API."""

from __future__ import annotations

from agent.actions.api import router
from agent.actions.calendar import Calendar
from agent.actions.remediation import Remediator
from agent.actions.runner import ActionRunner


def attach(rt) -> None:
    """Build the runner (recovering locks of crashed runs), the remediator (hooked to `rt.alerting` when
    the runtime has one) and the calendar; register their services and the router."""
    rt.actions = ActionRunner(rt)
    rt.remediator = Remediator(rt, rt.actions)
    rt.calendar = Calendar(rt, rt.actions)
    rt.services += [rt.actions.service, rt.calendar.service]
    rt.routers.append(router)
