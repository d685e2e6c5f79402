"""Who may command this node: a policy keyed by the peer's X25519 public key.

*Who may connect* is the transport's question (auth mode open/allowlist, `PeerGate`).
*Who may command* is this module's: once a peer has completed the handshake, the Worker,
the REHAB handler and anything else that changes state ask ``policy.allows(key, cap)``
before a handler runs. The key is the one the peer proved in the handshake
(``PeerConnection.identity.public_key``), never a claimed node id or name.

Capabilities:

- ``observe``: ``ping``, ``get_stats``;
- ``control``: ``get_logs`` (miner output carries wallets, pools, sometimes credentials),
  ``start_miner``, ``stop_miner``, ``deploy`` (which runs code: a deployed miner is a
  program), REHAB pause/resume. ``control`` implies ``observe``.

Default (`Policy()`): ``control`` to no one, ``observe`` to every connected peer
(``observe = "connected"``); ``observe = "controllers"`` limits stats to controllers.
Config representation, the ``[authorization]`` table of config.toml::

    [authorization]
    controllers = ["<base64 X25519 key>", ...]   # granted control
    observe = "connected"                         # or "controllers"
    allow_replace = ["<key>", ...]                # controllers whose deploys may replace
                                                  # configured miners / existing profiles

Keys come from two places: *fixed* ones (config file, ``serve --controller``,
``Node(controllers=...)``) and *granted* ones (the data dir's ``controllers.json``, which
``p2p-node controllers add|remove`` edit and a running serve re-reads). Revoking a granted
key takes effect at the next request after the policy learns of it.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from p2p.controller.errors import (
    PolicyError,
)

__all__ = [
    "MAX_CONTROLLERS",
    "Capability",
    "ObserveRule",
    "Policy",
    "PolicyError",
    "normalise_key",
    "required_capability",
    "unauthorized_text",
]

#: Most keys one policy holds (fixed and granted together).
MAX_CONTROLLERS = 10_000


class Capability(str, enum.Enum):
    """What a peer may do. ``control`` includes ``observe``."""

    OBSERVE = "observe"
    CONTROL = "control"

    def __str__(self) -> str:
        return self.value


class ObserveRule(str, enum.Enum):
    """Who gets ``observe``: every connected peer, or controllers only."""

    CONNECTED = "connected"
    CONTROLLERS = "controllers"

    def __str__(self) -> str:
        return self.value


_REQUIRED: dict[str, Capability] = {
    "ping": Capability.OBSERVE,
    "get_stats": Capability.OBSERVE,
    "get_logs": Capability.CONTROL,
    "start_miner": Capability.CONTROL,
    "stop_miner": Capability.CONTROL,
    "deploy": Capability.CONTROL,
}


def required_capability(message_type: object) -> Capability | None:
    """The capability a request of `message_type` needs; None for what a worker does not
    serve (replies, handshakes, unknown types)."""
    key = getattr(message_type, "value", message_type)
    return _REQUIRED.get(key) if isinstance(key, str) else None


def normalise_key(text: object) -> str:
    """`text` as canonical padded base64 of a 32-byte X25519 key; `PolicyError` if not one."""
    if not isinstance(text, str) or not 40 <= len(text.strip()) <= 64:
        raise PolicyError(f"{str(text)[:60]!r} is not a base64 X25519 public key")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise PolicyError(f"{text[:60]!r} is not a base64 X25519 public key")
    return base64.b64encode(raw).decode("ascii")


def _keys(values: Iterable[object], what: str) -> frozenset[str]:
    keys = frozenset(normalise_key(v) for v in values)
    if len(keys) > MAX_CONTROLLERS:
        raise PolicyError(f"{what}: more than {MAX_CONTROLLERS} keys")
    return keys


def unauthorized_text(capability: Capability, public_key: str) -> str:
    """The ``message`` of a 1002 error reply (a Go controller shows it after
    ``remote error (1002): ``). Names the key the operator must authorize."""
    return (
        f"unauthorized: this node does not grant {capability} to key {public_key[:64]}; "
        f"its operator can run: p2p-node controllers add {public_key[:64]}"
    )


class Policy:
    """Sans-I/O authorization: which public key may do what (see the module docstring).

    `controllers` are fixed grants of ``control``; `grant`/`revoke`/`set_granted` manage
    the second, mutable set (the controllers file). `allow_replace` names controllers whose
    deploys may replace an operator-configured miner type or an existing profile.
    """

    def __init__(
        self,
        controllers: Iterable[str] = (),
        *,
        observe: ObserveRule | str = ObserveRule.CONNECTED,
        allow_replace: Iterable[str] = (),
    ) -> None:
        self._fixed = _keys(controllers, "controllers")
        self._granted: frozenset[str] = frozenset()
        try:
            self.observe = ObserveRule(observe)
        except ValueError:
            choices = ", ".join(r.value for r in ObserveRule)
            raise PolicyError(f"observe must be one of: {choices}") from None
        self._replace = _keys(allow_replace, "allow_replace")

    # -- questions -------------------------------------------------------------------------

    def allows(self, public_key: str, capability: Capability) -> bool:
        """May the peer that proved `public_key` in the handshake do `capability`?"""
        if not isinstance(public_key, str) or not public_key:
            return False
        if public_key in self._fixed or public_key in self._granted:
            return True
        return capability is Capability.OBSERVE and self.observe is ObserveRule.CONNECTED

    def may_replace(self, public_key: str) -> bool:
        """May this controller's deploys replace configured miners and existing profiles?"""
        return public_key in self._replace and self.allows(public_key, Capability.CONTROL)

    @property
    def controllers(self) -> frozenset[str]:
        """Every key granted ``control`` (fixed and granted)."""
        return self._fixed | self._granted

    @property
    def fixed(self) -> frozenset[str]:
        """Keys from the config / flags / constructor (not changed by the controllers file)."""
        return self._fixed

    @property
    def granted(self) -> frozenset[str]:
        """Keys from the controllers file (or `grant` calls)."""
        return self._granted

    # -- changes ---------------------------------------------------------------------------

    def grant(self, public_key: str) -> str:
        """Grant ``control`` to `public_key` now; returns the canonical key."""
        key = normalise_key(public_key)
        if key not in self._granted:
            if len(self._fixed | self._granted) >= MAX_CONTROLLERS:
                raise PolicyError(f"more than {MAX_CONTROLLERS} controllers")
            self._granted = self._granted | {key}
        return key

    def revoke(self, public_key: str) -> bool:
        """Withdraw a granted key (fixed keys stay: they live in the config); True if it was."""
        key = normalise_key(public_key)
        if key not in self._granted:
            return False
        self._granted = self._granted - {key}
        return True

    def set_granted(self, keys: Iterable[str]) -> None:
        """Replace the granted set (what the controllers file now says)."""
        self._granted = _keys(keys, "controllers file")

    # -- config representation -------------------------------------------------------------

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Policy:
        """A policy from an ``[authorization]`` table (see the module docstring)."""
        if not isinstance(table, Mapping):
            raise PolicyError("[authorization] must be a table")
        unknown = set(table) - {"controllers", "observe", "allow_replace"}
        if unknown:
            raise PolicyError(f"[authorization] unknown keys {sorted(unknown)}")
        lists = {}
        for name in ("controllers", "allow_replace"):
            value = table.get(name, [])
            if not isinstance(value, list):
                raise PolicyError(f"[authorization] {name} must be a list of base64 keys")
            lists[name] = value
        observe = table.get("observe", ObserveRule.CONNECTED.value)
        return cls(lists["controllers"], observe=observe, allow_replace=lists["allow_replace"])

    def to_table(self) -> dict[str, Any]:
        """The ``[authorization]`` table of this policy's fixed part."""
        return {
            "controllers": sorted(self._fixed),
            "observe": self.observe.value,
            "allow_replace": sorted(self._replace),
        }

    def with_controllers(self, keys: Iterable[str]) -> Policy:
        """A copy whose fixed set also holds `keys` (flags and constructor arguments)."""
        copy = Policy([*self._fixed, *keys], observe=self.observe, allow_replace=self._replace)
        copy._granted = self._granted
        return copy

    def __repr__(self) -> str:
        return (
            f"Policy(controllers={len(self.controllers)}, observe={self.observe.value!r}, "
            f"allow_replace={len(self._replace)})"
        )
