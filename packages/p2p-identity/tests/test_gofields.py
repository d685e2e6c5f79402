"""p2p.identity.gojson.GoFields: which struct field Go's json.Unmarshal fills for a key.

The expected answers are Go's (encoding/json decode.go + fold.go, Go 1.21+): exact name,
else ``foldName`` equality (ASCII upper-cased, every other rune to the smallest rune of
its ``unicode.SimpleFold`` orbit), first field in struct order winning.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import NodeIdentity, gojson
from p2p.identity.errors import IdentityFormatError
from p2p.identity.gojson import GoFields, go_fold_key

KELVIN = "\u212a"  # KELVIN SIGN: SimpleFold orbit {K, k, U+212A}
LONG_S = "\u017f"  # LATIN SMALL LETTER LONG S: orbit {S, s, U+017F}

# A struct with the shapes go-p2p uses: camelCase, snake_case, letters k and s.
NAMES = ("id", "publicKey", "sentAt", "reply_key", "timestamp", "kind")
FIELDS = GoFields((n, n) for n in NAMES)


@pytest.mark.parametrize(
    ("key", "want"),
    [
        # exact and ASCII case variants
        ("id", "id"),
        ("ID", "id"),
        ("Id", "id"),
        ("publicKey", "publicKey"),
        ("PUBLICKEY", "publicKey"),
        ("publickey", "publicKey"),
        ("REPLY_KEY", "reply_key"),
        ("TimeStamp", "timestamp"),
        # Kelvin sign and long s fold to k and s (Go: same SimpleFold orbit)
        (f"public{KELVIN}ey", "publicKey"),
        (f"{KELVIN}IND", "kind"),
        (f"{LONG_S}entAt", "sentAt"),
        (f"time{LONG_S}tamp", "timestamp"),
        (f"reply_{KELVIN}ey", "reply_key"),
        # runes whose Python case mapping reaches ASCII but whose Go fold does not
        ("\u0131d", None),  # dotless i: Python upper-cases it to "I", Go folds it to itself
        ("\u0130D", None),  # I with dot: Python lowers it to "i" + U+0307, Go: itself
        ("time\ufb06amp", None),  # ligature st: Python casefolds it to "st", Go: itself
        ("i\u0307d", None),  # i + combining dot above
        ("\uff49\uff44", None),  # fullwidth i d
        ("\u0456d", None),  # Cyrillic i
        ("\u212bind", None),  # ANGSTROM SIGN folds with Å, not with any ASCII letter
        # unknown keys
        ("", None),
        ("idx", None),
        (" id", None),
        ("id\x00", None),
        ("replyKey", None),  # the underscore is part of the name (json v1)
        ("reply-key", None),
        ("sent_at", None),
    ],
)
def test_key_table_matches_go(key: str, want: str | None) -> None:
    assert FIELDS[key] == want


def test_exact_name_first_then_first_folded_field_in_struct_order() -> None:
    fields = GoFields((("ID", "upper"), ("id", "lower"), ("Id", "mixed")))
    assert (fields["ID"], fields["id"], fields["Id"]) == ("upper", "lower", "mixed")
    assert fields["iD"] == "upper"  # no exact match: the first field that folds equal


def test_unknown_keys_are_not_remembered() -> None:
    fields = GoFields([("id", 1)])
    for i in range(100):
        assert fields[f"nope{i}"] is None
        assert fields["ID"] == 1
    assert dict(fields) == {"id": 1}


def test_field_names_must_be_ascii_and_distinct() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        GoFields([("naïve", 1)])
    with pytest.raises(ValueError, match="duplicate"):
        GoFields([("id", 1), ("id", 2)])


def test_only_kelvin_and_long_s_simple_fold_into_ascii() -> None:
    """Independent of our code: Unicode's case folding (Python's casefold is C+F of
    CaseFolding.txt, whose one-rune results are its simple C entries) maps exactly two
    non-ASCII code points to an ASCII letter, the two Go's orbits join with ASCII."""
    into_ascii = set()
    for cp in range(0x80, sys.maxunicode + 1):
        c = chr(cp)
        f = c.casefold()
        if len(f) == 1 and f.isascii():
            into_ascii.add(c)
    assert into_ascii == {KELVIN, LONG_S}
    for c in map(chr, range(0x80, 0x3000)):
        assert go_fold_key(c) == {KELVIN: "k", LONG_S: "s"}.get(c)


# --- decoding through NodeIdentity (identity JSON, node.json) -----------------------------

_PK = "A" * 43 + "="


def test_identity_duplicates_last_wins_nulls_and_unknown_keys() -> None:
    ident = NodeIdentity.from_json('{"id":"a","ID":"b","iD":"c","junk":[1,{"id":"x"}]}')
    assert ident.id == "c"
    assert NodeIdentity.from_json('{"name":"a","NAME":null}').name == "a"  # null: no-op
    assert NodeIdentity.from_json('{"Name":"a","name":"b","NAME":"c"}').name == "c"


def test_identity_kelvin_key_fills_public_key() -> None:
    """Go wins: the old identity decoder matched non-ASCII keys to nothing."""
    ident = NodeIdentity.from_json('{"public' + KELVIN + 'ey":"' + _PK + '","ROLE":"worker"}')
    assert (ident.public_key, ident.role) == (_PK, "worker")
    assert NodeIdentity.from_json('{"\u0131d":"x"}').id == ""  # dotless i is not i


def test_identity_wrong_type_through_folded_key_is_an_error() -> None:
    with pytest.raises(IdentityFormatError):
        NodeIdentity.from_json('{"publicKEY":1}')


# --- properties ------------------------------------------------------------------------------

_flip = {"k": ["k", "K", KELVIN], "K": ["k", "K", KELVIN], "s": ["s", "S", LONG_S]}
_flip["S"] = _flip["s"]


@st.composite
def _variant(draw: st.DrawFn, name: str) -> str:
    out = []
    for c in name:
        if c in _flip:
            out.append(draw(st.sampled_from(_flip[c])))
        elif c.isalpha():
            out.append(draw(st.sampled_from([c.lower(), c.upper()])))
        else:
            out.append(c)
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(n), _variant(n))))
def test_any_case_variant_fills_its_field(pair: tuple[str, str]) -> None:
    name, key = pair
    assert FIELDS[key] == name


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=12))
def test_a_key_matches_iff_its_fold_is_a_fold_of_a_name(key: str) -> None:
    folded = go_fold_key(key)
    assert folded is None or folded.isascii()
    by_fold = {n.lower(): n for n in NAMES}
    assert FIELDS[key] == (None if folded is None else by_fold.get(folded))
    other = set(key) - {KELVIN, LONG_S}
    if not all(c.isascii() for c in other):
        assert FIELDS[key] is None  # any other non-ASCII rune: no ASCII name in Go


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["id", "ID", "Id", "name", "NAME", "x"]), st.text(max_size=4)),
        max_size=8,
    )
)
def test_identity_last_duplicate_wins_in_document_order(members: list[tuple[str, str]]) -> None:
    doc = "{" + ",".join(f"{gojson.go_quote(k)}:{gojson.go_quote(v)}" for k, v in members) + "}"
    ident = NodeIdentity.from_json(doc)
    want = {"id": "", "name": ""}
    for k, v in members:
        if k.lower() in want:
            want[k.lower()] = gojson.go_fix_string(v)
    assert (ident.id, ident.name) == (want["id"], want["name"])
