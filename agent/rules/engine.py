"""The rule engine: one state machine per (rule, label set), evaluated after every probe run (DESIGN.md §2, §7).

    inactive ──condition──► pending ──held for `for`──► firing ──cleared──► resolved (= inactive)
         └────────── condition, `for` = 0 ─────────────────┘

- While pending, the rule's condition (`Match.fires`) must hold; while firing, the clear condition
  (`Match.holds_clear`, the hysteresis threshold) is what keeps it firing.
- `keep_firing_for`: a firing alert whose condition stopped holds on that long after it last held.
- A series that disappears counts as a condition that stopped holding, so its alert resolves — but only
  once every probe has run since start (`complete()`), so a restart does not resolve alerts whose
  series simply have not been measured yet.

`step()` is the pure transition function; `RuleEngine` applies it to the store, persists the states in the
state file (table `alerts`) and hands the transitions to its `sinks` *inside the same transaction* (the
notifier's outbox), so a restart neither re-sends a firing alert nor forgets one, and an alert whose
condition cleared while the agent was down resolves at the first complete evaluation after the restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Literal

from agent.rules.format import format_value
from agent.rules.model import Match, Rule, evaluate, rule_metrics
from agent.samples import Labels, sample
from agent.state import State
from agent.store import Store

log = logging.getLogger("caretaker.alerts")

SEVERITIES = ("critical", "warning", "info")
Evaluator = Callable[[Store, float], list[Match]]
Key = tuple[str, Labels]  # (rule name, labels)


def labels_json(labels: Labels) -> str:
    """The canonical text of a label set (the state file's key): sorted compact JSON."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def labels_from_json(text: str) -> Labels:
    return tuple(sorted(json.loads(text).items()))


def alert_id(rule: str, labels: Labels | dict[str, str]) -> str:
    """``DiskSpaceHigh{mountpoint="/"}``: how logs and messages name one alert instance."""
    pairs = sorted(labels.items()) if isinstance(labels, dict) else labels
    inner = ",".join(f'{k}="{v}"' for k, v in pairs)
    return f"{rule}{{{inner}}}" if inner else rule


@dataclass(frozen=True)
class AlertState:
    """An active (pending or firing) alert instance. Times are epoch seconds; `value` is the last value."""

    rule: str
    labels: Labels
    state: Literal["pending", "firing"]
    active_since: float  # when the condition started to hold
    last_true: float  # last evaluation at which the (clear) condition held: keep_firing_for counts from here
    value: float
    fired_at: float | None = None


@dataclass(frozen=True)
class Transition:
    """A change of state. `kind`: pending (condition holds, waiting for `for`), inactive (stopped holding
    before `for`), firing, resolved. `value` is None when the series disappeared."""

    rule: Rule
    labels: Labels
    kind: Literal["pending", "inactive", "firing", "resolved"]
    at: float
    value: float | None
    since: float  # when the condition started to hold
    fired_at: float | None = None


def step(rule: Rule, prev: AlertState | None, match: Match | None,
         now: float) -> tuple[AlertState | None, Transition | None]:
    """One evaluation of one alert instance: (new state or None for inactive, transition or None).

    `match` is None when the series is absent. Pure: depends only on its arguments."""
    if prev is None and match is None:
        return None, None
    labels = match.labels if match is not None else prev.labels
    value = match.value if match is not None else None
    if prev is not None and prev.state == "firing":
        holds = match is not None and match.holds_clear
    else:
        holds = match is not None and match.fires
    if holds:
        assert value is not None
        if prev is None:
            if rule.for_ <= 0:
                fired = AlertState(rule.name, labels, "firing", now, now, value, fired_at=now)
                return fired, Transition(rule, labels, "firing", now, value, now, now)
            pending = AlertState(rule.name, labels, "pending", now, now, value)
            return pending, Transition(rule, labels, "pending", now, value, now)
        if prev.state == "pending" and now - prev.active_since >= rule.for_:
            fired = replace(prev, state="firing", last_true=now, value=value, fired_at=now)
            return fired, Transition(rule, labels, "firing", now, value, prev.active_since, now)
        return replace(prev, last_true=now, value=value), None
    if prev is None:
        return None, None
    if prev.state == "pending":
        return None, Transition(rule, labels, "inactive", now, value, prev.active_since)
    if now - prev.last_true < rule.keep_firing_for:
        return replace(prev, value=prev.value if value is None else value), None
    return None, Transition(rule, labels, "resolved", now, value, prev.active_since, prev.fired_at)


def default_evaluator(rule: Rule) -> Evaluator:
    metrics = rule_metrics(rule)
    return lambda store, now: evaluate(rule, {m: store.series(m) for m in metrics}, now)


def evaluate_all(rules: Iterable[tuple[Rule, Evaluator]], states: dict[Key, AlertState], store: Store,
                 now: float, complete: bool) -> tuple[dict[Key, AlertState], list[Transition]]:
    """Step every instance of every rule; an instance without a series steps with match None when the
    store is `complete`, and is kept unchanged otherwise."""
    new: dict[Key, AlertState] = {}
    transitions: list[Transition] = []
    for rule, evaluator in rules:
        seen = set()
        for match in evaluator(store, now):
            key = (rule.name, match.labels)
            seen.add(key)
            state, t = step(rule, states.get(key), match, now)
            if state is not None:
                new[key] = state
            if t is not None:
                transitions.append(t)
        for key, prev in states.items():
            if key[0] != rule.name or key in seen:
                continue
            if not complete:
                new[key] = prev
                continue
            state, t = step(rule, prev, None, now)
            if state is not None:
                new[key] = state
            if t is not None:
                transitions.append(t)
    return new, transitions


def describe(t: Transition) -> str:
    """The log line of a transition: ``alert DiskSpaceHigh{mountpoint="/"} firing: value 91.0% > 80.0%``."""
    rule = t.rule
    name = alert_id(rule.name, t.labels)
    if t.value is None:
        return f"alert {name} {t.kind}: series no longer reported"
    value = format_value(rule.unit, t.value)
    condition = f"value {value} {rule.op} {format_value(rule.unit, rule.threshold)}"
    if t.kind == "pending":
        return f"alert {name} pending: {condition}, firing after {format_value('seconds', rule.for_)}"
    if t.kind == "firing":
        return f"alert {name} firing: {condition}"
    if t.kind == "inactive":
        return f"alert {name} inactive: value {value} no longer {rule.op} " \
               f"{format_value(rule.unit, rule.threshold)} after {format_value('seconds', t.at - t.since)} pending"
    clear = rule.threshold if rule.clear is None else rule.clear
    return f"alert {name} {t.kind}: value {value} (fires {rule.op} {format_value(rule.unit, rule.threshold)}, " \
           f"holds while {rule.op} {format_value(rule.unit, clear)})"


Sink = Callable[[sqlite3.Connection, list[Transition], float], None]
Listener = Callable[[list[Transition]], Any]


class RuleEngine:
    """Evaluates `rules` (pairs of Rule and Evaluator) against `store` and keeps the alert states.

    `sinks` run inside the transaction that persists the new states (the outbox writes there);
    `listeners` run after the commit (remediation hooks). `states` is the current view (read-only for
    others). `complete()` tells whether every probe has run since start."""

    def __init__(self, rules: list[tuple[Rule, Evaluator]], state: State, store: Store,
                 clock: Callable[[], float], complete: Callable[[], bool] = lambda: True):
        self.rules = rules
        self.by_name = {rule.name: rule for rule, _ in rules}
        self.state = state
        self.store = store
        self.clock = clock
        self.complete = complete
        self.sinks: list[Sink] = []
        self.listeners: list[Listener] = []
        self.states: dict[Key, AlertState] = self._load()
        self._export()

    def _load(self) -> dict[Key, AlertState]:
        states = {}
        for row in self.state.query("SELECT * FROM alerts"):
            if row["rule"] not in self.by_name:
                log.info("dropping the saved state of %s: the rule no longer exists or is disabled",
                         alert_id(row["rule"], labels_from_json(row["labels"])))
                continue
            labels = labels_from_json(row["labels"])
            states[(row["rule"], labels)] = AlertState(row["rule"], labels, row["state"], row["active_since"],
                                                       row["last_true"], row["value"] or 0.0, row["fired_at"])
        return states

    async def run_round(self) -> None:
        """The Runtime round hook."""
        transitions = self.evaluate(self.clock())
        for listener in self.listeners:
            result = listener(transitions)
            if asyncio.iscoroutine(result):
                await result

    def evaluate(self, now: float) -> list[Transition]:
        """Evaluate every rule now; persist changed states and hand transitions to the sinks in one
        transaction, then log one line per transition. Returns the transitions."""
        new, transitions = evaluate_all(self.rules, self.states, self.store, now, self.complete())
        changed = [key for key in new.keys() | self.states.keys() if self._persisted_differs(key, new)]
        if changed or transitions:
            with self.state.tx() as db:
                for key in changed:
                    self._persist(db, key, new.get(key))
                for sink in self.sinks:
                    sink(db, transitions, now)
        self.states = new
        for t in transitions:
            (log.warning if t.kind == "firing" else log.info)(describe(t))
        self._export()
        return transitions

    def _persisted_differs(self, key: Key, new: dict[Key, AlertState]) -> bool:
        a, b = self.states.get(key), new.get(key)
        if a is None or b is None:
            return a is not b
        # last_true only matters after a restart when keep_firing_for holds the alert.
        return (a.state, a.active_since, a.fired_at) != (b.state, b.active_since, b.fired_at) or (
            a.last_true != b.last_true and self.by_name[key[0]].keep_firing_for > 0)

    @staticmethod
    def _persist(db: sqlite3.Connection, key: Key, s: AlertState | None) -> None:
        if s is None:
            db.execute("DELETE FROM alerts WHERE rule = ? AND labels = ?", (key[0], labels_json(key[1])))
            return
        db.execute("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (s.rule, labels_json(s.labels), s.state, s.active_since, s.fired_at, s.last_true, s.value))

    def firing(self) -> list[AlertState]:
        return [s for s in self.states.values() if s.state == "firing"]

    def _export(self) -> None:
        counts = dict.fromkeys(SEVERITIES, 0)
        for s in self.firing():
            counts[self.by_name[s.rule].severity_for(dict(s.labels))] += 1
        self.store.replace(("agent", "rules"),
                           [sample("caretaker_alerts_firing", n, severity=sev) for sev, n in counts.items()])
