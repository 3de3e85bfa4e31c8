"""The Prometheus rule export (agent/rules/promql.py, `caretaker rules export`) and its promtool tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agent.cli import app
from agent.rules.model import RUNBOOK_BASE, Rule, default_rules
from agent.rules.promql import UnsupportedRule, alerting_rule, export
from bundle_sources import ALERTS, RULES_FILE, TEST_FILES, prometheus_rules

runner = CliRunner()
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (apt-get install prometheus)")


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_committed_rules_file_is_a_fresh_export():
    assert RULES_FILE.read_text(encoding="utf-8") == export(default_rules()), \
        "alerts/caretaker.rules.yml is stale: run `caretaker rules export -o alerts/caretaker.rules.yml`"


def test_every_rule_carries_for_keep_firing_for_severity_and_annotations():
    names = [r.name for r in default_rules()]
    exported = prometheus_rules()
    assert [r["alert"] for r in exported] == names
    for rule in exported:
        assert set(rule) == {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"(\d+[dhms])+", rule["for"]) and re.fullmatch(r"(\d+[dhms])+", rule["keep_firing_for"])
        assert rule["labels"]["severity"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}/{rule['alert'].lower()}.md"


def test_conditions_translate_value_kinds_also_clauses_and_hysteresis():
    rules = {r["alert"]: r for r in prometheus_rules()}
    assert rules["BackupStale"]["expr"] == "time() - caretaker_backup_last_success_timestamp_seconds > 93600"
    assert rules["TLSCertificateExpiringSoon"]["expr"] == \
        "caretaker_tls_certificate_expiry_timestamp_seconds - time() < 1209600"
    assert rules["PostgresDeadTuplesHigh"]["expr"] == \
        "(caretaker_postgres_dead_tuple_ratio > 0.2) and (caretaker_postgres_dead_tuples > 10000)"
    assert rules["DiskSpaceHigh"]["expr"] == (
        "(caretaker_disk_usage_ratio > 0.8) or (caretaker_disk_usage_ratio > 0.75 and ignoring(alertname, "
        'alertstate, severity) ALERTS{alertname="DiskSpaceHigh", alertstate="firing"})')
    assert rules["ServiceDown"]["labels"]["severity"] == \
        '{{ if eq $labels.kind "jellyfin" "emby" }}critical{{ else }}warning{{ end }}'
    assert rules["QueueTimeHigh"]["for"] == "0s" and rules["LegacyEmbeddingsPresent"]["for"] == "7d"
    assert rules["DiskSpaceHigh"]["annotations"]["summary"] == \
        "Filesystem {{ $labels.mountpoint }} is {{ $value | humanizePercentage }} full"
    assert "(threshold {{ 600 | humanizeDuration }})" in rules["QueueTimeHigh"]["annotations"]["description"]
    assert "(threshold 10)." in rules["FailedJobsHigh"]["annotations"]["description"]


def test_cli_prints_writes_and_applies_config_overrides(tmp_path):
    out = runner.invoke(app, ["rules", "export"])
    assert out.exit_code == 0 and out.stdout == export(default_rules())

    target = tmp_path / "rules.yml"
    assert runner.invoke(app, ["rules", "export", "--output", str(target)]).exit_code == 0
    assert target.read_text() == out.stdout

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"rules": {"DiskSpaceHigh": {"threshold": 0.9, "for": "15m"},
                                                "ProbeFailing": {"enabled": False}}}))
    custom = runner.invoke(app, ["rules", "export", "-c", str(config)])
    assert custom.exit_code == 0
    rules = {r["alert"]: r for g in yaml.safe_load(custom.stdout)["groups"] for r in g["rules"]}
    assert rules["DiskSpaceHigh"]["expr"].startswith("(caretaker_disk_usage_ratio > 0.9) or")
    assert rules["DiskSpaceHigh"]["for"] == "15m"
    assert "ProbeFailing" not in rules and len(rules) == len(default_rules()) - 1


class AggregateRule(Rule):
    """A rule shape the exporter has never seen (an aggregate over several series)."""

    aggregate: str | None = None


def _rule(**changes) -> Rule:
    return next(r for r in default_rules() if r.name == "ServiceDown").model_copy(update=changes)


@pytest.mark.parametrize("rule, message", [
    (AggregateRule(**_rule().model_dump(by_alias=True), aggregate="all"), "field 'aggregate'"),
    (_rule(value="rate"), "value 'rate'"),
    (_rule(op="=~"), "op '=~'"),
    (_rule(unit="celsius"), "unit 'celsius'"),
    (_rule(summary="{nope} is down"), "label 'nope' is not a label of caretaker_service_up"),
    (_rule(summary="{service:>10} is down"), "format spec"),
    (_rule(description="literal {{braces}}"), "literal brace"),
    (_rule(severity_by={"region": {"eu": "critical"}}), "label 'region'"),
])
def test_unknown_rule_shapes_fail_loudly(rule, message):
    with pytest.raises(UnsupportedRule, match=re.escape(message)):
        alerting_rule(rule)


def test_an_unknown_shape_among_the_defaults_makes_the_cli_exit_1(monkeypatch):
    rules = default_rules()
    monkeypatch.setattr("agent.cli_rules.load_rules", lambda overrides=None: [*rules, _rule(value="rate")])
    result = runner.invoke(app, ["rules", "export"])
    assert result.exit_code == 1 and "ServiceDown" in result.output and "value 'rate'" in result.output


@needs_promtool
def test_promtool_check_rules_accepts_every_rule():
    result = promtool("check", "rules", RULES_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(default_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", *(p.name for p in TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_cover_every_alert_before_at_and_after_firing():
    """Each alert has an empty expectation before its first firing one and another after it."""
    checks: dict[str, list[tuple[int, bool]]] = {}
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group["alert_rule_test"]:
                minutes = int(case["eval_time"].rstrip("m"))
                checks.setdefault(case["alertname"], []).append((minutes, bool(case["exp_alerts"])))
    assert set(checks) == {r.name for r in default_rules()}
    for name, cases in checks.items():
        firing = [t for t, fires in cases if fires]
        assert firing, f"{name}: no firing expectation"
        quiet = [t for t, fires in cases if not fires]
        assert any(t < min(firing) for t in quiet) and any(t > max(firing) for t in quiet), name


@needs_promtool
def test_unit_tests_catch_a_threshold_moved_by_one_step(tmp_path):
    """The hand-written tests are not a copy of the exporter: a rule file with one threshold off fails."""
    rules = [r.model_copy(update={"threshold": 0.79}) if r.name == "DiskSpaceHigh" else r for r in default_rules()]
    (tmp_path / RULES_FILE.name).write_text(export(rules))
    shutil.copy(TEST_FILES[0], tmp_path)
    result = promtool("test", "rules", TEST_FILES[0].name, cwd=tmp_path)
    assert result.returncode != 0
    assert "alertname: DiskSpaceHigh, time: 9m" in result.stdout + result.stderr


@needs_promtool
def test_keep_firing_for_from_an_override_holds_the_alert_in_promtool(tmp_path):
    """Prometheus 2.42 (Debian's) honours keep_firing_for: a QueueTimeHigh override of 5m keeps the alert
    firing for five evaluations after the queue drained, then resolves it."""
    rules = [r.model_copy(update={"keep_firing_for": 300.0}) if r.name == "QueueTimeHigh" else r
             for r in default_rules()]
    (tmp_path / "rules.yml").write_text(export(rules))
    labels = {"severity": "warning", "app": "aphrodite", "queue": "batch_jobs"}
    firing = [{"exp_labels": labels, "exp_annotations": {
        "summary": "Queue batch_jobs of aphrodite has waited 11m 0s",
        "description": "The oldest item in queue batch_jobs of aphrodite has waited 11m 0s (threshold 10m 0s); "
                       "workers may be stuck or too few.",
        "runbook_url": f"{RUNBOOK_BASE}/queuetimehigh.md"}}]
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": 'caretaker_queue_oldest_age_seconds{app="aphrodite", queue="batch_jobs"}',
                          "values": "660 0+0x10"}],
        "alert_rule_test": [{"eval_time": "0m", "alertname": "QueueTimeHigh", "exp_alerts": firing},
                            {"eval_time": "5m", "alertname": "QueueTimeHigh", "exp_alerts": firing},
                            {"eval_time": "6m", "alertname": "QueueTimeHigh", "exp_alerts": []}]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
