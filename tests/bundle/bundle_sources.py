"""The committed observability bundle as data, for the consistency tests (and the live-scrape test):
the Prometheus rule file, the dashboards' panels and PromQL, the runbooks.

    used_metrics()  → {"caretaker_disk_usage_ratio": {"alerts/caretaker.rules.yml: DiskSpaceHigh", …}, …}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"
RULES_FILE = ALERTS / "caretaker.rules.yml"
TEST_FILES = [ALERTS / "caretaker.test.yml", ALERTS / "caretaker.long.test.yml"]
DASHBOARDS = REPO / "dashboards"
RUNBOOKS = REPO / "runbooks"
METRIC_NAME = re.compile(r"\bcaretaker_[a-z0-9_]+\b")


def prometheus_rules() -> list[dict]:
    """Every rule of alerts/caretaker.rules.yml, all groups."""
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboards() -> dict[str, dict]:
    """File stem → the committed dashboard JSON."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict) -> Iterator[dict]:
    """Every panel that shows data (rows left out), also those nested in collapsed rows."""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_exprs(panel: dict) -> list[str]:
    return [t["expr"] for t in panel.get("targets", []) if t.get("expr")]


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of every dashboard."""
    for stem, board in dashboards().items():
        for panel in panels(board):
            for expr in panel_exprs(panel):
                yield f"dashboards/{stem}.json: {panel['title']}", expr
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var["query"] if isinstance(var["query"], str) else var["query"].get("query", "")
                yield f"dashboards/{stem}.json: ${var['name']}", query


def rule_queries() -> Iterator[tuple[str, str]]:
    for rule in prometheus_rules():
        yield f"alerts/caretaker.rules.yml: {rule['alert']}", rule["expr"]


def metric_names(promql: str) -> set[str]:
    """The Caretaker series a PromQL expression selects (names matching ``caretaker_[a-z0-9_]+``)."""
    return set(METRIC_NAME.findall(promql))


def used_metrics() -> dict[str, set[str]]:
    """Metric name → where it is used, over the rule file and every dashboard query."""
    used: dict[str, set[str]] = {}
    for where, expr in [*rule_queries(), *dashboard_queries()]:
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    return used
