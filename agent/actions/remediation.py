"""Auto-remediation: a firing alert → its policy → the action under its lock → re-probe → a note.

The policy of an alert (DESIGN.md §2, §7) is the rule's `remediation` (agent/rules/defaults.yaml) with the
config's `remediation.<Rule>` applied. It runs automatically when `auto` allows it: the config's explicit
`auto: true`, or the rule's default — which never runs a destructive action unless the action is
`auto_safe` (clear_stuck_jobs for JobStuck). Monit's "N times within M cycles, then stop and escalate":
at most `max_runs` runs per alert instance within `window`, at least `cooldown` apart; past the cap the
remediator stops and sends one critical notification per window. An alert that keeps firing after a run is
retried after its cooldown (the round hook `retry`), so a fix that does not hold ends at the cap.

After a run the target's probes run again, the rule is evaluated on the fresh samples, and the outcome goes
into the alert's next notification ("vacuum_analyze on movies: dead tuples 31 042 → 0; resolved") before
the engine sees the new samples, so a resolution carries the note. Alerts from Prometheus arrive through
``POST /api/v1/alertmanager`` (agent/actions/api.py) and take the same path with trigger `alertmanager`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from agent.actions import ACTIONS
from agent.actions.base import Action, ActionError
from agent.actions.runner import ActionRunner
from agent.actions.targets import Target
from agent.config import Config, RemediationPolicy
from agent.durations import format_duration
from agent.probes.base import run_probe
from agent.rules.engine import alert_id, default_evaluator
from agent.rules.model import Rule, load_rules

log = logging.getLogger("caretaker.remediation")


@dataclass(frozen=True)
class Policy:
    action: Action
    auto: bool
    settings: RemediationPolicy  # params, cooldown, max_runs, window, dry_run


def policy_for(config: Config, rule: Rule) -> Policy | None:
    """The effective remediation policy of `rule`, or None when it has no action."""
    override = config.remediation.get(rule.name)
    default = rule.remediation
    name = (override.action if override is not None else None) or (default.action if default else None)
    if name is None:
        return None
    action = ACTIONS[name]
    if override is not None and override.auto is not None:
        auto = override.auto  # the config says so explicitly: even a destructive action
    else:
        auto = (default is not None and default.auto and default.action == name
                and (not action.destructive or action.auto_safe))
    return Policy(action, auto, override or RemediationPolicy())


def resolve_target(action: Action, config: Config, labels: dict[str, str]) -> Target | None:
    """The action's target named by the alert's labels: a target of that name, else the only target whose
    database, SQLite file, service or profile carries it."""
    targets = action.targets(config)
    for label in action.target_labels:
        value = labels.get(label)
        if value is None:
            continue
        if value in targets:
            return targets[value]
        owners = [t for t in targets.values() if value in (
            getattr(t.database, "name", None), getattr(t.sqlite, "name", None), getattr(t.service, "name", None),
            t.profile)]
        if len(owners) == 1:
            return owners[0]
    return None


def target_names(target: Target) -> set[str]:
    """Every name the target's probes may use as their `target`."""
    return {n for n in (target.name, getattr(target.database, "name", None), getattr(target.sqlite, "name", None),
                        getattr(target.service, "name", None), getattr(target.backup, "name", None)) if n}


