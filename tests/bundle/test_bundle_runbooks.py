"""Runbooks: one per alert with every section, the seed workflows, and links that resolve."""

from __future__ import annotations

import re

import pytest

from agent.actions import ACTIONS
from agent.dashboards import DASHBOARDS as BUILT
from agent.rules.model import RUNBOOK_BASE, default_rules
from bundle_sources import RUNBOOKS

ALERT_SECTIONS = ["Meaning", "Impact", "Diagnosis", "Mitigation", "Escalation"]
WORKFLOW_SECTIONS = ["When", "Steps", "Verify", "If it goes wrong"]
WORKFLOWS = ["post-update", "post-upgrade", "data-corruption", "api-key-compromised", "large-library-tuning"]
# Not a default rule (yet): the aggregate alert of DESIGN.md §7 that Caretaker's inhibition raises.
EXTRA_ALERTS = ["InternetUnreachable"]
ALERTS = [r.name for r in default_rules()] + EXTRA_ALERTS
DASHBOARD_TITLES = {title for title, _ in BUILT.values()}


def parse(path) -> tuple[dict[str, str], dict[str, str]]:
    """(front matter, {section title: body}) of a runbook; raises AssertionError on a malformed page."""
    text = path.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, f"{path.name}: no front matter"
    front = dict(line.split(": ", 1) for line in match.group(1).splitlines())
    parts = re.split(r"^## (.+)$", text[match.end():], flags=re.M)
    return front, {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts), 2)}


def check_page(path, title_prefix: str, sections: list[str]) -> dict[str, str]:
    assert path.is_file(), f"missing runbook {path.relative_to(RUNBOOKS.parent)}"
    front, body = parse(path)
    assert front.get("title", "").startswith(title_prefix), f"{path.name}: title {front.get('title')!r}"
    assert list(body) == sections, f"{path.name}: sections {list(body)}"
    for name, text in body.items():
        assert len(text) > 80, f"{path.name}: section {name} is nearly empty"
    assert not re.search(r"\b(TODO|TBD|FIXME|XXX)\b", path.read_text()), f"{path.name}: unfinished"
    return body


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_has_a_complete_runbook(alert):
    body = check_page(RUNBOOKS / f"{alert.lower()}.md", alert, ALERT_SECTIONS)
    assert "```" in body["Diagnosis"] or "`caretaker " in body["Diagnosis"], f"{alert}: no command to run"
    assert "**Caretaker / " in body["Diagnosis"], f"{alert}: no dashboard to open"
    assert "When not to" in body["Mitigation"], f"{alert}: Mitigation does not say when not to act"


@pytest.mark.parametrize("rule", [r for r in default_rules() if r.remediation], ids=lambda r: r.name)
def test_runbooks_name_the_default_remediation(rule):
    _, body = parse(RUNBOOKS / f"{rule.name.lower()}.md")
    assert f"caretaker action run {rule.remediation.action}" in body["Mitigation"], rule.name


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_every_seed_workflow_has_a_runbook(workflow):
    check_page(RUNBOOKS / f"{workflow}.md", "", WORKFLOW_SECTIONS)


def test_every_runbook_url_maps_to_a_file():
    for rule in default_rules():
        assert rule.runbook_url.startswith(RUNBOOK_BASE + "/"), rule.name
        assert (RUNBOOKS / rule.runbook_url.removeprefix(RUNBOOK_BASE + "/")).is_file(), rule.runbook_url


def test_links_and_dashboards_named_in_runbooks_exist():
    for page in RUNBOOKS.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (page.parent / target).is_file(), f"{page.name}: broken link {target}"
        for title in re.findall(r"\*\*(Caretaker / [^*]+)\*\*", text):
            title = " ".join(title.split())  # a title may wrap across lines
            assert title in DASHBOARD_TITLES, f"{page.name}: no dashboard {title!r}"


def test_no_orphan_runbooks():
    expected = {f"{a.lower()}.md" for a in ALERTS} | {f"{w}.md" for w in WORKFLOWS} | {"README.md"}
    assert {p.name for p in RUNBOOKS.glob("*.md")} == expected


def action_commands() -> list[tuple[str, str, str]]:
    """(page, action, arguments) of every `caretaker action run …` in the runbooks (text re-flowed, so a
    command wrapped across lines counts; the arguments end at a backtick or the next command)."""
    found = []
    for page in RUNBOOKS.glob("*.md"):
        text = " ".join(page.read_text(encoding="utf-8").split())
        for m in re.finditer(r"caretaker action run (\w+)([^`]*?)(?=`|caretaker |$)", text):
            found.append((page.name, m.group(1), m.group(2)))
    return found


def test_action_commands_in_runbooks_are_real():
    commands = action_commands()
    assert {action for _, action, _ in commands} >= {r.remediation.action for r in default_rules() if r.remediation}
    for page, name, args in commands:
        assert name in ACTIONS, f"{page}: unknown action {name}"
        for key in re.findall(r"--param '?(\w+)=", args):
            assert key in ACTIONS[name].Params.model_fields, f"{page}: {name} has no param {key}"
        if ACTIONS[name].destructive and "--dry-run" not in args:
            assert "--yes" in args, f"{page}: destructive {name} without --dry-run or --yes: {args!r}"
