"""Certificates and keys for the local control plane: one cluster CA that signs the API
server's serving certificate and the client certificates of the components, plus the
ServiceAccount token signing key pair."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, ca: bool):
    """A certificate valid from five minutes ago for VALIDITY, for signatures; a CA's also
    signs certificates and CRLs."""
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
    )


@dataclass
class Pair:
    cert: Path
    key: Path


class ClusterPKI:
    """Creates the files under `folder` (each kept when it already exists)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca = Pair(self.folder / "ca.crt", self.folder / "ca.key")
        self.sa_key = self.folder / "sa.key"
        self.sa_pub = self.folder / "sa.pub"
        self._ca_cert: x509.Certificate | None = None
        self._ca_key = None

    def ensure_ca(self) -> Pair:
        if not self.ca.cert.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kairn-local-ca")])
            cert = (
                _builder(name, name, key.public_key(), ca=True)
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            _write(self.ca.key, _key_pem(key), private=True)
            _write(self.ca.cert, cert.public_bytes(serialization.Encoding.PEM))
        self._ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        self._ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), None)
        return self.ca

    def _issue(
        self,
        name: str,
        subject: x509.Name,
        *,
        server: bool,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
    ) -> Pair:
        pair = Pair(self.folder / f"{name}.crt", self.folder / f"{name}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        if self._ca_cert is None:
            self.ensure_ca()
        key = ec.generate_private_key(ec.SECP256R1())
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            _builder(subject, self._ca_cert.subject, key.public_key(), ca=False)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                critical=False,
            )
        )
        if dns or ips:
            sans = [x509.DNSName(d) for d in dns]
            sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        _write(pair.key, _key_pem(key), private=True)
        _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def server(self, name: str, dns: tuple[str, ...], ips: tuple[str, ...]) -> Pair:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        return self._issue(name, subject, server=True, dns=dns, ips=ips)

    def client(self, name: str, user: str, groups: tuple[str, ...] = ()) -> Pair:
        """A client certificate: the API server reads CN as the user, O as the groups."""
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
        return self._issue(name, x509.Name(attrs), server=False)

    def service_account_keys(self) -> tuple[Path, Path]:
        """RSA key pair that signs and verifies ServiceAccount tokens."""
        if not self.sa_key.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _write(self.sa_key, _key_pem(key), private=True)
            _write(
                self.sa_pub,
                key.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                ),
            )
        return self.sa_key, self.sa_pub
