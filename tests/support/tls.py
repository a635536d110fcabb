"""A test CA, a server certificate for 127.0.0.1, and a redis-server that speaks only TLS."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from project.up.redis_server import RedisServer


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_certificates(directory: Path) -> Certificates:
    """A throwaway CA and a server certificate it signed, valid for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("kit test CA"))
        .issuer_name(_name("kit test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths.key)
    return paths


class TLSRedisServer(RedisServer):
    """redis-server with its plain port closed: every client must verify the certificate."""

    def __init__(self, directory: Path, certificates: Certificates, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.certificates = certificates

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"rediss://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--port") + 1] = "0"  # no plain-text listener at all
        return [
            *args,
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.certificates.cert),
            "--tls-key-file",
            str(self.certificates.key),
            "--tls-ca-cert-file",
            str(self.certificates.ca),
            "--tls-auth-clients",
            "no",
        ]

    def client_options(self) -> dict[str, Any]:
        return {"ssl_cert_reqs": "required", "ssl_ca_certs": str(self.certificates.ca)}
