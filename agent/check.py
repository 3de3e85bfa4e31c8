"""`caretaker check`: every probe once, then every rule's condition now (ignoring `for`), as a report."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import Config
from agent.probes.integrity import check_now, findings
from agent.rules.engine import default_evaluator
from agent.rules.format import format_value
from agent.rules.model import load_rules
from agent.samples import Labels
from agent.store import ProbeStatus, Store


@dataclass(frozen=True)
class Fault:
    alert: str
    value: str  # in the rule's unit: "20m20s", "12.5%"
    threshold: str  # "> 10m"
    label_pairs: Labels = ()  # the series' labels, as data (`caretaker check --json`)
    raw_value: float = 0.0  # the rule's value in base units (seconds, ratio 0..1, count)

    @property
    def labels(self) -> str:
        """The labels as the table shows them: "app=aperture, job_name=sync-series"."""
        return ", ".join(f"{k}={v}" for k, v in self.label_pairs)


@dataclass
class CheckReport:
    statuses: list[ProbeStatus]
    faults: list[Fault]
    findings: list[tuple[str, str, str]]  # (database, relation, message) of the last amcheck runs

    @property
    def healthy(self) -> bool:
        return all(s.ok for s in self.statuses) and not self.faults and not self.findings

    def as_dict(self) -> dict:
        """The report as `caretaker check --json` prints it: `healthy`, `probes` [{probe, target, ok,
        summary, reason, duration_seconds}], `faults` [{alert, labels {name: value}, value (base units),
        value_text, threshold}], `integrity_findings` [{database, relation, message}]."""
        return {
            "healthy": self.healthy,
            "probes": [{"probe": s.probe, "target": s.target, "ok": s.ok, "summary": s.summary, "reason": s.reason,
                        "duration_seconds": s.duration_seconds} for s in self.statuses],
            "faults": [{"alert": f.alert, "labels": dict(f.label_pairs), "value": f.raw_value, "value_text": f.value,
                        "threshold": f.threshold} for f in self.faults],
            "integrity_findings": [{"database": d, "relation": r, "message": m} for d, r, m in self.findings],
        }


def current_faults(config: Config, store: Store, now: float) -> list[Fault]:
    """Conditions that hold now. ProbeFailing is left out: the probe table already shows failures."""
    faults = []
    for rule in load_rules(config.rules):
        if rule.name == "ProbeFailing":
            continue
        for m in default_evaluator(rule)(store, now):
            if m.fires:
                faults.append(Fault(rule.name, format_value(rule.unit, m.value),
                                    f"{rule.op} {format_value(rule.unit, rule.threshold)}", m.labels, m.value))
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
