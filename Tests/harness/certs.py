"""Self-signed certificates for the TLS tests, made with the openssl command (P-256, valid
for localhost and 127.0.0.1), and a client context that accepts them."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path


def make_cert(directory: Path, name: str, san: str = "DNS:localhost,IP:127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) PEM files named after `name` in `directory`; CN=name, valid for
    the names in `san`. Self-signed, so the certificate is its own CA."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def der(cert: Path) -> bytes:
    """The certificate as a client sees it (getpeercert(binary_form=True))."""
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def client_context(version: ssl.TLSVersion | None = None, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the tests' certificates are self-signed
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx
