"""Helpers for the profile-driven probe tests: build probes from a config dict and run them at a frozen now."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Callable

import httpx

from agent.config import Config, parse_config
from agent.metrics import spec
from agent.probes.base import ProbeResult


def config(**sections: Any) -> Config:
    return parse_config(sections)


def run_built(cfg: Config, build: Callable, now: float, state: Any = None) -> dict[str, ProbeResult]:
    """Every probe `build(cfg, deps)` makes, run once at `now`; {target: result}. Each sample must be a
    series of agent/metrics.py with exactly its labels."""
    async def go() -> dict[str, ProbeResult]:
        async with httpx.AsyncClient() as http:
            deps = SimpleNamespace(config=cfg, http=http, clock=lambda: now, state=state)
            return {p.target: await p.run() for p in build(cfg, deps)}
    results = asyncio.run(go())
    for result in results.values():
        for s in result.samples:
            assert tuple(sorted(spec(s.name).labels)) == tuple(k for k, _ in s.labels), s
    return results


def values(result: ProbeResult, name: str, key: str) -> dict[str, float]:
    """{label `key` value: sample value} of one series in a result."""
    return {s.label(key): s.value for s in result.samples if s.name == name}


def value(result: ProbeResult, name: str, **labels: str) -> float | None:
    for s in result.samples:
        if s.name == name and all(s.label(k) == v for k, v in labels.items()):
            return s.value
    return None


def pg_app(name: str, dsn: str, services: list[dict] | None = None, **app: Any) -> Config:
    """A config with one PostgreSQL entry named after its built-in profile, with `app:` settings."""
    return config(services=services or [], databases=[{"name": name, "dsn": dsn, "profile": name, "app": app}])


def run_on(db: tuple[str, dict], name: str, build: Callable, offset: float = 60.0) -> tuple[ProbeResult, dict, float]:
    """(result, manifest, now) of `build`'s probe for a fixture database (dsn, manifest) of the built-in
    profile `name`, run `offset` seconds after the fixture was built."""
    dsn, manifest = db
    now = manifest["built_at"].timestamp() + offset
    return run_built(pg_app(name, dsn), build, now)[name], manifest, now
