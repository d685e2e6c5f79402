"""TLS: a server with a self-signed certificate, a wss client that trusts exactly it."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from p2p.transport import ConnectError, envelope
from pytest_p2p.transport_fixtures import eventually


def self_signed(tmp_path: Path, name: str = "cert") -> tuple[str, str]:
    """A P-256 certificate for 127.0.0.1/localhost, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_tls_self_signed(make_transport: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = await make_transport("server", tls_cert_path=cert, tls_key_path=key)
    client = await make_transport("client", tls_ca_path=cert)
    seen: list[Any] = []
    server.on_message(lambda conn, m: seen.append(m))
    conn = await client.connect(server.address)
    assert conn.peer_id == server.node_manager.identity.id
    client_id = client.node_manager.identity.id
    await client.send(
        conn.peer_id, envelope.new_message("get_stats", client_id, conn.peer_id, None)
    )
    await eventually(lambda: any(str(m.type) == "get_stats" for m in seen))
    # explicit wss:// URI works too
    conn2 = await client.connect(f"wss://{server.address}")
    assert conn2.peer_id == conn.peer_id


async def test_tls_untrusted_certificate_refused(make_transport: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "server")
    other, _ = self_signed(tmp_path, "other")
    server = await make_transport("server", tls_cert_path=cert, tls_key_path=key)
    client = await make_transport("client", tls_ca_path=other)
    with pytest.raises(ConnectError):
        await client.connect(server.address)
    plain = await make_transport("plain")
    with pytest.raises(ConnectError):
        await plain.connect(server.address)  # ws:// to a TLS server
    assert not server.connected_peers
