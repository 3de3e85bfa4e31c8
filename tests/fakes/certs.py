"""Self-signed certificates for the TLS-expiry tests (`FakeServer(tls=(cert, key))`)."""
from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_self_signed(dir: str | Path, days: float = 10, cn: str = "127.0.0.1") -> tuple[str, str, int]:
    """Write a cert valid until now+`days` (negative = already expired) with SAN IP 127.0.0.1.

    Returns (certfile, keyfile, not_after as epoch seconds). EC P-256 keeps generation fast.
    """
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc).replace(microsecond=0)  # certificates store whole seconds
    not_after = now + timedelta(days=days)
    not_before = min(now, not_after) - timedelta(days=1)
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    try:
        ip = ipaddress.ip_address(cn)
        if str(ip) != "127.0.0.1":
            sans.append(x509.IPAddress(ip))
    except ValueError:
        sans.append(x509.DNSName(cn))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    stem = out / f"cert-{uuid.uuid4().hex[:8]}"
    certfile, keyfile = stem.with_suffix(".crt"), stem.with_suffix(".key")
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    keyfile.chmod(0o600)
    return str(certfile), str(keyfile), int(not_after.timestamp())
