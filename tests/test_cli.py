"""The caretaker command as a user runs it: exit codes, messages, the agent's lifecycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentproc import AgentProcess
from pgcluster import free_port
from receivers import wait_until

CARETAKER = [sys.executable, "-m", "agent.cli"]


def caretaker(*args: str, cwd: Path, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CARETAKER, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_config_validate_ok_and_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("system: {interval: 5s}\n")
    result = caretaker("config", "validate", str(good), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok"
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: {interval: soon, bogus: 1}\nservices: [{name: x, kind: tmdb, api_key: k3y-s3cr3t, "
                   "interval: never}]\n")
    result = caretaker("config", "validate", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "system.interval" in result.stderr and "system.bogus" in result.stderr
    assert "services[0].interval" in result.stderr
    assert "k3y-s3cr3t" not in result.stderr + result.stdout


def test_run_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: {NoSuchRule: {threshold: 1}}\n")
    result = caretaker("run", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2 and "rules: Value error, unknown rule name(s): NoSuchRule" in result.stderr


def test_run_refuses_public_listen_without_token(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent: {listen: '0.0.0.0:9464'}\n")
    result = caretaker("run", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2 and "not a loopback address" in result.stderr


@pytest.mark.parametrize("command", [("config", "validate"), ("check", "--config")])
def test_validate_and_check_refuse_public_listen_without_token(tmp_path, command):
    """The rule is part of config validation: `config validate` says so, `check` fails cleanly (no traceback)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent: {listen: '0.0.0.0:9464'}\n")
    result = caretaker(*command, str(cfg), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "agent: Value error, listen: 0.0.0.0:9464 is not a loopback address" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_exits_zero_when_healthy_and_one_otherwise(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("system: {mountpoints: [/]}\nrules: {DiskSpaceHigh: {threshold: 1.0}, "
                  "MemoryUsageHigh: {threshold: 1.0}}\n")
    result = caretaker("check", "--config", str(ok), cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "system" in result.stdout and "yes" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(f"databases: [{{name: gone, dsn: 'host=127.0.0.1 port={free_port()} user=x password=pw9 "
                      "dbname=x'}]\nrules: {DiskSpaceHigh: {threshold: 0.0}}\n")
    result = caretaker("check", "--config", str(broken), cwd=tmp_path)
    assert result.returncode == 1
    assert "gone" in result.stdout and "refused" in result.stdout.lower()
    assert "DiskSpaceHigh" in result.stdout and "PostgresDown" in result.stdout
    assert "pw9" not in result.stdout


def test_embedded_default_serves_metrics_and_stops_on_sigterm(tmp_path):
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"agent: {{listen: '127.0.0.1:{port}'}}\nsystem: {{interval: 1s}}\n")
    proc = subprocess.Popen([*CARETAKER, "run", "--config", str(cfg)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: ready(port), 10, "the agent to be ready", interval=0.1)  # the first probe round
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        for name in ("caretaker_cpu_usage_ratio", "caretaker_memory_usage_ratio", "caretaker_memory_available_bytes",
                     'caretaker_disk_usage_ratio{mountpoint="/"}', 'caretaker_disk_free_bytes{mountpoint="/"}',
                     "caretaker_build_info{version=", 'caretaker_probe_success{probe="system"',
                     "caretaker_probe_duration_seconds{"):
            assert name in body, name
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).text == "ok"
        assert (tmp_path / "caretaker-data" / "state.db").exists()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.monotonic() - started < 2.0
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_agent_process_that_never_gets_ready_is_killed(tmp_path):
    class NeverReady(AgentProcess):
        def start(self, ready_timeout: float = 1.0) -> AgentProcess:
            return super().start(ready_timeout)

        def _ready(self) -> bool:
            super()._ready()  # still fails at once if the agent exited
            return False

    agent = NeverReady(tmp_path, {"system": {"interval": "1s"}})
    with pytest.raises(AssertionError, match="to be ready"):
        with agent:
            pass
    assert agent.proc is not None and agent.proc.poll() is not None  # not left running
