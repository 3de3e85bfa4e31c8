"""Run `caretaker run --config …` as a real subprocess for end-to-end tests.

    with AgentProcess(tmp_path, {"system": {"interval": "1s"}}) as agent:
        agent.metric("caretaker_postgres_up", database="aperture")   # → 1.0 (or None when absent)
        agent.kill()                                                  # SIGKILL, then agent.start() again

The config dict is written as YAML; `agent.listen` and `agent.state_dir` are filled in (a free loopback
port, a folder under the test's tmp dir) unless given. Every wait is bounded; stop() kills on timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pgcluster import free_port
from receivers import wait_until


class AgentProcess:
    def __init__(self, tmp_path: Path, config: dict, env: dict | None = None):
        self.dir = tmp_path
        self.port = free_port()
        agent = {"listen": f"127.0.0.1:{self.port}", "state_dir": str(tmp_path / "caretaker-data"),
                 **config.get("agent", {})}
        self.config = {**config, "agent": agent}
        self.config_path = tmp_path / "caretaker.yaml"
        self.log_path = tmp_path / "agent.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, config: dict | None = None) -> None:
        if config is not None:
            self.config = {**config, "agent": self.config["agent"]}
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def start(self, ready_timeout: float = 30.0) -> "AgentProcess":
        self.write_config()
        log = self.log_path.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(self.config_path)],
                                     cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        wait_until(self._ready, ready_timeout, f"the agent on port {self.port} to be ready\n{self.log()}")
        return self

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the agent exited with {self.proc and self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """{(sample name, sorted label pairs): value} of one scrape."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def metric(self, name: str, **labels: str) -> float | None:
        wanted = set(labels.items())
        for (n, lbls), value in self.metrics().items():
            if n == name and wanted <= set(lbls):
                return value
        return None

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the agent did not stop within {timeout}s of SIGTERM:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> "AgentProcess":
        try:
            return self.start()
        except BaseException:  # started but never ready: __exit__ will not run, so do not leak the process
            self.kill()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.kill()
