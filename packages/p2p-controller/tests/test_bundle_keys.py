"""Bundle JSON keys decode as Go's json.Unmarshal into ``Bundle`` (via GoFields), and the
CLI's bundle sniff agrees with the decoder about which keys are bundle fields."""

from __future__ import annotations

import base64
import io
import json

import pytest
from p2p.controller import cli
from p2p.controller.bundles import Bundle, BundleType, is_bundle_json, read_bundle

LONG_S = "\u017f"
DATA = b"profile bytes"
B64 = base64.b64encode(DATA).decode()
SUM = Bundle.create(BundleType.PROFILE, "n", DATA).checksum


def _doc(*members: tuple[str, object]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in members) + "}"


def test_case_variants_and_long_s_fill_fields() -> None:
    doc = _doc(("TYPE", "profile"), ("Name", "n"), ("DATA", B64), (f"check{LONG_S}um", SUM))
    b = Bundle.from_json(doc)
    assert (b.type, b.name, b.data, b.checksum) == (BundleType.PROFILE, "n", DATA, SUM)


def test_last_duplicate_wins_in_document_order() -> None:
    """Go wins: the old decoder iterated a dict, so `name, Name, name` gave the `Name`."""
    doc = _doc(("type", "profile"), ("name", "a"), ("Name", "b"), ("name", "c"))
    assert Bundle.from_json(doc).name == "c"
    stream = io.BytesIO((doc + "\n").encode())
    assert read_bundle(stream).name == "c"


def test_null_leaves_a_string_and_empties_data() -> None:
    """Go wins: the old decoder turned `"NAME": null` after `"name": "a"` into ``""``."""
    doc = _doc(("type", "profile"), ("name", "a"), ("NAME", None), ("data", B64), ("Data", None))
    b = Bundle.from_json(doc)
    assert (b.name, b.data) == ("a", b"")


@pytest.mark.parametrize(
    ("keys", "want"),
    [
        (("type", "data", "checksum"), True),
        (("Type", "DATA", "CheckSum"), True),
        (("type", "data", f"check{LONG_S}um"), True),  # Go decodes it into checksum
        (("type", "data", "chec\u212asum"), True),  # Kelvin sign
        (("type", "data"), False),
        (("\u0442ype", "data", "checksum"), False),  # Cyrillic т
    ],
)
def test_sniff_agrees_with_the_decoder(keys: tuple[str, ...], want: bool) -> None:
    doc = dict.fromkeys(keys, "")
    assert is_bundle_json(doc) is want
    raw = json.dumps(doc).encode()
    assert cli._file_kind(raw) == ("bundle" if want else "profile")


def test_unknown_keys_ignored_and_non_objects_are_not_bundles() -> None:
    doc = _doc(("type", "profile"), ("extra", [1, {"name": "x"}]), ("name", "n"))
    assert Bundle.from_json(doc).name == "n"
    assert is_bundle_json(["type", "data", "checksum"]) is False
