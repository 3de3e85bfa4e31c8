"""Service probe against the local fakes: every kind in every mode, windows, headers, secrets, Test connection."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from agent.api import build_app
from agent.config import ConfigError, parse_config
from agent.probes.base import run_probe
from agent.probes.presets import OUTCOMES
from agent.probes.services import ServiceProbe
from agent.runtime import Runtime
from agent.state import State
from agent.store import Store
from fakes import (FakeAniDB, FakeAperture, FakeAphrodite, FakeJellyfin, FakeMDBList, FakeOMDb, FakeOpenAI,
                   FakeServer, FakeTMDB, FakeTrakt, FakeTsundoku)

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# kind → (fake factory, config fields besides name/kind/url, path appended to the fake's URL)
KINDS: dict[str, tuple[Callable[[], FakeServer], dict, str]] = {
    "jellyfin": (FakeJellyfin, {"api_key": "jf-key"}, ""),
    "emby": (lambda: FakeJellyfin(emby=True), {"api_key": "jf-key"}, ""),
    "tmdb": (FakeTMDB, {"api_key": "tmdb-v3"}, ""),
    "omdb": (FakeOMDb, {"api_key": "omdb-key"}, ""),
    "mdblist": (FakeMDBList, {"api_key": "mdbl-key"}, ""),
    "anidb": (FakeAniDB, {"client": "caretaker", "client_version": "1"}, ""),
    "trakt": (FakeTrakt, {"api_key": "trakt-id"}, ""),
    "openai": (FakeOpenAI, {"api_key": "sk-test"}, ""),
    "aperture": (FakeAperture, {}, ""),
    "aphrodite": (FakeAphrodite, {}, ""),
    "tsundoku": (FakeTsundoku, {}, ""),
    "http": (FakeAphrodite, {}, "/api/health"),
}
CREDENTIALS = {"jellyfin", "emby", "tmdb", "omdb", "mdblist", "anidb", "trakt", "openai"}

BAD_KEY_REASONS = {
    "jellyfin": "401 Unauthorized: invalid API key",
    "emby": "401 Unauthorized: invalid API key",
    "tmdb": "401 Unauthorized: invalid API key (TMDB status_code 7)",
    "omdb": "401 Unauthorized: invalid API key (OMDb: Invalid API key!)",
    "mdblist": "401 Unauthorized: invalid API key (MDBList: Invalid API key!)",
    "anidb": "200 OK: client name or version not accepted (AniDB error 302: client version missing or invalid)",
    "trakt": "403 Forbidden: invalid API key or unapproved app",
    "openai": "401 Unauthorized: invalid API key",
}
QUOTA_REASONS = {
    "jellyfin": "429 Too Many Requests: rate limited, retry after 10s",
    "tmdb": "429 Too Many Requests: over the request limit (TMDB status_code 25)",
    "omdb": "401 Unauthorized: quota spent (OMDb: Request limit reached!)",
    "mdblist": "429 Too Many Requests: quota spent (MDBList: API Limit Reached!)",
    "anidb": "200 OK: banned for asking too often (AniDB error 500: banned)",
    "trakt": "429 Too Many Requests: rate limited, retry after 2s",
    "openai": "429 Too Many Requests: quota spent (insufficient_quota)",
    "http": "429 Too Many Requests: expected status 200",
}


def config(tmp_path: Path, *services: dict, **sections):
    return parse_config({"agent": {"state_dir": str(tmp_path)}, "system": {"enabled": False},
                         "tls": {"enabled": False}, "services": list(services), **sections})


def service(kind: str, fake: FakeServer, name: str | None = None, **fields) -> dict:
    _, defaults, path = KINDS[kind]
    return {"name": name or kind, "kind": kind, "url": fake.url + path, "timeout": 0.5,
            **defaults, **fields}


def run_service(tmp_path: Path, svc: dict, runs: int = 1, clock: Callable[[], float] = time.time,
                between: Callable[[int], None] | None = None) -> tuple[list, Store, ServiceProbe]:
    """Run one service's probe `runs` times through the probe runner (calling `between(i)` before each)."""

    async def main():
        state = State(tmp_path / "state.db")
        try:
            async with httpx.AsyncClient() as http:
                probe = ServiceProbe(config(tmp_path, svc).services[0], http, clock, state)
                store, statuses = Store(), []
                for i in range(runs):
                    if between:
                        between(i)
                    statuses.append(await run_probe(probe, store, clock))
                return statuses, store, probe
        finally:
            state.close()

    return asyncio.run(main())


