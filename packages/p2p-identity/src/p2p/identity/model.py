"""``NodeRole`` and ``NodeIdentity``: the public half of an identity, JSON as Go's.

Go's struct order fixes the key order: id, name, publicKey, createdAt, role (none
omitempty). ``to_json()`` writes node.json's ``MarshalIndent(v, "", "  ")`` form by default
and the compact wire form with ``indent=False``; ``from_json()`` reads with Go's
``json.Unmarshal`` rules, so whatever a Go node writes loads unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from p2p.identity import _gojson
from p2p.identity.errors import IdentityFormatError, IdentityMismatchError
from p2p.identity.gotime import GoTime
from p2p.identity.keys import KeyPair, decode_public_key, node_id_from_public_key

__all__ = ["NodeIdentity", "NodeRole", "check_identity_binding"]

# Bound on the name of an identity we generate (Go sets none; a host name is < 256).
MAX_NAME_LEN = 256


class NodeRole(str, enum.Enum):
    """What a node does. Informational only: nothing in go-p2p gates behaviour on it."""

    CONTROLLER = "controller"
    WORKER = "worker"
    DUAL = "dual"

    def __str__(self) -> str:
        return self.value


def _role(value: object) -> NodeRole | str:
    """A known role as ``NodeRole``; any other string kept as is (Go accepts any)."""
    text = _gojson.as_str("role")(value)
    try:
        return NodeRole(text)
    except ValueError:
        return text


def _time(value: object) -> GoTime:
    if not isinstance(value, str):
        raise IdentityFormatError("cannot unmarshal non-string into field createdAt")
    return GoTime.parse(value)


_FIELDS = _gojson.struct_fields(
    (
        ("id", _gojson.as_str("id")),
        ("name", _gojson.as_str("name")),
        ("publicKey", _gojson.as_str("publicKey")),
        ("createdAt", _time),
        ("role", _role),
    )
)

_WIRE_KEYS = frozenset(("id", "name", "publicKey", "createdAt", "role"))
"""The keys of an identity as Go writes it (``from_dict``'s fast path: exactly these)."""


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """A node's public identity (Go ``NodeIdentity``).

    ``role`` is a :class:`NodeRole` when it is one of the three known values, otherwise the
    string as received (a zero-value identity from Go has ``role == ""``).
    """

    id: str
    name: str
    public_key: str
    created_at: GoTime = field(default_factory=GoTime.zero)
    role: NodeRole | str = NodeRole.DUAL

    @classmethod
    def create(
        cls,
        keypair: KeyPair,
        name: str,
        role: NodeRole | str = NodeRole.DUAL,
        created_at: GoTime | None = None,
    ) -> NodeIdentity:
        """The identity of ``keypair``: id derived from its public key, created now."""
        if len(name) > MAX_NAME_LEN:
            raise IdentityFormatError(f"name longer than {MAX_NAME_LEN} characters")
        try:
            known = NodeRole(role)
        except ValueError:
            raise IdentityFormatError(f"unknown role {str(role)[:32]!r}") from None
        return cls(
            id=keypair.node_id,
            name=name,
            public_key=keypair.public_key_b64,
            created_at=GoTime.now() if created_at is None else created_at,
            role=known,
        )

    # -- JSON ---------------------------------------------------------------------------

    def to_json(self, *, indent: bool = True) -> bytes:
        """UTF-8 JSON as Go writes it: node.json's indented form, or compact for the wire.
        No trailing newline."""
        return _gojson.encode_object(self._encoded_pairs(), indent=indent).encode("utf-8")

    def to_dict(self) -> dict[str, str]:
        """The JSON object as a dict in Go's key order (for embedding in messages)."""
        return {
            "id": self.id,
            "name": self.name,
            "publicKey": self.public_key,
            "createdAt": self.created_at.format(),
            "role": self.role.value if isinstance(self.role, NodeRole) else self.role,
        }

    def _encoded_pairs(self) -> list[tuple[str, str]]:
        return [(k, _gojson.go_quote(v)) for k, v in self.to_dict().items()]

    @classmethod
    def from_json(cls, data: str | bytes) -> NodeIdentity:
        """Parse identity JSON with Go's rules (unknown keys ignored, case-insensitive
        keys, last duplicate wins, missing or null fields → zero values)."""
        return cls._from_doc(_gojson.loads_pairs(data))

    @classmethod
    def from_dict(cls, obj: object) -> NodeIdentity:
        """From an already-parsed JSON value (e.g. a handshake payload's ``identity``), with
        the same rules as :meth:`from_json`; ``None`` gives the zero identity, as in Go."""
        if type(obj) is dict and obj.keys() == _WIRE_KEYS:
            # what every node sends (a hello, an ack): the five keys exactly, all strings.
            # The same fields the general path below sets, without its key matching.
            id_, name, public_key, created, role = (
                obj["id"],
                obj["name"],
                obj["publicKey"],
                obj["createdAt"],
                obj["role"],
            )
            if (
                type(id_) is str
                and type(name) is str
                and type(public_key) is str
                and type(created) is str
                and type(role) is str
            ):
                fix = _gojson.go_fix_string
                return cls(
                    id=fix(id_),
                    name=fix(name),
                    public_key=fix(public_key),
                    created_at=GoTime.parse(created),
                    role=_role(role),
                )
        if isinstance(obj, Mapping):
            obj = _gojson.JsonObject((str(k), v) for k, v in obj.items())
        return cls._from_doc(obj)

    @classmethod
    def _from_doc(cls, doc: object) -> NodeIdentity:
        got = _gojson.decode_struct(doc, _FIELDS, "NodeIdentity")
        created = got.get("createdAt", GoTime.zero())
        role = got.get("role", "")
        assert isinstance(created, GoTime)
        assert isinstance(role, str)
        return cls(
            id=str(got.get("id", "")),
            name=str(got.get("name", "")),
            public_key=str(got.get("publicKey", "")),
            created_at=created,
            role=role,
        )

    # -- checks -------------------------------------------------------------------------

    def public_key_bytes(self) -> bytes:
        """The raw public key (raises ``InvalidPublicKeyError`` if it is not valid)."""
        return decode_public_key(self.public_key)

    def verify_binding(self) -> None:
        """Raise unless ``id`` is derived from ``publicKey`` (:func:`check_identity_binding`)."""
        check_identity_binding(self)


def check_identity_binding(identity: NodeIdentity) -> None:
    """Refuse an identity whose ``id`` is not ``node_id_from_public_key(publicKey)``.

    Go receivers never check this (IDENTITY.md §2), so a peer could claim any ID with its
    own key. Go nodes always send consistent pairs, so checking is wire-compatible.
    Raises :class:`InvalidPublicKeyError` for an undecodable key and
    :class:`IdentityMismatchError` for an ID that does not match.
    """
    expected = node_id_from_public_key(decode_public_key(identity.public_key))
    if identity.id != expected:
        raise IdentityMismatchError(
            f"identity id {identity.id[:64]!r} is not derived from its public key "
            f"(expected {expected})"
        )
