"""The `caretaker` command (typer + rich): run, check, config validate, and the area sub-commands.

Exit codes: 0 ok, 1 unhealthy (`check`) or failed, 2 bad input (config, arguments).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from agent.cli_action import action_app
from agent.cli_dashboards import dashboards_app
from agent.cli_notify import notify_app
from agent.cli_rules import rules_app
from agent.cli_silence import silence_app
from agent.config import Config, ConfigError, load_config
from agent.logs import setup_logging

app = typer.Typer(help="Caretaker: monitoring, alerting and maintenance for self-hosted media stacks.",
                  no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(action_app, name="action")
app.add_typer(rules_app, name="rules")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(silence_app, name="silence")
app.add_typer(notify_app, name="notify")

console = Console()
err = Console(stderr=True)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file; without it, watch this host.")


def load_or_exit(path: Optional[Path]) -> Config:
    """Load the config or print each error with its field path and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            err.print(f"[red]config error[/red] {line}", markup=True, highlight=False)
        raise typer.Exit(2) from None


@config_app.command("validate")
def config_validate(file: Path = typer.Argument(..., help="Config file to check.")) -> None:
    """Print "ok", or each error with its field path (exit 2)."""
    load_or_exit(file)
    console.print("ok")


@app.command()
def run(config: Optional[Path] = ConfigOption) -> None:
    """Run the agent: probes, /metrics, alerts and actions, until SIGTERM or Ctrl-C."""
    from agent.runtime import run_agent

    cfg = load_or_exit(config)
    setup_logging(cfg.agent.log_level)
    try:
        run_agent(cfg)
    except OSError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def check(config: Optional[Path] = ConfigOption,
          integrity: bool = typer.Option(False, "--integrity", help="Run amcheck on every database now."),
          as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document.")) -> None:
    """Run every configured probe once, print a table (or JSON), exit 0 when all is healthy and 1 otherwise."""
    from agent.check import run_check

    cfg = load_or_exit(config)
    setup_logging("critical")
    report = asyncio.run(run_check(cfg, integrity))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        raise typer.Exit(0 if report.healthy else 1)
    table = Table(title="Probes")
    for column in ("probe", "target", "ok", "value", "reason"):
        table.add_column(column)
    for s in report.statuses:
        table.add_row(s.probe, s.target, "[green]yes[/green]" if s.ok else "[red]no[/red]", s.summary, s.reason)
    console.print(table)
    if report.faults:
        faults = Table(title="Faults")
        for column in ("alert", "labels", "value", "threshold"):
            faults.add_column(column)
        for f in report.faults:
            faults.add_row(f.alert, f.labels, f.value, f.threshold)
        console.print(faults)
    if report.findings:
        found = Table(title="Integrity findings (amcheck)")
        for column in ("database", "relation", "message"):
            found.add_column(column)
        for row in report.findings:
            found.add_row(*row)
        console.print(found)
    raise typer.Exit(0 if report.healthy else 1)


if __name__ == "__main__":
    app()
