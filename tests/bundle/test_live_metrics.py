"""Every metric a dashboard query (dashboards/*.json) or a rule (alerts/caretaker.rules.yml) uses appears in
a live scrape of `caretaker run` on the whole fixture stack (tests/stack.py), issue 6 "How it is shown".

Series that only exist after something happened are made to happen first, the way a user would: the
integrity series after an amcheck run (`caretaker check --integrity` on the agent's state file), the
action series and `caretaker_backup_verified` after a `verify_backup` run through the actions API.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentproc import AgentProcess
from bundle_sources import used_metrics
from receivers import wait_until

# Suffixes PromQL adds to a histogram or summary family's name (Prometheus docs "Metric types").
FAMILY_SUFFIX = re.compile(r"_(bucket|sum|count)$")
# Metrics a query may use that cannot appear on the stack, with the reason. Keep it empty unless a series
# truly needs something the stack cannot have; then say why here.
CANNOT_APPEAR: dict[str, str] = {}


def scraped_names(agent: AgentProcess) -> set[str]:
    """Family and sample names of one scrape (counters: the family without, the samples with `_total`)."""
    text = httpx.get(f"{agent.url}/metrics", timeout=5).text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def missing_from(scraped: set[str]) -> dict[str, list[str]]:
    """Used metric → where it is used, for every used metric absent from `scraped`."""
    return {name: sorted(where) for name, where in used_metrics().items()
            if name not in CANNOT_APPEAR and name not in scraped and FAMILY_SUFFIX.sub("", name) not in scraped}


def run_action(agent: AgentProcess, token: str, action: str, target: str, timeout: float = 60) -> dict:
    """POST /api/v1/actions/{action} and wait for the run to finish; returns its audit record."""
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{agent.url}/api/v1/actions/{action}", json={"target": target}, headers=auth, timeout=10)
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]

    def finished() -> dict | None:
        record = httpx.get(f"{agent.url}/api/v1/actions/runs/{run_id}", headers=auth, timeout=5).json()
        return record if record["outcome"] != "running" else None
    return wait_until(finished, timeout, f"{action} run {run_id} to finish", interval=0.2)


@pytest.fixture(scope="module")
def live_agent(fixture_stack, tmp_path_factory):
    work = tmp_path_factory.mktemp("live")
    config = fixture_stack.write_config(work / "check.yaml", work / "caretaker-data")
    check = subprocess.run([sys.executable, "-m", "agent.cli", "check", "--integrity", "--json", "--config",
                            str(config)], cwd=work, capture_output=True, text=True, timeout=120, env=os.environ)
    assert '"postgres_integrity"' in check.stdout, check.stdout + check.stderr
    with AgentProcess(work, fixture_stack.config) as agent:
        yield agent


def test_every_metric_used_by_a_dashboard_or_rule_is_scraped(fixture_stack, live_agent):
    record = run_action(live_agent, fixture_stack.admin_token, "verify_backup", "aperture")
    assert record["outcome"] == "succeeded" and record["result"]["verified"] is True, record
    missing: dict[str, list[str]] = {}

    def complete() -> bool:  # the action series are published when the run's record is written
        missing.clear()
        missing.update(missing_from(scraped_names(live_agent)))
        return not missing
    with contextlib.suppress(AssertionError):
        wait_until(complete, 15, "every used metric in the scrape", interval=0.5)
    assert missing == {}


def test_the_used_metrics_are_what_the_bundle_uses():
    """The parse finds the metrics of both sources, and no exception is left unexplained or unused."""
    used = used_metrics()
    assert "caretaker_postgres_dead_tuple_ratio" in used and "caretaker_alerts_firing" in used
    assert all(reason for reason in CANNOT_APPEAR.values())
    assert set(CANNOT_APPEAR) <= set(used)
