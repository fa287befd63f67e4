"""A throwaway CA and one server certificate for every FAL host the client talks to."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FAL_HOSTS: tuple[str, ...] = (
    "queue.fal.run",
    "fal.run",
    "*.fal.run",
    "rest.fal.ai",
    "rest.alpha.fal.ai",
    "*.fal.ai",
    "v3.fal.media",
    "*.fal.media",
    "queue.falrun.com",
    "falrun.com",
    "localhost",
    "127.0.0.1",
)


@dataclass(frozen=True, slots=True)
class CertFiles:
    """PEM files written by `make_cert_files`."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    bundle_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the emulator certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context trusting only the throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Aisha sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_roots() -> bytes:
    """The usual public roots (certifi's bundle, else the system's), to append our CA to."""
    try:
        import certifi

        return Path(certifi.where()).read_bytes()
    except (ImportError, OSError):
        cafile = ssl.get_default_verify_paths().cafile
        return Path(cafile).read_bytes() if cafile and Path(cafile).exists() else b""


def make_cert_files(directory: Path, hosts: tuple[str, ...] = FAL_HOSTS) -> CertFiles:
    """Create a CA and a server certificate for `hosts`; write them under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Aisha sandbox throwaway CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = CertFiles(
        ca_file=directory / "fal-ca.pem",
        cert_file=directory / "fal-server.pem",
        key_file=directory / "fal-server.key",
        bundle_file=directory / "fal-ca-bundle.pem",
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    files.ca_file.write_bytes(ca_pem)
    files.bundle_file.write_bytes(_public_roots().rstrip(b"\n") + b"\n" + ca_pem)
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(_pem_key(key))
    files.key_file.chmod(0o600)
    return files
