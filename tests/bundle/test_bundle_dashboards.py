"""The Grafana dashboards (agent/dashboards.py → dashboards/*.json) and their provisioning folder."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from agent.cli import app
from agent.dashboards import DASHBOARDS as BUILT, render
from agent.metrics import METRICS
from agent.rules.model import Clause, Rule, default_rules
from bundle_sources import DASHBOARDS, REPO, dashboard_queries, dashboards, metric_names, panel_exprs, panels

# The colour convention of the dashboards (the spec, so typed here on purpose).
SEVERITY_COLOR = {"critical": "red", "warning": "orange", "info": "blue"}


def test_committed_dashboards_rebuild_byte_identically():
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == sorted(f"{stem}.json" for stem in BUILT)
    for stem in BUILT:
        assert (DASHBOARDS / f"{stem}.json").read_text(encoding="utf-8") == render(stem), \
            f"dashboards/{stem}.json is stale: run `caretaker dashboards build`"


def test_cli_and_build_script_write_the_same_bytes(tmp_path):
    result = CliRunner().invoke(app, ["dashboards", "build", "--output", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    script = subprocess.run([sys.executable, str(DASHBOARDS / "build.py"), str(tmp_path / "script")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    for stem in BUILT:
        committed = (DASHBOARDS / f"{stem}.json").read_bytes()
        assert (tmp_path / "cli" / f"{stem}.json").read_bytes() == committed
        assert (tmp_path / "script" / f"{stem}.json").read_bytes() == committed


def test_the_agent_does_not_load_the_grafana_sdk_at_run_time():
    code = "import sys, agent.cli, agent.runtime; print('grafana_foundation_sdk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


def test_six_dashboards_with_data_source_and_instance_variables():
    boards = dashboards()
    titles = {b["title"] for b in boards.values()}
    assert titles == {"Caretaker / Overview", "Caretaker / Database", "Caretaker / Jobs & queues",
                      "Caretaker / Services", "Caretaker / System", "Caretaker / Alerts & actions"}
    for stem, board in boards.items():
        assert board["uid"] == f"caretaker-{stem}" and "caretaker" in board["tags"]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        assert variables["instance"]["type"] == "query" and variables["instance"]["multi"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and ids == sorted(ids)


def test_every_query_follows_the_variables():
    for board in dashboards().values():
        for panel in panels(board):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel_exprs(panel), f"{panel['title']}: no query"
            for target in panel["targets"]:
                assert target["refId"] and target["datasource"]["uid"] == "${datasource}"
                for selector in re.finditer(r"\bcaretaker_[a-z0-9_]+({[^}]*})?", target["expr"]):
                    assert 'instance=~"$instance"' in (selector.group(1) or ""), \
                        f"{panel['title']}: {selector.group(0)} ignores $instance"


def test_every_panel_sets_a_unit_and_explicit_thresholds():
    for board in dashboards().values():
        for panel in panels(board):
            defaults = panel["fieldConfig"]["defaults"]
            assert defaults.get("unit"), f"{board['title']} / {panel['title']}: no unit"
            thresholds = defaults["thresholds"]
            assert thresholds["mode"] == "absolute" and thresholds["steps"], panel["title"]
            assert thresholds["steps"][0]["value"] is None and thresholds["steps"][0]["color"]
            values = [s["value"] for s in thresholds["steps"][1:]]
            assert values == sorted(values), f"{panel['title']}: steps out of order"


def grafana_color(panel: dict, value: float) -> str:
    """The colour Grafana gives `value`: an exact value mapping with a colour, else the highest step ≤ value."""
    defaults = panel["fieldConfig"]["defaults"]
    text = str(int(value)) if float(value).is_integer() else repr(float(value))  # JavaScript's String(number)
    for mapping in defaults.get("mappings", []):
        result = mapping["options"].get(text) if mapping["type"] == "value" else None
        if result and result.get("color"):
            return result["color"]
    color = defaults["thresholds"]["steps"][0]["color"]
    for step in defaults["thresholds"]["steps"][1:]:
        if value >= step["value"]:
            color = step["color"]
    return color


def value_kind(expr: str, metric: str) -> str:
    if re.search(rf"time\(\)\s*-\s*{metric}\b", expr):
        return "age"
    if re.search(rf"\b{metric}(\{{[^}}]*\}})?\s*-\s*time\(\)", expr):
        return "remaining"
    return "raw"


def clauses(rule: Rule) -> list[tuple[Clause, float | None]]:
    """(clause, its clear threshold) for the main condition and each `also` clause."""
    return [(rule.main, rule.clear)] + [(c, None) for c in rule.also]


def rule_panels(clause: Clause) -> list[tuple[str, dict]]:
    return [(f"{b['title']} / {p['title']}", p) for b in dashboards().values() for p in panels(b)
            if any(clause.metric in metric_names(e) and value_kind(e, clause.metric) == clause.value
                   for e in panel_exprs(p))]


@pytest.mark.parametrize("rule", default_rules(), ids=lambda r: r.name)
def test_panels_colour_exactly_what_the_rule_fires_on(rule):
    bad = {SEVERITY_COLOR[rule.severity]} | {SEVERITY_COLOR[s] for by in rule.severity_by.values()
                                              for s in by.values()}
    for clause, clear in clauses(rule):
        shown = rule_panels(clause)
        assert shown, f"{rule.name}: no panel shows {clause.value} {clause.metric}"
        t, delta = clause.threshold, 1e-6 * max(1.0, abs(clause.threshold))
        for where, panel in shown:
            color = lambda v: grafana_color(panel, v)  # noqa: E731
            steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
            assert t in steps, f"{where}: no step at the threshold {t}"
            if clause.op == ">":
                assert color(t + delta) in bad and color(t) not in bad, where
            elif clause.op == "<":
                assert color(t - delta) in bad and color(t) not in bad, where
            else:
                assert clause.op == "==", f"{rule.name}: op {clause.op} has no check here"
                assert color(t) in bad and color(t - 1) not in bad and color(t + 1) not in bad, where
            if clear is not None:
                assert clear in steps and color(clear + delta) not in bad, where
            allowed = {t, t + 1} if clause.op == "==" else {t} | ({clear} if clear is not None else set())
            assert set(steps) <= allowed, f"{where}: thresholds {steps} are not the rule's {sorted(allowed)}"


def test_rule_panels_link_to_their_runbook():
    for rule in default_rules():
        links = {link["url"] for _, panel in rule_panels(rule.main) for link in panel.get("links", [])}
        assert links == {rule.runbook_url}, rule.name


def test_every_metric_a_dashboard_or_rule_uses_is_exported():
    from bundle_sources import used_metrics

    unknown = {name: sorted(where) for name, where in used_metrics().items() if name not in METRICS}
    assert not unknown, f"not in agent/metrics.py: {unknown}"


def test_every_exported_series_is_on_a_dashboard():
    """A new series in agent/metrics.py needs a panel (or a variable query) that shows it."""
    shown = {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    missing = sorted(set(METRICS) - shown)
    assert not missing, f"no dashboard query uses {missing}: add a panel in agent/dashboards.py"


def test_provisioning_points_at_the_folder_compose_mounts():
    provisioning = DASHBOARDS / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "caretaker.yml").read_text())["providers"][0]
    grafana = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {src: dst.removesuffix(":ro") for src, _, dst in (v.partition(":") for v in grafana["volumes"])}
    assert mounts["./dashboards"] == provider["options"]["path"]
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"
