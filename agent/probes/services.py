"""Service probe: media servers, app health endpoints, metadata APIs and generic HTTP checks (DESIGN.md §5–§6).

One `ServiceProbe` per configured service asks it once per interval and classifies the answer as exactly
one of ok, auth_error, rate_limited, server_error, timeout, network_error (tables in
`agent.probes.presets`). It keeps the per-outcome counter and the error window itself, so it exports:

- `caretaker_service_up{service,kind}`: 0 for server_error, timeout, network_error (for Jellyfin/Emby:
  the health step's answer);
- `caretaker_service_auth_valid{service}`: only when credentials were sent and judged (ok → 1,
  auth_error → 0), never for kinds without credentials or calls that did not get that far;
- `caretaker_service_response_seconds{service}`: wall time of the check's requests, when an answer came;
- `caretaker_service_requests_total{service,outcome}`: all six outcomes from the start, so rate() works;
- `caretaker_service_error_ratio{service}`: non-ok share of checks within `error_window`;
- `caretaker_service_rate_limit_remaining{service}`: when the API sends rate-limit headers.

Secrets: keys travel in headers or, for OMDb, MDBList and TMDB v3, in the query string. No URL is ever
put in a reason or a log line (httpx's own request log is filtered by `agent.logs.redact_http_logs`),
and every reason is scrubbed of the key as a last guard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from dataclasses import asdict, dataclass

import httpx

from agent.config import Config, HttpExpect, ServiceConfig
from agent.durations import format_duration
from agent.logs import redact_http_logs
from agent.probes.base import Probe, ProbeResult
from agent.probes.presets import (DOWN_OUTCOMES, OUTCOMES, PRESETS, Parts, Verdict, base_url, by_status, join,
                                  judge, judge_expect, rate_limit_remaining)
from agent.probes.tls import ssl_reason
from agent.samples import Sample, sample
from agent.store import Window

log = logging.getLogger("caretaker.probe.service")

# A scheduled run comes one interval after the previous one, give or take timer drift: the guard of
# `Preset.min_interval` allows this much slack so it only stops the extra runs (restarts, Test connection).
_GUARD_SLACK = 0.05


@dataclass(frozen=True)
class Call:
    """One classified check. `at`: epoch seconds it started; `auth_valid`: None when not judged."""

    outcome: str
    reason: str
    up: bool
    auth_valid: bool | None
    response_seconds: float | None
    rate_limit_remaining: float | None
    at: float


def _causes(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _transport_verdict(exc: httpx.HTTPError, timeout: float) -> Verdict:
    """A request that got no answer. The exception text is never used: it may quote the URL."""
    if isinstance(exc, httpx.TimeoutException):
        return Verdict("timeout", f"timed out after {timeout:g}s")
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Verdict("network_error", f"TLS error: {cause.verify_message or 'certificate verify failed'}")
        if isinstance(cause, ssl.SSLError):
            return Verdict("network_error", f"TLS error: {ssl_reason(cause)}")
        if isinstance(cause, ConnectionRefusedError):
            return Verdict("network_error", "connection refused")
        if isinstance(cause, socket.gaierror):
            return Verdict("network_error", "cannot resolve the host name")
        if isinstance(cause, ConnectionResetError):
            return Verdict("network_error", "connection reset")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return Verdict("network_error", "connection closed without an answer")
    return Verdict("network_error", f"request failed ({type(exc).__name__})")


def _reason(response: httpx.Response | None, verdict: Verdict) -> str:
    """``"401 Unauthorized: invalid API key"``; empty for ok."""
    if verdict.outcome == "ok":
        return ""
    if response is None:
        return verdict.detail
    head = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{head}: {verdict.detail}" if verdict.detail else head


class ServiceProbe(Probe):
    """Probe of one configured service. `last` is the most recent Call (for Test connection)."""

    kind = "service"

    def __init__(self, cfg: ServiceConfig, http: httpx.AsyncClient, clock=time.time, state=None):
        self.cfg = cfg
        self.preset = PRESETS[cfg.kind]
        steps = len(self.preset.health) + 1
        # The per-request timeout is cfg.timeout; the runner's limit only guards against a stuck check.
        super().__init__(cfg.name, max(cfg.interval, self.preset.min_interval), cfg.timeout * steps + 1.0)
        self.http, self.clock, self.state = http, clock, state
        self.auth: Parts | None = self.preset.auth(cfg) if self.preset.auth else None
        self.expect = (cfg.expect or HttpExpect()) if cfg.kind == "http" else None
        self._secret = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.window = Window(cfg.error_window)
        self.last: Call | None = None

    # -- I/O ------------------------------------------------------------------------------------------------
    async def _get(self, path: str, parts: Parts) -> httpx.Response | Verdict:
        url = join(base_url(self.cfg), path)
        try:
            return await self.http.get(url, headers=parts.headers, params=parts.params or None,
                                       timeout=self.cfg.timeout)
        except httpx.HTTPError as exc:
            return _transport_verdict(exc, self.cfg.timeout)

    async def _check(self) -> Call:
        at, started = self.clock(), time.monotonic()
        up: bool | None = None
        for i, path in enumerate(self.preset.health):
            answer = await self._get(path, Parts())
            if isinstance(answer, httpx.Response) and answer.status_code == 404 and i + 1 < len(self.preset.health):
                continue  # no /health (older servers, some proxies): ask /System/Ping
            verdict = answer if isinstance(answer, Verdict) else by_status(answer)
            if verdict.outcome != "ok":
                response = answer if isinstance(answer, httpx.Response) else None
                return self._call(verdict, response, at, started, up=verdict.outcome not in DOWN_OUTCOMES)
            up = True
            break
        parts = Parts({**self.preset.fixed.headers, **(self.auth.headers if self.auth else {})},
                      {**self.preset.fixed.params, **(self.auth.params if self.auth else {})})
        answer = await self._get(self.preset.path, parts)
        if isinstance(answer, Verdict):
            return self._call(answer, None, at, started, up=bool(up))
        seconds = time.monotonic() - started
        verdict = judge_expect(self.expect, answer, seconds) if self.expect else judge(self.preset, answer)
        judged = self.auth is not None and verdict.outcome in ("ok", "auth_error")
        if up is None:  # no health step: the main answer says whether the service is up
            up = verdict.outcome not in DOWN_OUTCOMES
        return self._call(verdict, answer, at, started, up=up, auth_valid=(verdict.outcome == "ok") if judged else None)

    def _call(self, verdict: Verdict, response: httpx.Response | None, at: float, started: float, *, up: bool,
              auth_valid: bool | None = None) -> Call:
        reason = _reason(response, verdict)
        if self._secret:
            reason = reason.replace(self._secret, "***")
        return Call(verdict.outcome, reason, up, auth_valid,
                    time.monotonic() - started if response is not None else None,
                    rate_limit_remaining(response.headers) if response is not None else None, at)

    # -- the guard for APIs that ban frequent clients (AniDB) ------------------------------------------------
    @property
    def _state_key(self) -> str:
        return f"service:{self.cfg.name}:last_call"

    async def _recent_call(self) -> Call | None:
        """The stored last call when it is younger than the preset's minimum interval, else None."""
        if not self.preset.min_interval or self.state is None:
            return None
        raw = await asyncio.to_thread(self.state.get, self._state_key)
        if raw is None:
            return None
        try:
            call = Call(**json.loads(raw))
        except (TypeError, ValueError):
            return None
        return call if self.clock() - call.at < self.preset.min_interval * (1 - _GUARD_SLACK) else None

    async def _remember(self, call: Call) -> None:
        if self.preset.min_interval and self.state is not None:
            await asyncio.to_thread(self.state.put, self._state_key, json.dumps(asdict(call)))

    # -- the probe ------------------------------------------------------------------------------------------
    def samples(self, call: Call) -> list[Sample]:
        svc = self.cfg.name
        out = [sample("caretaker_service_up", 1 if call.up else 0, service=svc, kind=self.cfg.kind)]
        if call.auth_valid is not None:
            out.append(sample("caretaker_service_auth_valid", 1 if call.auth_valid else 0, service=svc))
        if call.response_seconds is not None:
            out.append(sample("caretaker_service_response_seconds", call.response_seconds, service=svc))
        out += [sample("caretaker_service_requests_total", n, service=svc, outcome=o) for o, n in self.counts.items()]
        out.append(sample("caretaker_service_error_ratio", self.window.ratio(self.clock()), service=svc))
        if call.rate_limit_remaining is not None:
            out.append(sample("caretaker_service_rate_limit_remaining", call.rate_limit_remaining, service=svc))
        return out

    async def run(self) -> ProbeResult:
        self.last = None
        reused = await self._recent_call()
        if reused is None:
            call = await self._check()
            self.counts[call.outcome] += 1
            self.window.add(call.at, call.outcome != "ok")
            await self._remember(call)
        else:
            call = reused
        self.last = call
        summary = call.outcome
        if call.response_seconds is not None:
            summary += f" in {call.response_seconds * 1000:.0f} ms"
        if call.rate_limit_remaining is not None:
            summary += f", {call.rate_limit_remaining:g} requests left"
        if reused is not None:
            summary += (f" (answer of {format_duration(self.clock() - call.at)} ago: {self.cfg.kind} is asked "
                        f"at most every {format_duration(self.preset.min_interval)})")
        return ProbeResult(self.samples(call), ok=call.outcome == "ok", reason=call.reason, summary=summary)


def build(config: Config, deps) -> list[Probe]:
    redact_http_logs()
    probes = []
    for cfg in config.services:
        probe = ServiceProbe(cfg, deps.http, deps.clock, deps.state)
        if probe.interval > cfg.interval:
            log.info("service %s: interval raised to %s, the least %s allows", cfg.name,
                     format_duration(probe.interval), cfg.kind)
        probes.append(probe)
    return probes
