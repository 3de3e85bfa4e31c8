"""TLS probe: when does the certificate of each https target expire (DESIGN.md §6, rule TLSCertificateExpiringSoon).

Targets are the https service URLs (their `url`, or the public API a metadata kind defaults to) plus
`tls.targets`, each once as ``host:port``. The certificate is read even when it is self-signed or
untrusted — verification is off for this one handshake, which only reads the expiry and sends nothing —
so a home-lab certificate is watched like any other. Exports
`caretaker_tls_certificate_expiry_timestamp_seconds{target}` (Unix time of the certificate's notAfter).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from agent.config import Config
from agent.probes.base import Probe, ProbeResult
from agent.probes.presets import base_url
from agent.samples import sample


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at `pos`: (tag, start of its content, end of its content)."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def not_after_from_der(der: bytes) -> float:
    """Unix time of notAfter in a DER X.509 certificate (RFC 5280 §4.1: Certificate → tbsCertificate →
    [version], serialNumber, signature, issuer, validity{notBefore, notAfter}). Raises ValueError."""
    try:
        _, pos, _ = _tlv(der, 0)  # Certificate
        _, pos, _ = _tlv(der, pos)  # tbsCertificate
        tag, _, end = _tlv(der, pos)
        if tag == 0xA0:  # explicit [0] version
            pos = end
        for _ in range(3):  # serialNumber, signature, issuer
            pos = _tlv(der, pos)[2]
        tag, pos, _ = _tlv(der, pos)  # validity
        pos = _tlv(der, pos)[2]  # notBefore
        tag, start, end = _tlv(der, pos)  # notAfter
    except IndexError:
        raise ValueError("truncated certificate") from None
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: years 50–99 are 19xx (RFC 5280 §4.1.2.5.1)
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"notAfter has unexpected DER tag {tag:#x}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()


async def peer_certificate(host: str, port: int) -> bytes:
    """The DER certificate the server at host:port presents, trusted or not (cancel to time out)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # read the expiry of self-signed and expired certificates too
    _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not der:
        raise ValueError("the server presented no certificate")
    return der


def ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words: ``WRONG_VERSION_NUMBER`` → ``wrong version number``."""
    return (exc.reason or "handshake failed").lower().replace("_", " ")


def _split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


class TlsProbe(Probe):
    """Certificate expiry of one ``host:port``; a target that cannot be reached is a failed probe run."""

    kind = "tls"

    def __init__(self, target: str, interval: float, timeout: float, clock=time.time):
        super().__init__(target, interval, timeout)
        self.clock = clock

    async def run(self) -> ProbeResult:
        host, port = _split(self.target)
        try:
            not_after = not_after_from_der(await peer_certificate(host, port))
        except ConnectionRefusedError:
            return ProbeResult(ok=False, reason="connection refused")
        except ssl.SSLError as exc:
            return ProbeResult(ok=False, reason=f"TLS error: {ssl_reason(exc)}")
        days = (not_after - self.clock()) / 86400
        when = datetime.fromtimestamp(not_after, timezone.utc).strftime("%Y-%m-%d")
        summary = f"expires {when} (in {days:.0f} d)" if days >= 0 else f"expired {when} ({-days:.0f} d ago)"
        return ProbeResult([sample("caretaker_tls_certificate_expiry_timestamp_seconds", not_after,
                                   target=self.target)], summary=summary)


def https_targets(config: Config) -> list[str]:
    """``host:port`` of every https service URL, then `tls.targets`, each once, in config order."""
    out: list[str] = []
    for svc in config.services:
        parts = urlsplit(base_url(svc))
        if parts.scheme == "https" and parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            out.append(f"{host}:{parts.port or 443}")
    out += config.tls.targets
    return list(dict.fromkeys(out))


def build(config: Config, deps) -> list[Probe]:
    if not config.tls.enabled:
        return []
    return [TlsProbe(t, config.tls.interval, config.tls.timeout, deps.clock) for t in https_targets(config)]
