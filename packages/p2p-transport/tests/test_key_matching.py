"""Go's key → struct field matching in the envelope, the payloads and the SMSG body.

All three decode through ``p2p.identity.gojson.GoFields``; the expected answers are what
Go's ``json.Unmarshal`` does (exact name, else ``foldName``: Kelvin sign ~ k, long s ~ s,
U+0130/U+0131/ligatures fold to themselves; the last duplicate wins; unknown keys ignored).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.transport import sigil, smsg, trix
from p2p.transport.messages import HandshakeAckPayload, Message, PingPayload, PongPayload

KELVIN = "\u212a"
LONG_S = "\u017f"
TS = "2026-04-04T10:00:00.12+01:00"
PW = "l3CwhNy/RF0aHxGYLk5wffBe1MNCPEqOej6a2h1g5N4="


def _msg(*members: tuple[str, str]) -> Message:
    return Message.from_json("{" + ",".join(f'"{k}":{v}' for k, v in members) + "}")


@pytest.mark.parametrize(
    ("key", "filled"),
    [
        ("id", True),
        ("ID", True),
        ("Id", True),
        ("\u0131d", False),  # dotless i: Go folds it to itself (the old decoder filled id)
        ("\u0130D", False),  # capital I with dot above
        ("\uff49\uff44", False),  # fullwidth
        ("idx", False),
    ],
)
def test_envelope_id_key(key: str, filled: bool) -> None:
    assert _msg((key, '"x"'), ("type", '"ping"')).id == ("x" if filled else "")


def test_envelope_long_s_in_ts_and_case_variants() -> None:
    msg = _msg(("T" + LONG_S, f'"{TS}"'), ("TYPE", '"ping"'), ("REPLYto", '"r"'))
    assert (msg.ts.format(), str(msg.type), msg.reply_to) == (TS, "ping", "r")


def test_envelope_duplicates_last_wins_across_case_and_unknown_ignored() -> None:
    msg = _msg(("id", '"a"'), ("ID", '"b"'), ("iD", '"c"'), ("extra", "[1]"), ("FROM", '"f"'))
    assert (msg.id, msg.from_) == ("c", "f")
    assert _msg(("id", '"a"'), ("Id", "null")).id == "a"  # null leaves a string as it was


def test_payload_keys() -> None:
    assert PingPayload.from_json(f'{{"{LONG_S}ENTAT":5}}').sent_at == 5
    pong = PongPayload.from_json('{"SentAt":1,"receivedat":2,"receivedAt":3,"nope":4}')
    assert (pong.sent_at, pong.received_at) == (1, 3)
    ack = HandshakeAckPayload.from_json('{"ACCEPTED":true,"challengeRe\u017fponse":"AAAA"}')
    assert (ack.accepted, ack.challenge_response) == (True, b"\x00\x00\x00")
    assert PingPayload.from_json('{"\u017f\u0131ntAt":5}').sent_at == 0


def test_nested_identity_keys() -> None:
    pk = "A" * 43 + "="
    ack = HandshakeAckPayload.from_json(
        '{"identity":{"ID":"i","public' + KELVIN + 'ey":"' + pk + '"},"accepted":true}'
    )
    assert (ack.identity.id, ack.identity.public_key) == ("i", pk)


# --- SMSG body -------------------------------------------------------------------------------


def _open(plain: bytes) -> smsg.SmsgMessage:
    header: dict[str, Any] = {"algorithm": "chacha20poly1305", "version": "1.0"}
    frame = trix.encode(b"SMSG", header, sigil.seal(sigil.derive_key(PW), plain))
    return smsg.decrypt(frame, PW)


def test_smsg_keys_follow_go_not_casefold() -> None:
    # Python's casefold maps the ligature ﬆ to "st"; Go folds it to itself: no field
    m = _open('{"body":"b","time\ufb06amp":5}'.encode())
    assert (m.body, m.timestamp) == ("b", 0)
    m = _open(f'{{"{LONG_S}ubject":"s","BODY":"b","TimeStamp":7}}'.encode())
    assert (m.subject, m.body, m.timestamp) == ("s", "b", 7)
    m = _open('{"body":"a","Body":"b","BODY":"c","t\u0130mestamp":9}'.encode())
    assert (m.body, m.timestamp) == ("c", 0)
    assert _open(b'{"body":"x","REPLY_KEY":{"k":1}}').reply_key == {"k": 1}


# --- properties ------------------------------------------------------------------------------

_ENV_KEYS = {"id": "id", "from": "from_", "to": "to", "replyTo": "reply_to"}


@st.composite
def _case_variant(draw: st.DrawFn, name: str) -> str:
    alt = {"s": LONG_S, "k": KELVIN}
    out = []
    for c in name:
        choices = [c.lower(), c.upper()] + ([alt[c.lower()]] if c.lower() in alt else [])
        out.append(draw(st.sampled_from(choices)))
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(sorted(_ENV_KEYS)).flatmap(
            lambda n: st.tuples(st.just(n), _case_variant(n), st.text("abc", max_size=3))
        ),
        max_size=8,
    )
)
def test_envelope_last_variant_wins(members: list[tuple[str, str, str]]) -> None:
    msg = _msg(*((key, f'"{value}"') for _, key, value in members))
    want = dict.fromkeys(_ENV_KEYS.values(), "")
    for name, _, value in members:
        want[_ENV_KEYS[name]] = value
    assert {a: getattr(msg, a) for a in want} == want
