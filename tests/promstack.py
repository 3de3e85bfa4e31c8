"""Real Prometheus and Alertmanager from Debian's packages (LIBRARIES.md C), on free loopback ports with
temporary storage, for integration tests. Each is a subprocess stopped by its own PID.

    with Alertmanager(tmp_path / "am", webhook="http://127.0.0.1:9464/api/v1/alertmanager",
                      token_file=token) as am, \\
         Prometheus(tmp_path / "prom", targets=["127.0.0.1:9464"], rule_files=[RULES],
                    alertmanager=am.address) as prom:
        prom.wait_for_alert("PostgresDeadTuplesHigh", state="firing", timeout=60)
        am.wait_for_alert("PostgresDeadTuplesHigh", timeout=30)

Prometheus evaluates and scrapes every `interval` (default 1s) and re-sends firing alerts every second
(``--rules.alert.resend-delay``); Alertmanager's route has no group wait, so a test sees an alert at the
webhook about a second after it fires. Every wait is bounded and raises AssertionError with the server's
log tail. `skip_unless_installed()` skips a test when a binary is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pgcluster import free_port
from receivers import wait_until

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"


def skip_unless_installed(*binaries: str) -> None:
    missing = [b for b in binaries or (PROMETHEUS, ALERTMANAGER) if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install prometheus prometheus-alertmanager)")


class Server:
    """One server process: `start()` writes its config, runs it, waits for ``/-/ready``; `stop()` ends it."""

    binary = ""

    def __init__(self, workdir: Path) -> None:
        self.dir = Path(workdir)
        self.port = free_port()
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def config(self) -> dict:
        raise NotImplementedError

    def args(self, config_file: Path) -> list[str]:
        raise NotImplementedError

    def start(self, ready_timeout: float = 30.0) -> "Server":
        self.dir.mkdir(parents=True, exist_ok=True)
        config_file = self.dir / "config.yml"
        config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([shutil.which(self.binary) or self.binary, *self.args(config_file)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(self._ready, ready_timeout, f"{self.binary} ready on {self.address}\n{self.log_tail()}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.binary} exited with {self.proc.returncode}\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to our PID, SIGKILL after `timeout`; the storage folder stays for the test to inspect."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}{path}", params=params, timeout=5.0)
        r.raise_for_status()
        return r.json()

    def __enter__(self) -> "Server":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Prometheus(Server):
    """Scrapes `targets` (job ``caretaker``) and evaluates `rule_files` every `interval`."""

    binary = PROMETHEUS

    def __init__(self, workdir: Path, targets: list[str], rule_files: list[Path] = (),
                 alertmanager: str | None = None, interval: str = "1s", metrics_path: str = "/metrics") -> None:
        super().__init__(workdir)
        self.targets, self.rule_files, self.alertmanager = targets, [str(p) for p in rule_files], alertmanager
        self.interval, self.metrics_path = interval, metrics_path

    def config(self) -> dict:
        cfg: dict = {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval,
                       "evaluation_interval": self.interval},
            "rule_files": self.rule_files,
            "scrape_configs": [{"job_name": "caretaker", "metrics_path": self.metrics_path,
                                "static_configs": [{"targets": self.targets}]}],
        }
        if self.alertmanager:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]}
        return cfg

    def args(self, config_file: Path) -> list[str]:
        return [f"--config.file={config_file}", f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}", "--rules.alert.resend-delay=1s",
                "--log.level=warn"]

    def query(self, expr: str) -> list[dict]:
        """Instant query → the API's ``data.result`` list of ``{metric, value: [ts, "v"]}``."""
        return self.get("/api/v1/query", query=expr)["data"]["result"]

    def alerts(self, name: str | None = None, state: str | None = None) -> list[dict]:
        """Active alerts (``/api/v1/alerts``), each ``{labels, annotations, state, activeAt, value}``."""
        return [a for a in self.get("/api/v1/alerts")["data"]["alerts"]
                if (name is None or a["labels"]["alertname"] == name) and (state is None or a["state"] == state)]

    def targets_up(self) -> bool:
        active = self.get("/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def wait_for_alert(self, name: str, state: str = "firing", timeout: float = 60.0) -> list[dict]:
        return wait_until(lambda: self.alerts(name, state), timeout, f"Prometheus alert {name} {state}")

    def wait_for_no_alert(self, name: str, timeout: float = 60.0) -> None:
        wait_until(lambda: not self.alerts(name), timeout, f"Prometheus alert {name} to resolve")


class Alertmanager(Server):
    """Routes every alert to `webhook` at once (no group wait), with a bearer token read from `token_file`."""

    binary = ALERTMANAGER

    def __init__(self, workdir: Path, webhook: str, token_file: Path | None = None,
                 repeat_interval: str = "1h") -> None:
        super().__init__(workdir)
        self.webhook, self.token_file, self.repeat_interval = webhook, token_file, repeat_interval

    def config(self) -> dict:
        hook: dict = {"url": self.webhook, "send_resolved": True}
        if self.token_file is not None:
            hook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(self.token_file)}}
        return {
            "route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1s",
                      "repeat_interval": self.repeat_interval},
            "receivers": [{"name": "hook", "webhook_configs": [hook]}],
        }

    def args(self, config_file: Path) -> list[str]:
        # An empty cluster address turns off HA gossip, which would otherwise listen on 0.0.0.0:9094.
        return [f"--config.file={config_file}", f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}", "--cluster.listen-address=", "--log.level=warn"]

    def alerts(self, name: str | None = None) -> list[dict]:
        """Alerts Alertmanager holds (``/api/v2/alerts``), each ``{labels, annotations, status, …}``."""
        return [a for a in self.get("/api/v2/alerts") if name is None or a["labels"]["alertname"] == name]

    def wait_for_alert(self, name: str, timeout: float = 30.0) -> list[dict]:
        return wait_until(lambda: self.alerts(name), timeout, f"Alertmanager alert {name}")
