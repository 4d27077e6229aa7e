"""TLS: the client verifies the service's certificate, against a CA bundle of its own when one is named."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY = "sk-test-tls-0123456789"
HISTORY = {"cluster": "prod", "service": "web", "records": [], "next": None}


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, as a TLS-intercepting proxy's CA would be; (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test proxy CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ca.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback answering every GET with an empty history; (its URL, its CA bundle)."""
    cert, key = self_signed(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            raw = json.dumps(HISTORY).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


def history(url: str, workdir: Path, **env: str) -> Any:
    return run_cli(
        "history",
        "prod",
        "web",
        env={"ECS_IMAGE_UPDATER_URL": url, "ECS_IMAGE_UPDATER_API_KEY": KEY, **env},
        cwd=workdir,
    )


def test_a_certificate_the_system_does_not_trust_is_refused(https: tuple[str, Path], workdir: Path) -> None:
    url, _ = https
    result = history(url, workdir)
    assert result.returncode == 4
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr or "certificate verify failed" in result.stderr


@pytest.mark.parametrize("variable", ["ECS_IMAGE_UPDATER_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_named_ca_bundle_is_trusted(https: tuple[str, Path], workdir: Path, variable: str) -> None:
    url, bundle = https
    result = run_cli(
        "--json",
        "history",
        "prod",
        "web",
        env={"ECS_IMAGE_UPDATER_URL": url, "ECS_IMAGE_UPDATER_API_KEY": KEY, variable: str(bundle)},
        cwd=workdir,
    )
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout) == HISTORY


def test_the_clients_own_variable_wins(https: tuple[str, Path], workdir: Path, tmp_path: Path) -> None:
    url, bundle = https
    result = history(url, workdir, ECS_IMAGE_UPDATER_CA_BUNDLE=str(bundle), REQUESTS_CA_BUNDLE=str(tmp_path / "nope"))
    assert result.returncode == 0, result.output


def test_a_ca_bundle_that_cannot_be_read_is_refused_naming_the_variable(
    https: tuple[str, Path], workdir: Path, tmp_path: Path
) -> None:
    url, _ = https
    result = history(url, workdir, ECS_IMAGE_UPDATER_CA_BUNDLE=str(tmp_path / "missing.pem"))
    assert result.returncode == 3
    assert "ECS_IMAGE_UPDATER_CA_BUNDLE=" in result.stderr
    assert "cannot be read" in result.stderr