class Remediator:
    """Runs policies for a Runtime `rt` (config, store, probes, clock, alerting or None) with `runner`."""

    def __init__(self, rt, runner: ActionRunner):
        self.rt, self.runner = rt, runner
        self.rules = {r.name: r for r in load_rules(rt.config.rules)}
        self.tasks: set[asyncio.Task] = set()
        self._busy: set[str] = set()
        alerting = getattr(rt, "alerting", None)
        if alerting is not None:
            alerting.on_firing.append(self.on_firing)
            rt.round_hooks.append(self.retry)

    # -- entry points ---------------------------------------------------------------------------

    async def on_firing(self, rule: Rule, labels: dict[str, str], value: float) -> dict[str, Any]:
        """The alerting hook: an alert instance started firing."""
        return await self.remediate(rule, labels, "alert")

    async def retry(self) -> None:
        """Round hook: run again for alerts still firing once their cooldown has passed (caps apply)."""
        engine = self.rt.alerting.engine
        for s in engine.firing():
            rule = engine.by_name.get(s.rule)
            policy = policy_for(self.rt.config, rule) if rule is not None else None
            if policy is None or not policy.auto or alert_id(s.rule, s.labels) in self._busy:
                continue
            if self._last_end(alert_id(s.rule, s.labels)) is None:
                continue  # never attempted: the firing hook decides (it may be a manual policy)
            await self.remediate(rule, dict(s.labels), "alert")

    async def alertmanager(self, alert: dict[str, Any]) -> dict[str, Any]:
        """One alert of an Alertmanager webhook (version 4): remediate it if it is firing and known here."""
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        name = labels.pop("alertname", "")
        answer = {"alertname": name, "fingerprint": alert.get("fingerprint")}
        rule = self.rules.get(name)
        if alert.get("status") != "firing":
            return {**answer, "decision": "ignored", "reason": "not firing"}
        if rule is None:
            return {**answer, "decision": "ignored", "reason": "no Caretaker rule of that name"}
        return {**answer, **await self.remediate(rule, labels, "alertmanager")}

    # -- the decision -----------------------------------------------------------------------------

    async def remediate(self, rule: Rule, labels: dict[str, str], trigger: str) -> dict[str, Any]:
        """Decide and, when allowed, start the run; the follow-up (re-probe, note) runs as its own task.
        Returns {"decision": started|skipped|ignored, "reason"?, "run_id"?}."""
        policy = policy_for(self.rt.config, rule)
        if policy is None:
            return {"decision": "ignored", "reason": "the rule has no remediation"}
        if not policy.auto:
            return {"decision": "skipped", "reason": f"{policy.action.name} is manual for {rule.name}"}
        key = alert_id(rule.name, labels)
        target = resolve_target(policy.action, self.rt.config, labels)
        if target is None:
            return {"decision": "skipped", "reason": f"no target of {policy.action.name} here for {key}"}
        if key in self._busy:
            return {"decision": "skipped", "reason": "a remediation of this alert is in progress"}
        if (why := self._hold(rule, labels, key, policy)) is not None:
            return {"decision": "skipped", "reason": why}
        params = {**policy.action.alert_params(labels), **policy.settings.params}
        try:
            prep = self.runner.prepare(policy.action.name, target.name, params, confirm=True,
                                       dry_run=policy.settings.dry_run)
            started = await self.runner.start(prep, trigger, f"rule {rule.name}", alert=key)
        except ActionError as exc:
            self._note(rule, labels, trigger, f"{policy.action.name} on {target.name} not run: {exc.reason}")
            return {"decision": "skipped", "reason": exc.reason}
        if not started["triggered"]:
            return {"decision": "skipped", "reason": "running", "run_id": started["run_id"]}
        self._busy.add(key)
        task = asyncio.create_task(self._follow_up(rule, labels, trigger, key, target, started["run_id"]))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        log.info("remediating %s with %s on %s (run %d)", key, policy.action.name, target.name, started["run_id"])
        return {"decision": "started", "action": policy.action.name, "target": target.name,
                "run_id": started["run_id"]}

    def _last_end(self, key: str) -> float | None:
        row = self.rt.state.query("SELECT max(coalesce(finished_at, started_at)) AS t FROM action_runs WHERE alert = ?",
                                  (key,))
        return row[0]["t"] if row else None

    def _hold(self, rule: Rule, labels: dict[str, str], key: str, policy: Policy) -> str | None:
        """Why the policy holds this run back now (cooldown, cap), or None. Escalates once per window: a
        critical note on its own (`Alerting.add_note(..., severity="critical")`), so that it pages."""
        s, now = policy.settings, self.rt.clock()
        last = self._last_end(key)
        if last is not None and now - last < s.cooldown:
            return f"cooldown: the last run ended {format_duration(now - last)} ago (cooldown {format_duration(s.cooldown)})"
        runs = self.rt.state.query("SELECT count(*) AS n FROM action_runs WHERE alert = ? AND started_at > ?",
                                   (key, now - s.window))[0]["n"]
        if runs < s.max_runs:
            return None
        reason = (f"cap: {policy.action.name} ran {runs} times within {format_duration(s.window)} and {key} "
                  "still fires; stopped, a human is needed")
        with self.rt.state.tx() as db:
            row = db.execute("SELECT escalated_at FROM remediation_escalations WHERE alert = ?", (key,)).fetchone()
            first = row is None or row["escalated_at"] < now - s.window
            if first:
                db.execute("INSERT OR REPLACE INTO remediation_escalations VALUES (?, ?)", (key, now))
        if first:
            log.error("auto-remediation of %s stopped: %s", key, reason)
            alerting = getattr(self.rt, "alerting", None)
            if alerting is not None:
                alerting.add_note(rule.name, labels, f"Auto-remediation stopped: {reason}.", severity="critical")
        return reason

    # -- after the run ----------------------------------------------------------------------------

    async def _follow_up(self, rule: Rule, labels: dict[str, str], trigger: str, key: str, target: Target,
                         run_id: int) -> None:
        try:
            await self.runner.wait(run_id)
            record = self.runner.get_run(run_id)
            action = ACTIONS[record["action"]]
            probes = [p for p in self.rt.probes if p.target in target_names(target)]
            await asyncio.gather(*(run_probe(p, self.rt.store, self.rt.clock) for p in probes))
            state = "resolved" if not self.still_firing(rule, labels) else "still firing"
            if record["outcome"] == "succeeded":
                text = f"{action.name} {action.summary(target.name, record['result'])}; {state}"
            elif record["outcome"] == "planned":
                text = f"{action.name} on {target.name}: dry run only (remediation policy dry_run); {state}"
            else:
                text = f"{action.name} on {target.name} {record['outcome']}: {record['error']}; {state}"
            self._note(rule, labels, trigger, text)
            if probes:
                await self.rt.after_probe()  # the engine sees the fresh samples after the note is attached
        finally:
            self._busy.discard(key)

    def still_firing(self, rule: Rule, labels: dict[str, str]) -> bool:
        """Whether the rule's clear condition still holds for the alert's series on the current samples."""
        for m in default_evaluator(rule)(self.rt.store, self.rt.clock()):
            if all(labels.get(k) == v for k, v in m.labels):
                return m.holds_clear
        return False

    def _note(self, rule: Rule, labels: dict[str, str], trigger: str, text: str) -> None:
        log.info("%s: %s", alert_id(rule.name, labels), text)
        alerting = getattr(self.rt, "alerting", None)
        if trigger == "alert" and alerting is not None:
            alerting.add_note(rule.name, labels, text)

    async def idle(self) -> None:
        """Wait until every follow-up has finished (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
