"""TLS probe: certificate expiry read from local TLS servers with self-signed certificates made at test time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agent.config import ConfigError, parse_config
from agent.probes.base import run_probe
from agent.probes.services import ServiceProbe
from agent.probes.tls import TlsProbe, build, https_targets, not_after_from_der
from agent.store import Store
from fakes import FakeAphrodite
from fakes.certs import make_self_signed


def probe_once(target: str) -> tuple[Store, object]:
    store = Store()
    status = asyncio.run(run_probe(TlsProbe(target, 3600, 2.0), store))
    return store, status


def expiry(store: Store) -> dict[str, float]:
    return {s.label("target"): s.value for s in store.series("caretaker_tls_certificate_expiry_timestamp_seconds")}


@pytest.mark.parametrize("days", [10, -1, 40 * 365])  # valid, expired, after 2049 (GeneralizedTime in DER)
def test_expiry_of_a_self_signed_certificate(tmp_path: Path, days: int) -> None:
    cert, key, not_after = make_self_signed(tmp_path, days=days)
    with FakeAphrodite(tls=(cert, key)) as fake:
        target = f"127.0.0.1:{fake.port}"
        store, status = probe_once(target)
    assert status.ok, status.reason
    assert expiry(store) == {target: not_after}
    assert status.summary.startswith("expires " if days > 0 else "expired ")


def test_der_parser_agrees_with_cryptography(tmp_path: Path) -> None:
    cert, _, not_after = make_self_signed(tmp_path, days=3)
    parsed = x509.load_pem_x509_certificate(Path(cert).read_bytes())
    der = parsed.public_bytes(Encoding.DER)
    assert not_after_from_der(der) == parsed.not_valid_after_utc.timestamp() == not_after
    with pytest.raises(ValueError):
        not_after_from_der(der[:40])


def test_unreachable_and_plain_http_targets_fail_with_a_reason(tmp_path: Path) -> None:
    with FakeAphrodite() as plain:  # speaks HTTP, not TLS
        store, status = probe_once(f"127.0.0.1:{plain.port}")
        assert not status.ok and status.reason.startswith("TLS error: ")
        plain.stop()
        store, status = probe_once(f"127.0.0.1:{plain.port}")
    assert (status.ok, status.reason) == (False, "connection refused")
    assert expiry(store) == {}


def test_service_probe_reports_an_untrusted_certificate(tmp_path: Path) -> None:
    cert, key, _ = make_self_signed(tmp_path)
    with FakeAphrodite(tls=(cert, key)) as fake:
        cfg = parse_config({"services": [{"name": "aph", "kind": "aphrodite", "url": fake.url, "timeout": 2}]})

        async def main():
            async with httpx.AsyncClient() as http:
                probe = ServiceProbe(cfg.services[0], http)
                result = await probe.run()
                return probe.last, result

        call, result = asyncio.run(main())
    assert call.outcome == "network_error"
    assert result.reason == "TLS error: self-signed certificate"


def test_targets_come_from_https_services_and_config() -> None:
    cfg = parse_config({
        "services": [
            {"name": "jf", "kind": "jellyfin", "url": "https://media.example:8920/jf", "api_key": "k"},
            {"name": "emby", "kind": "emby", "url": "https://media.example:8920", "api_key": "k"},  # same target
            {"name": "tmdb", "kind": "tmdb", "api_key": "k"},  # the public API it defaults to
            {"name": "anidb", "kind": "anidb", "client": "c", "client_version": "1"},  # http: no TLS
            {"name": "ap", "kind": "aperture", "url": "http://aperture:3456"},
            {"name": "v6", "kind": "http", "url": "https://[::1]/health"},
        ],
        "tls": {"targets": ["proxy.example:443", "media.example:8920"]},
    })
    assert https_targets(cfg) == ["media.example:8920", "api.themoviedb.org:443", "[::1]:443", "proxy.example:443"]
    probes = build(cfg, type("Deps", (), {"clock": time.time})())
    assert [(p.kind, p.interval, p.timeout) for p in probes] == [("tls", 3600, 10)] * 4
    assert build(parse_config({"tls": {"enabled": False, "targets": ["a:1"]}}), None) == []


def test_bad_target_names_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"tls": {"targets": ["https://host"]}})
    assert err.value.errors[0].startswith("tls.targets[0]: String should match pattern")
