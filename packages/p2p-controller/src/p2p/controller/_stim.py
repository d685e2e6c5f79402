"""STIM: Borg's encrypted TIM container (config + rootfs), as the deploy bundles carry it.

TRIX framing with magic `STIM` and the ChaCha sigil come from `p2p.transport` (the same
primitives SMSG uses); this module only knows the STIM payload layout:
`u32be len(encConfig) || encConfig || encRootFS`, each part sealed with its own nonce under
K = SHA-256(password). The header values are informative; the reader uses only the prefix,
bounds-checked with plain integers (the reference wraps `4 + size` in 32 bits and panics).
"""

from __future__ import annotations

import json
import logging
import struct

from p2p.controller.errors import BundleDecryptError, PasswordRequiredError, StimFormatError
from p2p.transport import SigilError, TrixError, sigil, trix

__all__ = ["STIM_MAGIC", "decode_stim", "encode_stim"]

log = logging.getLogger(__name__)

STIM_MAGIC = b"STIM"
_U32 = struct.Struct(">I")


def _header(config_size: int, rootfs_size: int) -> bytes:
    """Go's json.Marshal of the TIM header map: sorted keys, compact."""
    return json.dumps(
        {
            "config_size": config_size,
            "encryption_algorithm": "chacha20poly1305",
            "rootfs_size": rootfs_size,
            "tim": True,
            "version": "1.0",
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("ascii")


def encode_stim(
    config: bytes,
    rootfs: bytes,
    password: str,
    *,
    config_nonce: bytes | None = None,
    rootfs_nonce: bytes | None = None,
) -> bytes:
    """Encrypt a TIM (config, rootfs) into STIM bytes a Go node decrypts.

    Nonces are random unless given (fixed nonces exist only for reproducible tests).
    """
    if not password:
        raise PasswordRequiredError()
    key = sigil.derive_key(password)
    enc_config = sigil.seal(key, config, nonce=config_nonce)
    enc_rootfs = sigil.seal(key, rootfs, nonce=rootfs_nonce)
    payload = b"".join((_U32.pack(len(enc_config)), enc_config, enc_rootfs))
    return trix.encode(STIM_MAGIC, _header(len(enc_config), len(enc_rootfs)), payload)


def _framed(data: bytes) -> tuple[bytes, int]:
    """The STIM payload and its config size, framing checked (`StimFormatError`, with the
    reference's error texts)."""
    try:
        payload = trix.decode(data, STIM_MAGIC).payload
    except TrixError as exc:
        raise StimFormatError(f"failed to decode stim: {exc}") from None
    if len(payload) < 4:
        raise StimFormatError("invalid stim payload")
    (config_size,) = _U32.unpack_from(payload, 0)
    if config_size > len(payload) - 4:
        raise StimFormatError(
            f"invalid stim payload: config_size {config_size} exceeds payload {len(payload) - 4}"
        )
    return payload, config_size


def decode_stim(data: bytes, password: str) -> tuple[bytes, bytes]:
    """Decrypt STIM bytes into (config, rootfs), with the reference's error texts."""
    payload, config_size = _framed(data)
    key = sigil.derive_key(password)
    try:
        config = sigil.open(key, payload[4 : 4 + config_size])
        rootfs = sigil.open(key, payload[4 + config_size :])
    except SigilError as exc:
        log.debug("stim decryption failed: %s", exc)
        raise BundleDecryptError("decryption failed (wrong password?)") from None
    return config, rootfs


def check_framing(data: bytes) -> None:
    """The checks `decode_stim` makes before it needs the password (`StimFormatError`)."""
    _framed(data)