def series(store: Store, name: str, **labels) -> dict[tuple, float]:
    return {s.labels: s.value for s in store.series(f"caretaker_service_{name}")
            if all(s.label(k) == v for k, v in labels.items())}


def value(store: Store, name: str, **labels) -> float | None:
    found = series(store, name, **labels)
    assert len(found) <= 1, found
    return next(iter(found.values()), None)


def assert_counted(store: Store, svc: str, outcome: str, n: int = 1) -> None:
    counts = {s.label("outcome"): s.value for s in store.series("caretaker_service_requests_total")
              if s.label("service") == svc}
    assert counts == {o: (n if o == outcome else 0) for o in OUTCOMES}


# -- every kind in every mode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", ["good", "bad_key", "quota", "slow", "down", "stopped"])
def test_kind_in_mode(tmp_path: Path, kind: str, mode: str) -> None:
    factory, _, _ = KINDS[kind]
    fake = factory()
    with fake:
        fake.slow_seconds = 2
        if mode == "stopped":
            fake.stop()
        else:
            fake.mode = mode
        (status,), store, probe = run_service(tmp_path, service(kind, fake))
    credentials = kind in CREDENTIALS
    expected = {"good": "ok", "bad_key": "auth_error" if credentials else "ok", "quota": "rate_limited",
                "slow": "timeout", "down": "server_error", "stopped": "network_error"}[mode]
    assert probe.last.outcome == expected
    assert status.ok == (expected == "ok")
    assert_counted(store, kind, expected)
    assert value(store, "up", service=kind, kind=kind) == (0 if mode in ("slow", "down", "stopped") else 1)
    assert value(store, "error_ratio", service=kind) == (0 if expected == "ok" else 1)
    judged = credentials and expected in ("ok", "auth_error")
    assert value(store, "auth_valid", service=kind) == ((1 if expected == "ok" else 0) if judged else None)
    seconds = value(store, "response_seconds", service=kind)
    assert seconds > 0 if mode not in ("slow", "stopped") else seconds is None
    if mode == "good":
        assert status.reason == ""
    elif mode == "bad_key" and credentials:
        assert status.reason == BAD_KEY_REASONS[kind]
    elif mode == "quota":
        assert status.reason == QUOTA_REASONS.get(kind, "429 Too Many Requests: rate limited, retry after 10s")
    elif mode == "slow":
        assert status.reason == "timed out after 0.5s"
    elif mode == "down":
        assert status.reason.startswith("503 Service Unavailable")
    elif mode == "stopped":
        assert status.reason == "connection refused"


# -- kind specifics -------------------------------------------------------------------------------------------
def test_jellyfin_sends_mediabrowser_token_never_x_emby_token(tmp_path: Path) -> None:
    with FakeJellyfin() as fake:
        run_service(tmp_path, service("jellyfin", fake))
        assert fake.paths() == ["/health", "/System/Info"]
        _, _, headers = fake.requests[-1]
    assert headers["authorization"] == 'MediaBrowser Token="jf-key"'
    assert "x-emby-token" not in headers


def test_emby_uses_x_emby_token_and_ping(tmp_path: Path) -> None:
    with FakeJellyfin(emby=True) as fake:
        (status,), _, _ = run_service(tmp_path, service("emby", fake))
        assert fake.paths() == ["/System/Ping", "/System/Info"]
        assert fake.requests[-1][2]["x-emby-token"] == "jf-key"
    assert status.ok


def test_jellyfin_without_health_falls_back_to_ping(tmp_path: Path) -> None:
    with FakeJellyfin(emby=True) as fake:  # Emby has no /health, as older Jellyfin servers and some proxies
        (status,), _, _ = run_service(tmp_path, service("jellyfin", fake))
        assert fake.paths() == ["/health", "/System/Ping", "/System/Info"]
    assert status.ok, status.reason


@pytest.mark.parametrize("mode, outcome, up", [("starting", "server_error", 0), ("degraded", "ok", 1)])
def test_jellyfin_start_up_phases(tmp_path: Path, mode: str, outcome: str, up: int) -> None:
    with FakeJellyfin() as fake:
        fake.mode = mode
        (status,), store, probe = run_service(tmp_path, service("jellyfin", fake))
    assert probe.last.outcome == outcome
    assert value(store, "up", service="jellyfin") == up
    if mode == "starting":  # /health said Unhealthy: the key was never asked about
        assert status.reason == "503 Service Unavailable: server error"
        assert value(store, "auth_valid", service="jellyfin") is None


