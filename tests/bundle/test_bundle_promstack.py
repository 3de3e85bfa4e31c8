"""The exported rules in a real Prometheus, delivering through a real Alertmanager to a webhook with the
admin token (tests/promstack.py). The scrape target is a local stand-in serving fixed series, so this
checks the rule file, the helper and the Alertmanager wiring; the full loop with the agent is the
integration test of issue 6."""

from __future__ import annotations

import threading

import pytest

from bundle_sources import RULES_FILE
from fakes.base import FakeServer, Reply, Request, json_reply, text_reply
from promstack import Alertmanager, Prometheus, skip_unless_installed
from receivers import wait_until

TOKEN = "0123456789abcdef-test-token"
QUEUE = 'caretaker_queue_oldest_age_seconds{app="aphrodite",queue="batch_jobs"}'


class ScrapeAndHook(FakeServer):
    """Serves `exposition` at /metrics and records every Alertmanager webhook call with its bearer token."""

    name = "scrape-and-hook"

    def __init__(self) -> None:
        super().__init__()
        self.exposition = ""
        self.hooks: list[tuple[str | None, dict]] = []
        self._hooks_lock = threading.Lock()

    def routes(self) -> list:
        return [("GET", r"/metrics", lambda req: text_reply(200, self.exposition)),
                ("POST", r"/api/v1/alertmanager", self._hook)]

    def _hook(self, req: Request) -> Reply:
        with self._hooks_lock:
            self.hooks.append((req.bearer(), req.json()))
        return json_reply(200, {"ok": True})

    def received(self, alertname: str, status: str) -> list[tuple[str | None, dict]]:
        with self._hooks_lock:
            return [(token, body) for token, body in self.hooks if body["status"] == status
                    and any(a["labels"]["alertname"] == alertname for a in body["alerts"])]


@pytest.fixture
def stack(tmp_path):
    skip_unless_installed()
    token_file = tmp_path / "admin_token"
    token_file.write_text(TOKEN)
    with ScrapeAndHook() as target, \
            Alertmanager(tmp_path / "am", webhook=f"{target.url}/api/v1/alertmanager", token_file=token_file) as am, \
            Prometheus(tmp_path / "prom", targets=[f"127.0.0.1:{target.port}"], rule_files=[RULES_FILE],
                       alertmanager=am.address) as prom:
        yield target, am, prom


def test_exported_rule_fires_in_prometheus_reaches_the_webhook_and_resolves(stack):
    target, am, prom = stack
    target.exposition = f"{QUEUE} 900\n"
    wait_until(prom.targets_up, 30, "the scrape target to be up")

    alert, = prom.wait_for_alert("QueueTimeHigh", "firing", timeout=30)
    assert alert["labels"] == {"alertname": "QueueTimeHigh", "severity": "warning", "app": "aphrodite",
                               "queue": "batch_jobs", "instance": f"127.0.0.1:{target.port}",
                               "job": "caretaker"}
    assert alert["annotations"]["summary"] == "Queue batch_jobs of aphrodite has waited 15m 0s"
    assert alert["annotations"]["runbook_url"].endswith("/runbooks/queuetimehigh.md")
    am.wait_for_alert("QueueTimeHigh")
    (token, body), *_ = wait_until(lambda: target.received("QueueTimeHigh", "firing"), 30, "the firing webhook")
    assert token == TOKEN
    assert body["alerts"][0]["annotations"]["summary"] == alert["annotations"]["summary"]

    target.exposition = f"{QUEUE} 0\n"
    prom.wait_for_no_alert("QueueTimeHigh", timeout=30)
    (token, _), *_ = wait_until(lambda: target.received("QueueTimeHigh", "resolved"), 30, "the resolved webhook")
    assert token == TOKEN
    assert prom.alerts() == []                 # nothing else in the rule file fires on these series
