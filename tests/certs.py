"""Real certificates for the TLS tests: a CA (trustme), server and client certificates,
an expired one, one from another CA, and a CRL revoking one (cryptography)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization


@dataclass
class Certs:
    dir: Path
    ca: trustme.CA
    other_ca: trustme.CA

    def path(self, name: str) -> Path:
        return self.dir / name

    def client(
        self,
        name: str,
        cn: str,
        *,
        ca: trustme.CA | None = None,
        san: str | None = None,
        expired: bool = False,
    ) -> tuple[Path, Path]:
        now = datetime.datetime.now(datetime.UTC)
        kw = {}
        if expired:
            kw = {
                "not_before": now - datetime.timedelta(days=30),
                "not_after": now - datetime.timedelta(days=1),
            }
        leaf = (ca or self.ca).issue_cert(*([san] if san else []), common_name=cn, **kw)
        cert, key = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key

    def revoke(self, cert_path: Path) -> Path:
        """Write a CRL (signed by the CA) that revokes ``cert_path``; returns its path."""
        leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        now = datetime.datetime.now(datetime.UTC)
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(leaf.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=1))
            .build()
        )
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - datetime.timedelta(minutes=1))
            .next_update(now + datetime.timedelta(days=1))
            .add_revoked_certificate(revoked)
            .sign(ca_key, hashes.SHA256())
        )  # type: ignore[arg-type]
        path = self.dir / "clients.crl"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path


def make_certs(dir: Path, server_names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Certs:
    dir.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(dir / "ca.pem"))
    server = ca.issue_cert(*server_names)
    server.private_key_and_cert_chain_pem.write_to_path(str(dir / "server.pem"))
    server.private_key_pem.write_to_path(str(dir / "server.key"))
    # server.pem holds key + chain; tls_cert may be a chain-only file too: write one
    (dir / "server-chain.pem").write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    return Certs(dir, ca, other)
