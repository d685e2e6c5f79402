"""p2p.transport: what a Lethean node says on the wire after the TCP connection exists.

Layers, bottom up: ``trix`` (the TRIX container), ``sigil`` (XChaCha20-Poly1305 with the
Enchantrix pre-obfuscation), ``smsg`` (the encrypted transport frame), ``messages`` (the JSON
envelope and payloads), ``frames`` (Message <-> encrypted frame in one call), then the
handshake state machines and the WebSocket shell.
"""

from __future__ import annotations

from p2p.transport.errors import TransportError

__all__ = ["TransportError"]