def test_tmdb_v4_token_goes_as_bearer_v3_key_in_query(tmp_path: Path) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"
    with FakeTMDB(bearer=token) as fake:
        (v4,), _, _ = run_service(tmp_path / "v4", service("tmdb", fake, api_key=token))
        (v3,), _, _ = run_service(tmp_path / "v3", service("tmdb", fake))
        (method, path4, headers4), (_, path3, headers3) = fake.requests
    assert v4.ok and v3.ok
    assert headers4["authorization"] == f"Bearer {token}" and path4 == "/3/configuration"
    assert path3 == "/3/configuration?api_key=tmdb-v3" and "authorization" not in headers3


def test_tmdb_suspended_key(tmp_path: Path) -> None:
    with FakeTMDB() as fake:
        fake.mode = "suspended"
        (status,), store, _ = run_service(tmp_path, service("tmdb", fake))
    assert status.reason == "401 Unauthorized: API key suspended (TMDB status_code 10)"
    assert value(store, "auth_valid", service="tmdb") == 0


@pytest.mark.parametrize("fake_cls, kind", [(FakeOMDb, "omdb"), (FakeMDBList, "mdblist")])
def test_bad_key_inside_a_200_answer(tmp_path: Path, fake_cls, kind: str) -> None:
    with fake_cls(bad_key_status=200) as fake:
        fake.mode = "bad_key"
        (status,), store, probe = run_service(tmp_path, service(kind, fake))
    assert probe.last.outcome == "auth_error"
    assert status.reason.startswith("200 OK: invalid API key")
    assert value(store, "auth_valid", service=kind) == 0
    assert value(store, "up", service=kind) == 1


def test_omdb_quota_inside_a_200_answer(tmp_path: Path) -> None:
    with FakeOMDb(quota_status=200) as fake:
        fake.mode = "quota"
        (status,), _, probe = run_service(tmp_path, service("omdb", fake))
    assert probe.last.outcome == "rate_limited"
    assert status.reason == "200 OK: quota spent (OMDb: Request limit reached!)"


def test_openai_rate_limit_is_not_a_spent_quota(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        fake.mode = "rate_limited"
        (status,), store, probe = run_service(tmp_path, service("openai", fake))
    assert probe.last.outcome == "rate_limited"
    assert status.reason == "429 Too Many Requests: rate limited, retry after 1s"
    assert value(store, "rate_limit_remaining", service="openai") == 0


@pytest.mark.parametrize("kind, remaining", [("mdblist", 988), ("trakt", 999), ("openai", 9999)])
def test_rate_limit_headers(tmp_path: Path, kind: str, remaining: int) -> None:
    factory, _, _ = KINDS[kind]
    with factory() as fake:
        (status,), store, _ = run_service(tmp_path, service(kind, fake))
    assert value(store, "rate_limit_remaining", service=kind) == remaining
    assert f"{remaining} requests left" in status.summary


def test_no_rate_limit_series_without_headers(tmp_path: Path) -> None:
    with FakeTMDB() as fake:
        _, store, _ = run_service(tmp_path, service("tmdb", fake))
    assert value(store, "rate_limit_remaining", service="tmdb") is None


def test_connection_dropped_mid_answer_is_a_network_error(tmp_path: Path) -> None:
    with FakeOMDb() as fake:
        fake.mode, fake.slow_seconds = "slow", 30
        # stopped mid-request, the fake hangs up without an answer, as a crashing server would
        (status,), _, probe = run_service(tmp_path, service("omdb", fake, timeout=5),
                                          between=lambda _: asyncio.get_running_loop().call_later(0.3, fake.stop))
    assert probe.last.outcome == "network_error"
    assert status.reason == "connection closed without an answer"


# -- error window ---------------------------------------------------------------------------------------------
def test_error_ratio_over_the_window(tmp_path: Path) -> None:
    clock = Clock()
    plan = [(0, "good"), (0, "bad_key"), (600, "good"), (960, "good"), (960, "down")]
    ratios = []

    with FakeOMDb() as fake:
        def step(i: int) -> None:
            clock.now, fake.mode = T0 + plan[i][0], plan[i][1]

        async def main():
            rt = Runtime(config(tmp_path, service("omdb", fake, error_window="15m")), clock=clock)
            try:
                probe = next(p for p in rt.probes if isinstance(p, ServiceProbe))
                for i in range(len(plan)):
                    step(i)
                    await rt.probe_once(probe)
                    ratios.append(value(rt.store, "error_ratio", service="omdb"))
                return rt.store
            finally:
                await rt.close()

        store = asyncio.run(main())
    # T0 ok, T0 bad → 1/2; T0+600 ok → 1/3; at T0+960 the T0 pair has left the 15 min window: ok → 0,
    # then down → 1/3
    assert ratios == [0, 0.5, pytest.approx(1 / 3), 0, pytest.approx(1 / 3)]
    counts = series(store, "requests_total", service="omdb")
    assert {dict(k)["outcome"]: v for k, v in counts.items()} == {
        "ok": 3, "auth_error": 1, "rate_limited": 0, "server_error": 1, "timeout": 0, "network_error": 0}


# -- AniDB: never more often than hourly ------------------------------------------------------------------------
def test_anidb_interval_is_at_least_an_hour(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"name": "a", "kind": "anidb", "client": "c", "client_version": "1", "interval": "1m"},
                 {"name": "b", "kind": "anidb", "client": "c", "client_version": "1", "interval": "2h"})
    built = [ServiceProbe(s, http=None) for s in cfg.services]
    assert [p.interval for p in built] == [3600, 7200]


