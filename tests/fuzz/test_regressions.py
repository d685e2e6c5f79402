"""Inputs the fuzzers found that crashed a target: each one is a regression test.

Fixed ones also live in ``corpus/<target>/crash-*`` (replayed by ``test_corpus_replays``);
ones whose fix belongs to another package are ``xfail(strict=True)`` here until fixed, so
the fix turns them into a failure that says "remove the marker".
"""

from __future__ import annotations

import json

import pytest

from ._harness import execute, load_corpus, mutate_json_field
from ._targets import all_targets


def _hello_with(path: tuple[str, ...], value: object) -> bytes:
    hello = json.loads(load_corpus("handshake_responder")[0])
    return mutate_json_field(hello, path, value)


@pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason='p2p.transport: HandshakePayload decodes "challenge": null to None and '
    "HandshakeResponder.receive_hello calls len(None) (handshake.py:335); Go decodes null "
    "into an empty []byte. Found by test_handshake_every_field_mutated.",
)
def test_handshake_null_challenge_is_rejected_not_raised() -> None:
    target = all_targets()["handshake_responder"]
    data = _hello_with(("payload", "challenge"), None)
    # never raises; if it accepted, run_responder checks a 32-byte signed challenge
    execute(target, data)
