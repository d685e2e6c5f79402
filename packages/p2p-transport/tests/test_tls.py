"""TLS: a server with a self-signed certificate, a wss client that trusts exactly it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from p2p.transport import ConnectError, envelope
from pytest_p2p.tls import self_signed as shared_self_signed
from pytest_p2p.transport_fixtures import eventually


def self_signed(tmp_path: Path, name: str = "cert") -> tuple[str, str]:
    """The shared test certificate, as the str paths TransportConfig takes."""
    cert, key = shared_self_signed(tmp_path, name)
    return str(cert), str(key)


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


async def test_tls_client_context_built_once(
    make_transport: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client SSLContext per transport: building one reads the CA file (or the
    system's CAs: ~17 ms here) again, and that was paid on every wss dial."""
    import ssl

    cert, key = self_signed(tmp_path)
    server = await make_transport("server", tls_cert_path=cert, tls_key_path=key)
    client = await make_transport("client", tls_ca_path=cert)
    built: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        ctx = real(*args, **kwargs)
        built.append(ctx)
        return ctx

    monkeypatch.setattr(ssl, "create_default_context", counting)
    for _ in range(3):
        conn = await client.connect(server.address)
        await conn.close()
    assert len(built) == 1