def test_anidb_guard_holds_across_runs_and_restarts(tmp_path: Path) -> None:
    clock = Clock()
    with FakeAniDB(flood_seconds=2) as fake:
        svc = service("anidb", fake, interval="1m")
        statuses, store, _ = run_service(tmp_path, svc, runs=3, clock=clock,
                                         between=lambda i: setattr(clock, "now", T0 + 60 * i))
        assert len(fake.request_times) == 1  # the two extra runs reused the first answer
        assert all(s.ok for s in statuses)
        assert "answer of 2m ago: anidb is asked at most every 1h" in statuses[2].summary
        assert_counted(store, "anidb", "ok", 1)
        clock.now = T0 + 600  # a restart (new runtime, same state file) ten minutes later: still no request
        (again,), store, _ = run_service(tmp_path, svc, clock=clock)
        assert len(fake.request_times) == 1 and again.ok
        assert value(store, "up", service="anidb", kind="anidb") == 1
        assert value(store, "auth_valid", service="anidb") == 1
        clock.now = T0 + 3600  # the next scheduled run asks again
        fake.flood_seconds = None  # the fake's flood check uses real time, which did not move an hour
        (fresh,), store, _ = run_service(tmp_path, svc, clock=clock)
        assert len(fake.request_times) == 2 and fresh.ok
        assert_counted(store, "anidb", "ok", 1)


# -- generic http kind ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("expect, mode, outcome, reason", [
    ({"json_path": "status", "json_value": "ok"}, "good", "ok", ""),
    ({"json_path": "status", "json_value": "healthy"}, "good", "server_error",
     '200 OK: JSON status is "ok", expected "healthy"'),
    ({"json_path": "database"}, "good", "server_error", "200 OK: JSON path database not found"),
    ({"json_path": "database", "status": [503]}, "down", "ok", ""),
    ({"status": [200, 204]}, "down", "server_error", "503 Service Unavailable: expected status 200, 204"),
    ({"body_regex": r'"status":\s*"ok"'}, "good", "ok", ""),
    ({"body_regex": "^healthy$"}, "good", "server_error", "200 OK: body does not match /^healthy$/"),
])
def test_http_conditions(tmp_path: Path, expect: dict, mode: str, outcome: str, reason: str) -> None:
    with FakeAperture() as fake:
        fake.mode = mode
        (status,), store, probe = run_service(tmp_path, {"name": "web", "kind": "http", "url": f"{fake.url}/health",
                                                         "expect": expect})
    assert (probe.last.outcome, status.reason) == (outcome, reason)
    assert value(store, "auth_valid", service="web") is None  # no credentials configured


