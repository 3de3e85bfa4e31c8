"""`caretaker check`: every probe once, then every rule's condition now (ignoring `for`), as a report."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import Config
from agent.rules.format import format_value
from agent.rules.model import evaluate, load_rules, rule_metrics
from agent.store import ProbeStatus, Store


@dataclass(frozen=True)
class Fault:
    alert: str
    labels: str
    value: str
    threshold: str


@dataclass
class CheckReport:
    statuses: list[ProbeStatus]
    faults: list[Fault]

    @property
    def healthy(self) -> bool:
        return all(s.ok for s in self.statuses) and not self.faults


def current_faults(config: Config, store: Store, now: float) -> list[Fault]:
    """Conditions that hold now. ProbeFailing is left out: the probe table already shows failures."""
    faults = []
    for rule in load_rules(config.rules):
        if rule.name == "ProbeFailing":
            continue
        series = {m: store.series(m) for m in rule_metrics(rule)}
        for m in evaluate(rule, series, now):
            if m.fires:
                labels = ", ".join(f"{k}={v}" for k, v in m.labels)
                faults.append(Fault(rule.name, labels, format_value(rule.unit, m.value),
                                    f"{rule.op} {format_value(rule.unit, rule.threshold)}"))
    return faults


async def run_check(config: Config) -> CheckReport:
    from agent.runtime import Runtime

    rt = Runtime(config)
    try:
        statuses = await rt.run_all_once()
        return CheckReport(statuses, current_faults(config, rt.store, rt.clock()))
    finally:
        await rt.close()
