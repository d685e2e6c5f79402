"""The few pieces of Go's ``encoding/json`` behaviour that identity JSON depends on.

Writing: strings quoted by :mod:`p2p.identity.gojson` (the one home of Go quoting);
objects compact or indented. Reading: a struct decoder with Go's rules (keys matched as
:class:`p2p.identity.gojson.GoFields` says; the last duplicate wins; unknown keys
ignored; ``null`` leaves the zero value).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import NoReturn

from p2p.identity.errors import IdentityFormatError
from p2p.identity.gojson import GoFields, go_fix_string, go_quote

__all__ = [
    "JsonObject",
    "as_str",
    "decode_struct",
    "encode_object",
    "go_fix_string",
    "go_quote",
    "loads_pairs",
    "struct_fields",
]

# Bound on any JSON document this package parses (a node.json is ~250 bytes).
MAX_JSON_SIZE = 64 * 1024


def encode_object(pairs: Sequence[tuple[str, str]], *, indent: bool) -> str:
    """A JSON object of already-encoded values, compact or ``MarshalIndent(v, "", "  ")``."""
    if indent:
        body = ",\n".join(f"  {go_quote(k)}: {v}" for k, v in pairs)
        return "{\n" + body + "\n}"
    return "{" + ",".join(f"{go_quote(k)}:{v}" for k, v in pairs) + "}"


class JsonObject(list[tuple[str, object]]):
    """A parsed JSON object: its members as (key, value) pairs, duplicates and order kept."""


def _reject_constant(name: str) -> NoReturn:
    raise IdentityFormatError(f"invalid JSON literal {name}")


def loads_pairs(data: str | bytes) -> object:
    """Parse JSON keeping every object as a list of (key, value) pairs, in order.

    Bytes are UTF-8 with invalid sequences replaced by U+FFFD (as Go does inside strings);
    NaN/Infinity, which Python would accept and Go would not, are rejected.
    """
    if len(data) > MAX_JSON_SIZE:
        raise IdentityFormatError(f"JSON document larger than {MAX_JSON_SIZE} bytes")
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes | bytearray) else data
    try:
        return json.loads(text, object_pairs_hook=JsonObject, parse_constant=_reject_constant)
    except IdentityFormatError:
        raise
    except (ValueError, RecursionError) as e:
        raise IdentityFormatError(f"invalid JSON: {e}") from None


Converter = Callable[[object], object]


def struct_fields(fields: Sequence[tuple[str, Converter]]) -> GoFields[tuple[str, Converter]]:
    """The Go struct for :func:`decode_struct`: (JSON name, converter of a non-null value)
    in struct order."""
    return GoFields((name, (name, conv)) for name, conv in fields)


def decode_struct(
    doc: object, fields: GoFields[tuple[str, Converter]], type_name: str
) -> dict[str, object]:
    """Assign the members of a parsed object (from :func:`loads_pairs`) to Go struct fields
    (from :func:`struct_fields`). Returns the fields that were set, by JSON name; the
    caller supplies zero values for the rest.
    """
    if doc is None:  # json.Unmarshal of `null` into a struct: no error, all zero
        return {}
    if not isinstance(doc, JsonObject):
        raise IdentityFormatError(f"cannot unmarshal {_json_kind(doc)} into {type_name}")
    out: dict[str, object] = {}
    for key, value in doc:
        field = fields[key]
        if field is None or value is None:
            continue
        out[field[0]] = field[1](value)
    return out


def _json_kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "object" if isinstance(v, JsonObject | dict) else "array"


def as_str(field: str) -> Callable[[object], str]:
    """Converter for a Go ``string`` field."""

    def conv(v: object) -> str:
        if not isinstance(v, str):
            raise IdentityFormatError(f"cannot unmarshal {_json_kind(v)} into field {field}")
        return go_fix_string(v)

    return conv