def test_http_max_latency(tmp_path: Path) -> None:
    with FakeAperture() as fake:
        fake.mode, fake.slow_seconds = "slow", 0.3
        (status,), store, probe = run_service(tmp_path, {"name": "web", "kind": "http", "url": f"{fake.url}/health",
                                                         "timeout": 5, "expect": {"max_latency": "100ms"}})
    assert probe.last.outcome == "timeout"
    assert status.reason.startswith("200 OK: answered in 0.") and status.reason.endswith("s, over max_latency 0.1s")
    assert value(store, "up", service="web") == 0
    assert value(store, "response_seconds", service="web") >= 0.3


def test_http_bearer_key_and_json_list_path(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        svc = {"name": "llm", "kind": "http", "url": f"{fake.url}/v1/models", "api_key": "sk-test",
               "expect": {"json_path": "data.0.id", "json_value": "gpt-4o-mini"}}
        (ok,), store, _ = run_service(tmp_path / "a", svc)
        assert ok.ok and value(store, "auth_valid", service="llm") == 1
        (bad,), store, _ = run_service(tmp_path / "b", {**svc, "api_key": "sk-wrong"})
    assert bad.reason == "401 Unauthorized: expected status 200"
    assert value(store, "auth_valid", service="llm") == 0


# -- secrets --------------------------------------------------------------------------------------------------
SECRETS = {"omdb": "omdbSECRET4242", "mdblist": "mdblSECRET4242", "tmdb": "tmdbSECRET4242",
           "openai": "sk-SECRET-4242x", "jellyfin": "jfSECRET4242"}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_secrets_never_in_reason_summary_metrics_or_logs(tmp_path: Path, caplog, kind: str) -> None:
    caplog.set_level(logging.DEBUG)  # the most talkative setting: httpx logs every request URL at INFO
    caplog.set_level(logging.DEBUG, logger="httpx")  # even where setup_logging turned it down before
    secret = SECRETS[kind]
    factory = {"omdb": lambda: FakeOMDb(api_key=secret), "mdblist": lambda: FakeMDBList(api_key=secret),
               "tmdb": lambda: FakeTMDB(api_key=secret), "openai": lambda: FakeOpenAI(api_key=secret),
               "jellyfin": lambda: FakeJellyfin(api_key=secret)}[kind]
    texts = []
    with factory() as fake:
        fake.slow_seconds = 2
        for mode in ("good", "bad_key", "quota", "slow", "down"):
            fake.mode = mode
            (status,), _, _ = run_service(tmp_path / mode, service(kind, fake, api_key=secret))
            texts += [status.reason, status.summary]
        fake.stop()
        (status,), store, _ = run_service(tmp_path / "stopped", service(kind, fake, api_key=secret))
        texts += [status.reason, status.summary]
    assert "HTTP Request: GET" in caplog.text  # httpx did log its requests, with the query string stripped
    assert "probe service target=" in caplog.text  # failures are logged, by name
    for text in [*texts, caplog.text]:
        assert secret not in text and secret[-6:] not in text
    assert all(secret not in repr(s) for s in store.samples())


def test_config_repr_hides_the_key(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"name": "o", "kind": "omdb", "api_key": "omdbSECRET4242"})
    assert "omdbSECRET4242" not in repr(cfg) and "omdbSECRET4242" not in str(cfg.services[0])


# -- Test connection ------------------------------------------------------------------------------------------
def test_test_connection_endpoint(tmp_path: Path) -> None:
    with FakeOMDb(api_key="omdbSECRET4242") as fake:
        cfg = config(tmp_path, service("omdb", fake, api_key="omdbSECRET4242"), agent={
            "state_dir": str(tmp_path), "admin_token": "admin-tok"})

        async def main():
            rt = Runtime(cfg)
            transport = httpx.ASGITransport(app=build_app(rt))
            auth = {"Authorization": "Bearer admin-tok"}
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
                    good = await client.post("/api/v1/services/omdb/test", headers=auth)
                    fake.mode = "bad_key"
                    bad = await client.post("/api/v1/services/omdb/test", headers=auth)
                    unknown = await client.post("/api/v1/services/nope/test", headers=auth)
                    anonymous = await client.post("/api/v1/services/omdb/test")
                    wrong = await client.post("/api/v1/services/omdb/test", headers={"Authorization": "Bearer x"})
                return good, bad, unknown, anonymous, wrong, rt.store
            finally:
                await rt.close()

        good, bad, unknown, anonymous, wrong, store = asyncio.run(main())
    assert good.status_code == 200
    body = good.json()
    assert {k: body[k] for k in ("service", "outcome", "ok", "reason")} == {
        "service": "omdb", "outcome": "ok", "ok": True, "reason": ""}
    assert body["response_seconds"] > 0
    assert bad.json()["outcome"] == "auth_error" and bad.json()["ok"] is False
    assert bad.json()["reason"] == "401 Unauthorized: invalid API key (OMDb: Invalid API key!)"
    assert "omdbSECRET4242" not in good.text + bad.text
    assert unknown.status_code == 404
    assert (anonymous.status_code, wrong.status_code) == (401, 403)
    counts = {dict(k)["outcome"]: v for k, v in series(store, "requests_total", service="omdb").items()}
    assert (counts["ok"], counts["auth_error"]) == (1, 1)  # each test is a real, counted probe run
    assert value(store, "auth_valid", service="omdb") == 0


