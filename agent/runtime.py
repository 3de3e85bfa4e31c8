"""Builds everything from a Config and runs it (DESIGN.md §2); stops cleanly on SIGTERM/SIGINT.

Each probe runs in its own task on its own interval under its own timeout, so a hanging service never
delays another probe or a scrape. After every probe run the round hooks (the rule engine) evaluate the
store and the exposition is re-rendered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Awaitable, Callable

import httpx
import uvicorn

from agent import __version__
from agent.config import Config
from agent.actions.wiring import attach as attach_actions
from agent.exporter import Exporter
from agent.notify.alerting import Alerting
from agent.probes import build_probes
from agent.probes.base import Probe, run_probe
from agent.samples import sample
from agent.pings import router as pings_router
from agent.services_api import router as services_router
from agent.state import State
from agent.store import ProbeStatus, Store

log = logging.getLogger("caretaker")


class Runtime:
    """The running agent. Other areas attach to it: `round_hooks` (async callables run after each probe
    run, e.g. rule evaluation), `services` (long-running coroutines taking the stop event, e.g. the
    notifier's delivery loop) and `routers` (FastAPI routers)."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time, alerting: bool = True):
        self.config = config
        self.clock = clock
        self.store = Store()
        self.exporter = Exporter(self.store)
        self.state = State(config.agent.state_dir / "state.db")
        self.http = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": f"caretaker/{__version__}"})
        self.round_hooks: list[Callable[[], Awaitable[None]]] = []
        self.services: list[Callable[[asyncio.Event], Awaitable[None]]] = []
        self.routers: list = []
        self.routers.append(services_router)
        self.routers.append(pings_router)
        self.store.replace(("agent", "build"), [sample("caretaker_build_info", 1, version=__version__)])
        self.probes: list[Probe] = build_probes(config, self)
        self._pending_first = {(p.kind, p.target) for p in self.probes}
        # Rule engine + notifier (agent/notify/alerting.py); off for one-shot commands such as `check`,
        # which must not change alert states or write notifications into a running agent's state file.
        self.alerting = Alerting.attach(self) if alerting else None
        # Maintenance actions: rt.actions (runner), rt.remediator, rt.calendar, /api/v1/actions (agent/actions).
        attach_actions(self)

    @property
    def ready(self) -> bool:
        return not self._pending_first

    async def after_probe(self) -> None:
        for hook in self.round_hooks:
            try:
                await hook()
            except Exception:
                log.exception("round hook %s failed", getattr(hook, "__qualname__", hook))
        self.exporter.refresh()

    async def probe_once(self, probe: Probe) -> ProbeStatus:
        status = await run_probe(probe, self.store, self.clock)
        self._pending_first.discard((probe.kind, probe.target))
        await self.after_probe()
        return status

    async def run_all_once(self) -> list[ProbeStatus]:
        """Every probe once, concurrently (`caretaker check`)."""
        return list(await asyncio.gather(*(self.probe_once(p) for p in self.probes)))

    async def _probe_loop(self, probe: Probe, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            await self.probe_once(probe)
            delay = max(0.0, probe.interval - (time.monotonic() - started))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def serve(self, stop: asyncio.Event) -> None:
        """Run probes, services and the HTTP server until `stop` is set."""
        from agent.api import build_app

        host, port = self.config.agent.host_port
        server = uvicorn.Server(uvicorn.Config(build_app(self), host=host, port=port, log_level="warning",
                                               lifespan="off", access_log=False))
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup()
        if server.should_exit:
            raise OSError(f"cannot listen on {self.config.agent.listen}")
        self.exporter.refresh()
        log.info("caretaker %s listening on http://%s/metrics with %d probe(s)", __version__,
                 self.config.agent.listen, len(self.probes))
        tasks = [asyncio.create_task(self._probe_loop(p, stop), name=f"probe:{p.kind}:{p.target}")
                 for p in self.probes]
        tasks += [asyncio.create_task(svc(stop), name=f"service:{getattr(svc, '__qualname__', svc)}")
                  for svc in self.services]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.should_exit = True
            await server.shutdown()

    async def close(self) -> None:
        await self.http.aclose()
        self.state.close()


def run_agent(config: Config) -> None:
    """Entry point of `caretaker run`: serve until SIGTERM or SIGINT, then stop within ~2 s."""

    async def main() -> None:
        rt = Runtime(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await rt.serve(stop)
        finally:
            await rt.close()
        log.info("caretaker stopped")

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        # Threads still inside a blocking call must not hold up the exit (SIGTERM within 2 s).
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
