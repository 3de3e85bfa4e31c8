"""The alert pipeline of a running agent, reachable as ``rt.alerting``: rule engine + notifier + API.

Hooks for other areas (the remediator, scheduled maintenance):

- ``rt.alerting.on_firing``: a list; append callables ``f(rule, labels, value)`` — `rule` an
  agent.rules.model.Rule (its `remediation` says what to run), `labels` a dict, `value` the rule's value —
  called once when an alert instance starts firing, after its state and notification are committed (not
  on every evaluation while it fires). A coroutine result runs as its own task, so a long action never
  delays rule evaluation; exceptions are logged.
- ``rt.alerting.add_note(rule_name, labels, text, severity=None)``: attach a line ("vacuum_analyze on
  movies: dead tuples 31 042 → 0; resolved") to the alert's next notification on every destination (or
  send it alone when the alert is neither active nor waiting in the outbox). With ``severity="critical"`` the note goes out
  at once on its own, routed as that severity (an escalation: "auto-remediation stopped after 3 runs").
  KeyError for an unknown rule name.
- ``rt.alerting.silence(matchers, until, reason, created_by="caretaker") -> id`` and
  ``rt.alerting.unsilence(id)``: a temporary silence (``["alertname=PostgresDeadTuplesHigh",
  "database=aperture"]`` or ``{"alertname": …}``) until the epoch time `until`; ValueError for bad matchers.
- ``rt.alerting.alerts()``: the current alerts as dicts (what ``GET /api/v1/alerts`` answers).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable

from agent.config import Config
from agent.notify.inhibit import EXTERNAL_KINDS, INTERNET_UNREACHABLE, inhibitions, internet_unreachable
from agent.notify.notifier import Notifier
from agent.notify.routes import build_destinations
from agent.notify.silences import add_silence, expire_silence
from agent.rules.engine import RuleEngine, Transition, default_evaluator, labels_json
from agent.rules.format import format_value, render
from agent.rules.model import load_rules
from agent.state import State
from agent.store import Store

log = logging.getLogger("caretaker.alerts")

FiringHook = Callable[[Any, dict, float], Any]


class Alerting:
    """Build the engine and notifier for `config` over `state` and `store` (see the module docstring).

    `complete()` tells the engine every probe has run since start; `on_metrics()` is called after the
    notifier updates its series; `destinations` replaces the configured Apprise URLs (tests)."""

    def __init__(self, config: Config, state: State, store: Store, clock: Callable[[], float],
                 complete: Callable[[], bool] = lambda: True, on_metrics: Callable[[], None] = lambda: None,
                 destinations: list | None = None):
        self.clock = clock
        self.state = state
        rules = [(r, default_evaluator(r)) for r in load_rules(config.rules)]
        rules.append((INTERNET_UNREACHABLE, internet_unreachable))
        self.engine = RuleEngine(rules, state, store, clock, complete)
        external = frozenset(s.name for s in config.services if s.kind in EXTERNAL_KINDS)
        self.notifier = Notifier(config.notify, state, store, clock, config.agent.hostname,
                                 build_destinations(config.notify.urls) if destinations is None else destinations,
                                 self.engine, inhibitions(external), on_metrics)
        self.engine.sinks.append(self.notifier.enqueue)
        self.engine.listeners.append(self._dispatch_firing)
        self.on_firing: list[FiringHook] = []
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    def attach(cls, rt: Any) -> "Alerting":
        """Build for a Runtime and register the round hook, the delivery service and the API router."""
        from agent.notify.api import router

        alerting = cls(rt.config, rt.state, rt.store, rt.clock, complete=lambda: rt.ready,
                       on_metrics=rt.exporter.refresh)
        rt.round_hooks.append(alerting.engine.run_round)
        rt.services.append(alerting.notifier.serve)
        rt.routers.append(router)
        return alerting

    def _dispatch_firing(self, transitions: list[Transition]) -> None:
        for t in transitions:
            if t.kind != "firing":
                continue
            for hook in self.on_firing:
                try:
                    result = hook(t.rule, dict(t.labels), t.value)
                    if inspect.isawaitable(result):
                        task = asyncio.ensure_future(result)
                        self._tasks.add(task)
                        task.add_done_callback(self._hook_done)
                except Exception:
                    log.exception("on_firing hook %s failed", getattr(hook, "__qualname__", hook))

    def _hook_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("on_firing hook failed", exc_info=task.exception())

    def add_note(self, rule_name: str, labels: dict[str, str], text: str, severity: str | None = None) -> None:
        self.notifier.add_note(rule_name, labels, text, severity)

    def silence(self, matchers: list[str] | dict[str, str], until: float, reason: str,
                created_by: str = "caretaker") -> str:
        return add_silence(self.state, matchers, until, reason, created_by, self.clock()).id

    def unsilence(self, silence_id: str) -> bool:
        return expire_silence(self.state, silence_id, self.clock())

    def alerts(self) -> list[dict]:
        """Active alerts, firing first: name, labels, state, severity, value (and as text), threshold,
        summary, active_since, fired_at, held_by (silence or inhibition holding its notifications), flapping."""
        now = self.clock()
        holds, firing = self.notifier.holds(now), self.engine.firing()
        flapping = {(r["rule"], r["labels"]) for r in self.state.query("SELECT rule, labels FROM alert_flapping")}
        out = []
        for s in sorted(self.engine.states.values(), key=lambda a: (a.state != "firing", a.rule, a.labels)):
            rule, labels = self.engine.by_name[s.rule], dict(s.labels)
            out.append({"name": s.rule, "labels": labels, "state": s.state, "severity": rule.severity_for(labels),
                        "value": s.value, "value_text": format_value(rule.unit, s.value),
                        "threshold": rule.threshold, "summary": render(rule.summary, labels, rule.unit, s.value,
                                                                       rule.threshold),
                        "active_since": s.active_since, "fired_at": s.fired_at,
                        "held_by": self.notifier.hold_reason(s.rule, labels, holds, firing),
                        "flapping": (s.rule, labels_json(s.labels)) in flapping})
        return out
