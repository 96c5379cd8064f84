"""TLS for parameter-server connections, on when Spark encrypts its own traffic.

When ``spark.network.crypto.enabled`` or ``spark.ssl.enabled`` is true in the
driver's SparkConf, each fit generates an ephemeral self-signed certificate
(EC P-256 key, valid for :data:`VALIDITY`) and the parameter server speaks TLS 1.3
on every accepted socket. The SHA-256 fingerprint of that certificate reaches the
workers in their task closure, next to the per-fit secret; a worker compares the
server's certificate with it (:func:`hmac.compare_digest`) right after the TLS
handshake and refuses the server before sending any frame if it differs. The
HMAC mutual authentication of :mod:`dlbridge.trainer.protocol` then runs inside
TLS, so both sides still prove they hold the secret.

The private key lives in this process's memory; it touches disk only for the
instant :meth:`ssl.SSLContext.load_cert_chain` needs a file, inside a private
temporary directory that is removed at once.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import os
import socket
import ssl
import tempfile
from typing import Any

from dlbridge.trainer.protocol import ProtocolError

TLS_CONFS = ("spark.network.crypto.enabled", "spark.ssl.enabled")
VALIDITY = datetime.timedelta(days=1)


class PinMismatch(ProtocolError):
    """The server's certificate is not the one pinned in the worker's task."""


@dataclasses.dataclass(frozen=True)
class TlsIdentity:
    """The server side of one fit's TLS: a context holding the key, and the certificate's pin."""

    context: ssl.SSLContext = dataclasses.field(repr=False)
    fingerprint: bytes


def tls_enabled(conf: Any) -> bool:
    """Whether a SparkConf asks for encrypted traffic (either key in :data:`TLS_CONFS` is true)."""
    return any(str(conf.get(key, "false")).strip().lower() == "true" for key in TLS_CONFS)


def identity_for(conf: Any) -> TlsIdentity | None:
    """A fresh :class:`TlsIdentity` if ``conf`` enables Spark's encryption, else ``None``."""
    return new_identity() if tls_enabled(conf) else None


def new_identity() -> TlsIdentity:
    """Generate an EC key and a self-signed certificate valid for :data:`VALIDITY`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dlbridge parameter server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY).sign(key, hashes.SHA256()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with tempfile.TemporaryDirectory(prefix="dlbridge-tls-") as tmp:  # created 0700
        path = os.path.join(tmp, "identity.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        context.load_cert_chain(path)
    return TlsIdentity(context=context, fingerprint=fingerprint(cert.public_bytes(serialization.Encoding.DER)))


def fingerprint(der: bytes) -> bytes:
    """SHA-256 of a DER-encoded certificate."""
    return hashlib.sha256(der).digest()


def server_wrap(identity: TlsIdentity, sock: socket.socket) -> ssl.SSLSocket:
    """Wrap an accepted socket; the caller runs ``do_handshake`` under its own deadline."""
    return identity.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def client_wrap(sock: socket.socket, pin: bytes) -> ssl.SSLSocket:
    """TLS handshake over a connected socket, then check the server's certificate against ``pin``.

    Raises
    ------
    PinMismatch
        If the certificate's SHA-256 differs from ``pin`` (the socket is closed; nothing was sent).
    ssl.SSLError, OSError
        If the TLS handshake fails or is cut.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: the pin below is the verification
    tls = context.wrap_socket(sock)
    der = tls.getpeercert(binary_form=True) or b""
    if not hmac.compare_digest(fingerprint(der), pin):
        tls.close()
        raise PinMismatch("the parameter server's TLS certificate does not match the fingerprint "
                          "pinned for this fit (another service on that port, or a man in the middle)")
    return tls
