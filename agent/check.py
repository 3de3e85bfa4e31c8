"""`caretaker check`: every probe once, then every rule's condition now (ignoring `for`), as a report."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import Config
from agent.probes.integrity import check_now, findings
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
    findings: list[tuple[str, str, str]]  # (database, relation, message) of the last amcheck runs

    @property
    def healthy(self) -> bool:
        return all(s.ok for s in self.statuses) and not self.faults and not self.findings


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


async def run_check(config: Config, integrity: bool = False) -> CheckReport:
    """Run every probe once; with `integrity`, run amcheck on every database first (heavy: it reads
    every index and table), otherwise show the findings of the last scheduled run."""
    from agent.runtime import Runtime

    rt = Runtime(config, alerting=False)
    try:
        if integrity:
            for db in config.databases:
                await check_now(db, rt.state, rt.clock)
        statuses = await rt.run_all_once()
        found = [(db.name, rel, msg) for db in config.databases for rel, msg in findings(rt.state, db.name)]
        return CheckReport(statuses, current_faults(config, rt.store, rt.clock()), found)
    finally:
        await rt.close()
