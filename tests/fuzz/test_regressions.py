"""Inputs the fuzzers found that crashed a target: each one is a regression test.

Fixed ones also live in ``corpus/<target>/crash-*`` (replayed by ``test_corpus_replays``);
ones whose fix belongs to another package are ``xfail(strict=True)`` here until fixed, so
the fix turns them into a failure that says "remove the marker".
"""

from __future__ import annotations

import json

import pytest

from ._harness import CORPUS, execute, mutate_json_field
from ._targets import all_targets


def _hello_with(path: tuple[str, ...], value: object) -> bytes:
    hello = json.loads((CORPUS / "handshake_responder" / "seed-capture_hello").read_bytes())
    return mutate_json_field(hello, path, value)


def test_handshake_null_challenge_is_rejected_not_raised() -> None:
    """Found by test_handshake_every_field_mutated: ``"challenge": null`` made the
    responder call ``len(None)`` (fixed in p2p-transport a5cab15: null is empty, as Go)."""
    target = all_targets()["handshake_responder"]
    data = _hello_with(("payload", "challenge"), None)
    # never raises; if it accepted, run_responder checks a 32-byte signed challenge
    execute(target, data)


def test_smsg_non_ascii_checksum_is_a_header_error() -> None:
    """Found by the long smsg_plaintext run: hmac.compare_digest(str, str) raised TypeError
    for a non-ASCII ``checksum`` header (fixed in p2p-transport 7244514: bytes compare)."""
    from p2p.transport import sigil, smsg, trix
    from p2p.transport.errors import SmsgError

    password = smsg.password_for_secret(bytes(32))
    header = '{"checksum":"\u00e9","checksum_algo":"sha256"}'.encode()
    sealed = sigil.seal(sigil.derive_key(password), b'{"body":"x","timestamp":1}')
    frame = trix.encode(b"SMSG", header, sealed)
    with pytest.raises(SmsgError):
        smsg.decrypt(frame, password)


def test_deeply_nested_bundle_json_is_a_format_error() -> None:
    """Found by the bundle_json target: RecursionError escaped json's raw_decode for
    '[' * 100000 (fixed in p2p-controller a61f96b: a BundleFormatError)."""
    import io

    from p2p.controller.bundles import Bundle, read_bundle
    from p2p.controller.errors import BundleFormatError

    with pytest.raises(BundleFormatError):
        Bundle.from_json(b"[" * 100_000)
    with pytest.raises(BundleFormatError):
        read_bundle(io.BytesIO(b"[" * 100_000))


def test_deeply_nested_peers_json_loads_as_corrupt(tmp_path) -> None:
    """Found by probing the fuzz targets with deep nesting: RecursionError escaped
    PeerRegistry() for peers.json and its allowlist sidecar (fixed in p2p-peers a61f96b:
    loads as corrupt, with load_error set and a copy kept)."""
    from p2p.peers import PeerRegistry

    for name in ("peers.json", "peers.json.allowlist.json"):  # the sidecar too
        d = tmp_path / name.replace(".", "-")
        d.mkdir()
        (d / name).write_bytes(b"[" * 100_000)
        registry = PeerRegistry(d / "peers.json", save_delay=3600.0)
        try:
            assert registry.load_error is not None
            assert registry.peers() == []
        finally:
            registry.close()
