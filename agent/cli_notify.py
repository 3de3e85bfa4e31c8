"""`caretaker notify test [--tag T]`: send a test message to every configured Apprise URL (or those
tagged T) and report which succeeded; exit 1 when any failed, 2 when none matched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

notify_app = typer.Typer(help="Notifications (Apprise).", no_args_is_help=True)


@notify_app.command("test")
def notify_test(tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Only URLs with this tag."),
                config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config with notify.urls.")) -> None:
    """Send one test message per destination and print the outcome of each."""
    from agent.cli import console, err, load_or_exit
    from agent.logs import setup_logging
    from agent.notify.notifier import call_blocking
    from agent.notify.routes import build_destinations

    cfg = load_or_exit(config)
    setup_logging("error")
    dests = [d for d in build_destinations(cfg.notify.urls) if tag is None or tag.lower() in d.tags]
    if not dests:
        err.print("no notify.urls" + (f" with tag {tag!r}" if tag else "") + " in the config", highlight=False)
        raise typer.Exit(2)
    host = cfg.agent.hostname
    title = f"[TEST] Caretaker on {host}"

    async def send_all() -> list[bool]:
        return list(await asyncio.gather(*(
            call_blocking(d.send, cfg.notify.send_timeout, title,
                          f"Test message from Caretaker on {host}.\nDestination: {d.label}\n"
                          f"Tags: {', '.join(sorted(d.tags)) or '(none)'}; receives: "
                          f"{', '.join(sorted(d.severities))}", "info") for d in dests)))

    results = asyncio.run(send_all())
    table = Table(title="Notification test")
    for column in ("destination", "tags", "result"):
        table.add_column(column)
    for d, ok in zip(dests, results):
        table.add_row(d.label, ", ".join(sorted(d.tags)), "[green]sent[/green]" if ok else "[red]failed[/red]")
    console.print(table)
    raise typer.Exit(0 if all(results) else 1)
