"""`caretaker action list|run|runs`: the maintenance actions by hand (DESIGN.md §8).

`run` works in this process against the agent's state file, so its lock excludes the running agent's runs
of the same action and target (and the agent's API sees the run and its audit). Params are ``--param
key=value``; a value is read as YAML (``relations=[movies,series]``, ``older_than=2h``, ``restore=false``).
Exit codes: 0 succeeded (or planned), 1 failed / refused / already running, 2 bad input.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

action_app = typer.Typer(help="Maintenance actions: list them, run one (dry run first), read the audit.",
                         no_args_is_help=True)
ConfigOption = typer.Option(None, "--config", "-c", help="The agent's config (targets, state_dir).")
POLL_SECONDS = 0.1


def _config(path: Optional[Path]):
    from agent.cli import load_or_exit

    return load_or_exit(path)


def _fail(message: str, code: int = 1) -> None:
    from agent.cli import err

    err.print(f"[red]error[/red] {message}", highlight=False)
    raise typer.Exit(code)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", …]`` → {k: YAML value of v}; raises ValueError naming a pair without ``=``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {pair!r}: use key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _print_json(data: Any) -> None:
    from agent.cli import console

    console.print_json(json.dumps(data, default=str))


@action_app.command("list")
def list_actions(config: Optional[Path] = ConfigOption) -> None:
    """Every action: destructive?, automatic for which alert, and the targets this config gives it."""
    from agent.actions import ACTIONS
    from agent.cli import console

    cfg = _config(config)
    table = Table(title="Actions")
    for column in ("action", "destructive", "targets", "description"):
        table.add_column(column)
    for action in ACTIONS.values():
        table.add_row(action.name, "[red]yes[/red]" if action.destructive else "no",
                      ", ".join(sorted(action.targets(cfg))) or "-", action.description)
    console.print(table)


async def _run(cfg, name: str, target: Optional[str], params: dict[str, Any], yes: bool, dry_run: bool) -> int:
    from agent.actions.base import ActionError
    from agent.cli import console
    from agent.runtime import Runtime

    rt = Runtime(cfg, alerting=False)
    try:
        runner = rt.actions
        try:
            prep = runner.prepare(name, target, params, confirm=yes, dry_run=dry_run)
            started = await runner.start(prep, "cli", getpass.getuser())
        except ActionError as exc:
            _fail(exc.reason, 2 if exc.status in (400, 404) else 1)
        if not started["triggered"]:
            _fail(f"{name} on {prep.target.name} is already running (run {started['run_id']})")
        run_id = started["run_id"]
        if not dry_run:
            await _follow(runner, run_id, f"{name} on {prep.target.name}")
        record = runner.get_run(run_id)
    finally:
        await rt.close()
    console.print(f"run {run_id}: {name} on {record['target']} [bold]{record['outcome']}[/bold]"
                  + (f" — {record['error']}" if record["error"] else ""), highlight=False)
    if record["result"] is not None:
        _print_json(record["result"])
    return 0 if record["outcome"] in ("succeeded", "planned") else 1


async def _follow(runner, run_id: int, label: str) -> None:
    """A rich progress bar over the run's live progress until it ends."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)
        while run_id in runner.live:
            p = runner.live[run_id].progress
            bar.update(task, description=f"{label}: {p.phase}" if p.phase else label, total=p.total,
                       completed=p.done)
            await asyncio.sleep(POLL_SECONDS)
        await runner.wait(run_id)


@action_app.command("run")
def run(name: str = typer.Argument(..., help="The action (see `caretaker action list`)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the exact plan; change nothing."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Confirm a destructive action."),
        param: list[str] = typer.Option([], "--param", "-p", help="key=value (YAML value); repeatable."),
        target: Optional[str] = typer.Option(None, "--target", "-t", help="Needed when the action has several."),
        config: Optional[Path] = ConfigOption) -> None:
    """Run one action now, with a progress bar; prints the plan (dry run) or the result."""
    from agent.logs import setup_logging

    cfg = _config(config)
    setup_logging("warning")
    try:
        params = parse_params(param)
    except ValueError as exc:
        _fail(str(exc), 2)
    raise typer.Exit(asyncio.run(_run(cfg, name, target, params, yes, dry_run)))


@action_app.command("runs")
def runs(action: Optional[str] = typer.Option(None, "--action", "-a"), limit: int = typer.Option(20, "--limit", "-n"),
         run_id: Optional[int] = typer.Option(None, "--id", help="Print this run's full record as JSON."),
         config: Optional[Path] = ConfigOption) -> None:
    """The audit: recent runs, newest first (or one run in full with --id)."""
    from agent.actions.runner import get_run, list_runs
    from agent.cli import console
    from agent.state import State

    state = State(_config(config).agent.state_dir / "state.db")
    try:
        if run_id is not None:
            record = get_run(state, run_id)
        else:
            records = list_runs(state, action, limit)
    finally:
        state.close()
    if run_id is not None:
        if record is None or (action is not None and record["action"] != action):
            _fail(f"no action run {run_id}", 2)
        _print_json(record)
        return
    table = Table(title="Action runs")
    for column in ("id", "action", "target", "trigger", "who", "started", "outcome", "error"):
        table.add_column(column)
    for r in records:
        table.add_row(str(r["run_id"]), r["action"], r["target"], r["trigger"], r["who"],
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])),
                      r["outcome"] + (" (dry run)" if r["dry_run"] else ""), r["error"] or "")
    console.print(table)
