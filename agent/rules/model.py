"""The rule model and the evaluation of a rule's condition against the store.

A condition is structured, not free PromQL, so that the built-in engine can evaluate it and
`agent.rules.promql` can export the identical condition to Prometheus:

    value(metric) OP threshold  [and value(metric2) OP2 threshold2 …, matched on identical labels]

where value() is the raw sample, or its `age` (now − v, for *_timestamp_seconds) or `remaining`
(v − now). `clear` is the hysteresis threshold: a firing alert stays firing while value OP clear holds.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from agent.config import Duration, RuleOverride
from agent.metrics import METRICS
from agent.samples import Labels, Sample

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
       "!=": operator.ne}
RUNBOOK_BASE = "https://github.com/caretaker-dev/caretaker/blob/main/runbooks"


class Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float
    value: Literal["raw", "age", "remaining"] = "raw"

    def holds(self, v: float) -> bool:
        return OPS[self.op](v, self.threshold)


class Remediation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: str
    auto: bool = False


class Rule(BaseModel):
    """One alert rule. `severity_by` picks the severity from a label (ServiceDown: critical for the
    media server); `unit` tells how to print the value (ratio, seconds, bytes, count)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str
    metric: str
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float
    value: Literal["raw", "age", "remaining"] = "raw"
    also: list[Clause] = []
    clear: float | None = None
    for_: Duration = Field(0.0, alias="for")
    keep_firing_for: Duration = 0.0
    severity: Literal["critical", "warning", "info"]
    severity_by: dict[str, dict[str, Literal["critical", "warning", "info"]]] = {}
    unit: Literal["ratio", "seconds", "bytes", "count", "timestamp"] = "count"
    summary: str
    description: str
    remediation: Remediation | None = None

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_BASE}/{self.name.lower()}.md"

    @property
    def main(self) -> Clause:
        return Clause(metric=self.metric, op=self.op, threshold=self.threshold, value=self.value)

    def severity_for(self, labels: dict[str, str]) -> str:
        for label, by_value in self.severity_by.items():
            if labels.get(label) in by_value:
                return by_value[labels[label]]
        return self.severity

    def with_override(self, o: RuleOverride) -> "Rule":
        changes = {k: v for k, v in {"threshold": o.threshold, "clear": o.clear, "for_": o.for_,
                                     "keep_firing_for": o.keep_firing_for, "severity": o.severity}.items()
                   if v is not None}
        return self.model_copy(update=changes)


@dataclass(frozen=True)
class Match:
    """One series' evaluation: `fires` (the condition holds), `holds_clear` (still beyond the clear
    threshold, for hysteresis), `value` (the rule's value, after age/remaining)."""

    labels: Labels
    value: float
    fires: bool
    holds_clear: bool


def _value(clause_value: str, v: float, now: float) -> float:
    return {"raw": v, "age": now - v, "remaining": v - now}[clause_value]


def evaluate(rule: Rule, series: dict[str, list[Sample]], now: float) -> list[Match]:
    """Evaluate `rule` on every series of its metric. `series` maps metric name → samples
    (e.g. built with ``{m: store.series(m) for m in rule_metrics}``). `also` clauses match on
    identical label sets, like PromQL's `and`; a series without its partner does not fire."""
    partners = [{s.labels: s.value for s in series.get(c.metric, [])} for c in rule.also]
    main = rule.main
    clear_clause = main if rule.clear is None else Clause(
        metric=rule.metric, op=rule.op, threshold=rule.clear, value=rule.value)
    out = []
    for s in series.get(rule.metric, []):
        v = _value(rule.value, s.value, now)
        others = []
        for clause, by_labels in zip(rule.also, partners):
            other = by_labels.get(s.labels)
            others.append(other is not None and clause.holds(_value(clause.value, other, now)))
        fires = main.holds(v) and all(others)
        holds_clear = clear_clause.holds(v) and all(others)
        out.append(Match(s.labels, v, fires, holds_clear))
    return out


def rule_metrics(rule: Rule) -> list[str]:
    return [rule.metric, *(c.metric for c in rule.also)]


def default_rules() -> list[Rule]:
    """The default rules of DESIGN.md §7, from ``agent/rules/defaults.yaml`` (parsed once per process)."""
    return list(_default_rules())


@functools.cache
def _default_rules() -> tuple[Rule, ...]:
    text = resources.files("agent.rules").joinpath("defaults.yaml").read_text(encoding="utf-8")
    rules = tuple(Rule.model_validate(item) for item in yaml.safe_load(text))
    for rule in rules:
        for metric in rule_metrics(rule):
            if metric not in METRICS:
                raise ValueError(f"rule {rule.name}: metric {metric} is not in agent/metrics.py")
    return rules


def load_rules(overrides: dict[str, RuleOverride] | None = None) -> list[Rule]:
    """Default rules with the config's overrides applied by name; disabled rules are left out.

    Raises KeyError naming an override whose rule does not exist (the config loader reports it as
    ``rules.<Name>: unknown rule``)."""
    rules = {r.name: r for r in default_rules()}
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(rules))
    if unknown:
        raise KeyError(", ".join(unknown))
    return [r.with_override(overrides[r.name]) if r.name in overrides else r
            for r in rules.values() if overrides.get(r.name, RuleOverride()).enabled]
