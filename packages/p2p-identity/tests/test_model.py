"""NodeIdentity JSON with Go's encoding/json rules; NodeRole; identity binding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import (
    GoTime,
    IdentityError,
    IdentityFormatError,
    IdentityMismatchError,
    InvalidPublicKeyError,
    KeyPair,
    NodeIdentity,
    NodeRole,
    check_identity_binding,
)

KP = KeyPair.from_private_bytes(bytes(range(1, 33)))
PUB = "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="
NID = "aaa8fff703b50b2297f4f6e13508f724"
TS = "2025-01-02T03:04:05.000000001+01:00"


def _ident(name: str = "n", role: NodeRole | str = NodeRole.DUAL) -> NodeIdentity:
    return NodeIdentity(NID, name, PUB, GoTime.parse(TS), role)


def test_indented_and_compact_forms() -> None:
    ident = _ident("node-1", NodeRole.CONTROLLER)
    assert ident.to_json() == (
        b'{\n  "id": "aaa8fff703b50b2297f4f6e13508f724",\n  "name": "node-1",\n'
        b'  "publicKey": "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw=",\n'
        b'  "createdAt": "2025-01-02T03:04:05.000000001+01:00",\n  "role": "controller"\n}'
    )
    assert ident.to_json(indent=False) == (
        b'{"id":"aaa8fff703b50b2297f4f6e13508f724","name":"node-1",'
        b'"publicKey":"B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw=",'
        b'"createdAt":"2025-01-02T03:04:05.000000001+01:00","role":"controller"}'
    )
    assert list(ident.to_dict()) == ["id", "name", "publicKey", "createdAt", "role"]
    assert NodeIdentity.from_json(ident.to_json()) == ident
    assert NodeIdentity.from_dict(json.loads(ident.to_json())) == ident


def test_strings_escaped_as_go_does() -> None:
    ident = _ident('a<b>&c\u2028d\u2029 é \x01\x7f\b\f\n\t"\\')
    out = ident.to_json(indent=False)
    assert (
        b'"name":"a\\u003cb\\u003e\\u0026c\\u2028d\\u2029 \xc3\xa9 \\u0001\x7f\\b\\f\\n\\t\\"\\\\"'
        in out
    )
    assert NodeIdentity.from_json(out).name == ident.name


def test_invalid_unicode_becomes_replacement_char() -> None:
    raw = b'{"name":"a\xffb","id":"\\ud800x"}'
    ident = NodeIdentity.from_json(raw)
    assert ident.name == "a\ufffdb"
    assert ident.id == "\ufffdx"
    assert b'"id":"\xef\xbf\xbdx"' in ident.to_json(indent=False)
    lone = _ident("x\udc00y")
    assert b'"name":"x\xef\xbf\xbdy"' in lone.to_json(indent=False)


def test_go_unmarshal_rules() -> None:
    # unknown keys ignored (however nested), keys case-insensitive, last duplicate wins
    doc = (
        '{"extra":{"a":[1,{"b":null}]},"ID":"first","id":"second","NAME":"n",'
        f'"PublicKey":"{PUB}","CREATEDAT":"{TS}","Role":"worker"}}'
    )
    ident = NodeIdentity.from_json(doc)
    assert (ident.id, ident.name, ident.public_key) == ("second", "n", PUB)
    assert ident.created_at.format() == TS
    assert ident.role is NodeRole.WORKER
    # null leaves the field as it was (zero value, or an earlier value)
    ident = NodeIdentity.from_json('{"id":"a","id":null,"createdAt":null,"role":null}')
    assert ident.id == "a" and ident.created_at.is_zero() and ident.role == ""
    # whitespace around the document is fine
    assert NodeIdentity.from_json(' \n{"id":"x"}\t').id == "x"


@pytest.mark.parametrize(
    "doc",
    [
        "",
        "[]",
        '"identity"',
        "5",
        "true",
        '{"id":5}',
        '{"name":true}',
        '{"publicKey":["x"]}',
        '{"role":{}}',
        '{"createdAt":1735787045}',
        '{"createdAt":"2025-01-02 03:04:05Z"}',
        '{"id":"a",}',
        '{"id":"a"} x',
        '{"id":NaN}',
        '{"x":Infinity}',
        '{"id":"a\x01"}',  # raw control character inside a string
        "\ufeff{}",  # BOM
        "[" * 100_000,  # deep nesting beyond the size bound
        '{"name":"' + "x" * 70_000 + '"}',  # over the size bound
    ],
)
def test_rejects_what_go_rejects(doc: str) -> None:
    with pytest.raises(IdentityFormatError):
        NodeIdentity.from_json(doc)


def test_from_dict_of_wrong_shape() -> None:
    with pytest.raises(IdentityFormatError):
        NodeIdentity.from_dict(["not", "an", "object"])
    assert NodeIdentity.from_dict(None) == NodeIdentity.from_json("{}")


def test_unknown_role_is_kept_verbatim() -> None:
    ident = NodeIdentity.from_json('{"role":"observer"}')
    assert ident.role == "observer" and not isinstance(ident.role, NodeRole)
    assert b'"role":"observer"' in ident.to_json(indent=False)


def test_roles() -> None:
    assert [r.value for r in NodeRole] == ["controller", "worker", "dual"]
    assert str(NodeRole.DUAL) == "dual"
    assert NodeRole("worker") is NodeRole.WORKER


def test_create() -> None:
    ident = NodeIdentity.create(KP, "me", "worker")
    assert (ident.id, ident.public_key, ident.role) == (NID, PUB, NodeRole.WORKER)
    assert not ident.created_at.is_zero()
    check_identity_binding(ident)
    with pytest.raises(IdentityFormatError, match="role"):
        NodeIdentity.create(KP, "me", "admin")
    with pytest.raises(IdentityFormatError, match="name"):
        NodeIdentity.create(KP, "x" * 257)


def test_binding() -> None:
    good = _ident()
    good.verify_binding()
    check_identity_binding(good)
    assert good.public_key_bytes() == KP.public_bytes
    other = KeyPair.generate()
    stolen_id = NodeIdentity(NID, "evil", other.public_key_b64)  # claims A's id, own key
    with pytest.raises(IdentityMismatchError, match="not derived"):
        check_identity_binding(stolen_id)
    with pytest.raises(IdentityMismatchError):
        stolen_id.verify_binding()
    upper = NodeIdentity(NID.upper(), "n", PUB)
    with pytest.raises(IdentityMismatchError):
        upper.verify_binding()
    with pytest.raises(InvalidPublicKeyError):
        NodeIdentity(NID, "n", "not a key").verify_binding()
    with pytest.raises(InvalidPublicKeyError):
        NodeIdentity.from_json("{}").verify_binding()


_text = st.text(max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    _text,
    _text,
    _text,
    st.integers(min_value=-62_135_596_800, max_value=253_402_300_799),
    st.integers(min_value=0, max_value=999_999_999),
    st.sampled_from([*NodeRole, "", "x"]),
    st.booleans(),
)
def test_json_round_trip(
    nid: str, name: str, pub: str, sec: int, ns: int, role: NodeRole | str, indent: bool
) -> None:
    ident = NodeIdentity(nid, name, pub, GoTime(sec, ns, 0), role)
    data = ident.to_json(indent=indent)
    back = NodeIdentity.from_json(data)

    def go(s: str) -> str:  # a Go string cannot hold lone surrogates: each becomes U+FFFD
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)

    assert (back.id, back.name, back.public_key) == (go(nid), go(name), go(pub))
    assert back.created_at == ident.created_at and back.role == ident.role
    assert back.to_json(indent=indent) == data  # stable after one pass
    # and the standard library reads the same strings (it is valid JSON)
    assert json.loads(data)["createdAt"] == ident.created_at.format()


def _go_encode_reference(s: str) -> str:
    """Go's encodeState.string, character by character (escapeHTML on, Go >= 1.22)."""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
    short["\t"] = "\\t"
    out = []
    for c in s:
        o = ord(c)
        if c in short:
            out.append(short[c])
        elif o < 0x20 or c in "<>&" or c in "\u2028\u2029":
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=30)
    | st.lists(st.integers(0, 0x10FFFF), max_size=30).map(lambda cs: "".join(map(chr, cs)))
    | st.lists(st.sampled_from('"\\<>&\b\f\n\r\t\x00\x1f\x7f\u2028\u2029\ud800\udfff a\u00e9')).map(
        "".join
    )
)
def test_string_encoding_matches_go(s: str) -> None:
    ident = NodeIdentity("i", s, "p", GoTime.zero(), "r")
    expected = '{"id":"i","name":' + _go_encode_reference(s) + ","
    assert ident.to_json(indent=False).decode("utf-8").startswith(expected)


_wire_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": _wire_text,
            "name": _wire_text,  # lone surrogates included: both paths make them U+FFFD
            "publicKey": _wire_text,
            "createdAt": st.sampled_from(
                [
                    "2026-12-03T06:09:52.123456789Z",
                    "0001-01-01T00:00:00Z",
                    "2025-01-02T03:04:05+05:30",
                    "not a time",
                ]
            ),
            "role": st.one_of(st.sampled_from(["controller", "worker", "dual", ""]), _wire_text),
        }
    )
)
def test_from_dict_fast_path_is_the_general_path(doc: dict[str, str]) -> None:
    """What every node sends (exactly the five keys, all strings) skips the general key
    matching: it must give what that path gives, or the same error."""
    from p2p.identity import _gojson

    def general() -> NodeIdentity:
        return NodeIdentity._from_doc(_gojson.JsonObject(doc.items()))

    try:
        expected = general()
    except IdentityError as exc:
        with pytest.raises(type(exc)):
            NodeIdentity.from_dict(doc)
        return
    got = NodeIdentity.from_dict(doc)
    assert got == expected
    assert type(got.role) is type(expected.role)