def test_test_connection_needs_a_configured_admin_token(tmp_path: Path) -> None:
    with FakeOMDb() as fake:
        async def main():
            rt = Runtime(config(tmp_path, service("omdb", fake)))
            try:
                transport = httpx.ASGITransport(app=build_app(rt))
                async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
                    return await client.post("/api/v1/services/omdb/test")
            finally:
                await rt.close()

        assert asyncio.run(main()).status_code == 503
        assert fake.requests == []


# -- exposition and config ------------------------------------------------------------------------------------
def test_exported_series_render(tmp_path: Path) -> None:
    async def main():
        with FakeMDBList() as fake:
            rt = Runtime(config(tmp_path, service("mdblist", fake)))
            try:
                await rt.run_all_once()
                return rt.exporter.body().decode()
            finally:
                await rt.close()

    body = asyncio.run(main())
    assert 'caretaker_service_up{kind="mdblist",service="mdblist"} 1.0' in body
    assert 'caretaker_service_auth_valid{service="mdblist"} 1.0' in body
    assert 'caretaker_service_requests_total{outcome="network_error",service="mdblist"} 0.0' in body
    assert 'caretaker_service_rate_limit_remaining{service="mdblist"} 988.0' in body
    assert 'caretaker_service_error_ratio{service="mdblist"} 0.0' in body
    assert "# TYPE caretaker_service_requests_total counter" in body


@pytest.mark.parametrize("svc, message", [
    ({"name": "jf", "kind": "jellyfin", "url": "http://jf:8096"},
     "services[0]: Value error, api_key: required for kind jellyfin"),
    ({"name": "jf", "kind": "jellyfin"}, "services[0]: Value error, url, api_key: required for kind jellyfin"),
    ({"name": "o", "kind": "omdb"}, "services[0]: Value error, api_key: required for kind omdb"),
    ({"name": "a", "kind": "anidb", "client": "c"},
     "services[0]: Value error, client_version: required for kind anidb"),
    ({"name": "w", "kind": "http"}, "services[0]: Value error, url: required for kind http"),
    ({"name": "w", "kind": "aperture", "url": "aperture:3456"},
     "services[0]: Value error, url: must start with http:// or https:// and name a host"),
    ({"name": "o", "kind": "omdb", "api_key": "k", "expect": {"status": [200]}},
     "services[0]: Value error, expect: only for kind http, not omdb"),
    ({"name": "w", "kind": "http", "url": "http://w", "expect": {"body_regex": "("}},
     "services[0].expect.body_regex: Value error, invalid regular expression: missing ), unterminated subpattern "
     "at position 0"),
])
def test_config_errors_name_the_field(svc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"services": [svc]})
    assert err.value.errors == [message]


def test_example_config_is_valid(monkeypatch, tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "examples" / "services.yaml").read_text()
    (tmp_path / "caretaker").write_text("admin")
    (tmp_path / "openai").write_text("sk-x")
    for var in ("JELLYFIN_API_KEY", "TMDB_TOKEN", "OMDB_API_KEY", "MDBLIST_API_KEY", "TRAKT_CLIENT_ID"):
        monkeypatch.setenv(var, "x")
    cfg = parse_config(yaml.safe_load(text.replace("/run/secrets/", f"{tmp_path}/")))
    assert {s.kind for s in cfg.services} == set(KINDS) - {"emby"}  # emby is commented out
    probes = {p.target: p for p in (ServiceProbe(s, http=None) for s in cfg.services)}
    assert probes["anidb"].interval == 6 * 3600 and probes["tmdb"].interval == 300
