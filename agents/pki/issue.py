"""Certificate issuance: pure functions over the `cryptography` library.

Keys are ECDSA P-256: key generation takes microseconds (an RSA 2048 key takes ~100 ms, and a
hook Job issuing a dozen keys, or a test suite issuing hundreds, feels that), the keys and
handshakes are small, and every TLS peer in kairn accepts them: Java 17 (Kafka, ZooKeeper
clients), OpenSSL 3 (stunnel, Python). Signatures are ECDSA with SHA-256.

Nothing here does I/O; the only impurity is randomness (keys, serials, passwords).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates start a little in the past so that a peer whose clock lags ours still accepts a
# certificate issued a moment ago.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(
    subject: str | x509.Name,
    now: datetime,
    days: int,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> KeyPair:
    """A self-signed CA (a CN gets O=kairn). Passing the subject and key of an existing CA renews
    its certificate: every leaf it signed still verifies against the new certificate."""
    key = key or new_key()
    name = _name(subject, "kairn") if isinstance(subject, str) else subject
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        # pathlen 0: this CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def _usage(**on: bool) -> x509.KeyUsage:
    # KeyUsage wants all nine bits spelled out; name only those that are set.
    bits = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment"]
    bits += ["key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{n: on.get(n, False) for n in bits})


def issue_leaf(
    ca: KeyPair,
    cn: str,
    dns: Sequence[str],
    ips: Sequence[str],
    now: datetime,
    days: int,
) -> KeyPair:
    """A TLS leaf for both ends of mutual TLS (serverAuth + clientAuth). It never outlives its
    CA: a chain with an expired CA fails however long the leaf is valid."""
    key = new_key()
    not_after = min(now + timedelta(days=days), ca.cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # ECDHE-ECDSA needs digitalSignature only; keyEncipherment is for RSA key transport.
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(_aki(ca.cert), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:  # a user-provided CA may lack an SKI
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())


# --- encodings ------------------------------------------------------------------------------


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the one PEM key form that Kafka's PEM keystores, stunnel and OpenSSL all read.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_certs(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; ValueError when there is none or the PEM is bad."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("no PEM certificate")
    return x509.load_pem_x509_certificates(pem)


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"not an EC private key ({type(key).__name__})")
    return key


def signing_ca(ca_crt: bytes, ca_key: bytes) -> KeyPair:
    """The CA that signs, from a Secret's `ca.crt` bundle (which may also hold a CA that is only
    trusted) and `ca.key`: e.g. for the user agent to issue TLS users with the clients CA."""
    key = load_key(ca_key)
    for cert in load_certs(ca_crt):
        if key_matches(cert, key):
            return KeyPair(cert, key)
    raise ValueError("ca.key matches no certificate of ca.crt")


def key_matches(cert: x509.Certificate, key) -> bool:
    return cert.public_key() == key.public_key()


def new_password() -> bytes:
    return secrets.token_urlsafe(24).encode()


def _p12_encryption(password: bytes):
    # PBES2 (PBKDF2 + AES-256-CBC) and an HMAC-SHA256 MAC: what Java 17, OpenSSL 3 and
    # cryptography all read; the legacy RC2/3DES defaults are refused by OpenSSL 3.
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(20000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )


def keystore_p12(alias: str, pair: KeyPair, chain: Iterable[x509.Certificate], password: bytes):
    """A PKCS#12 keystore: one private-key entry holding the key, its cert and the CA chain."""
    return pkcs12.serialize_key_and_certificates(
        alias.encode(), pair.key, pair.cert, list(chain), _p12_encryption(password)
    )


def truststore_p12(certs: Sequence[x509.Certificate], password: bytes) -> bytes:
    """A PKCS#12 truststore. Java only treats a certificate in a PKCS#12 file as trusted when it
    carries Oracle's trusted-key-usage attribute, which serialize_java_truststore sets."""
    entries = [pkcs12.PKCS12Certificate(c, f"ca-{i}".encode()) for i, c in enumerate(certs)]
    return pkcs12.serialize_java_truststore(entries, _p12_encryption(password))


def load_p12(data: bytes, password: bytes):
    """(key or None, [certs]) of a PKCS#12 file; ValueError when the password does not open it."""
    p12 = pkcs12.load_pkcs12(data, password)
    certs = ([p12.cert.certificate] if p12.cert else []) + [
        c.certificate for c in p12.additional_certs
    ]
    return p12.key, certs


# --- inspection -----------------------------------------------------------------------------


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def sans(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[str]]:
    """(DNS names, IP addresses as text) of a certificate."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    ips = {str(i) for i in ext.get_values_for_type(x509.IPAddress)}
    return frozenset(ext.get_values_for_type(x509.DNSName)), frozenset(ips)


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):  # wrong key, issuer name or key type
        return False
    return True
