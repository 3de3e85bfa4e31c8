"""The probe contract and the wrapper that turns every failure into a metric (STYLE.md A2/A3).

A probe measures one thing for one target and returns a `ProbeResult`. `run_probe` adds
``caretaker_probe_success`` and ``caretaker_probe_duration_seconds``, enforces the probe's timeout and
catches everything, so a broken probe is a series and a log line, never a crash of the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from agent.samples import Sample, sample
from agent.store import ProbeStatus, Store

log = logging.getLogger("caretaker.probe")


@dataclass
class ProbeResult:
    """What one probe run found.

    `samples`: the series to export (kept even when ok is False: `postgres_up 0` is a finding).
    `ok`: False when the probe could not measure (down, refused, timed out).
    `reason`: why it failed, for the log, `caretaker check` and `/api/v1/status`; never holds a secret.
    `summary`: a short human value for the check table ("12.3 GiB, 41 tables").
    """

    samples: list[Sample] = field(default_factory=list)
    ok: bool = True
    reason: str = ""
    summary: str = ""


class Probe(ABC):
    """One probe for one target. Subclasses set `kind` (the `probe` label) and implement `run`.

    Probes keep state between runs only when that state is the point (a counter, a window).
    """

    kind: str = ""

    def __init__(self, target: str, interval: float, timeout: float):
        self.target = target
        self.interval = interval
        self.timeout = timeout

    @abstractmethod
    async def run(self) -> ProbeResult:
        """Measure once. May raise: `run_probe` turns any exception into a failed result."""


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a log or table: the exception type and its first line, nothing more."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_probe(probe: Probe, store: Store, clock=time.time) -> ProbeStatus:
    """Run `probe` once under its timeout, store its samples plus success/duration, return its status."""
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(probe.run(), probe.timeout)
    except asyncio.TimeoutError:
        result = ProbeResult(ok=False, reason=f"timed out after {probe.timeout:g}s")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the contract: a probe failure is data, never a crash
        log.debug("probe %s/%s raised", probe.kind, probe.target, exc_info=True)
        result = ProbeResult(ok=False, reason=describe_error(exc))
    duration = time.monotonic() - started
    if not result.ok:
        log.warning("probe %s target=%s failed: %s", probe.kind, probe.target, result.reason)
    labels = {"probe": probe.kind, "target": probe.target}
    samples = [
        *result.samples,
        sample("caretaker_probe_success", 1.0 if result.ok else 0.0, **labels),
        sample("caretaker_probe_duration_seconds", duration, **labels),
    ]
    status = ProbeStatus(probe.kind, probe.target, result.ok, result.reason, result.summary, clock(), duration)
    store.replace((probe.kind, probe.target), samples, status)
    return status
