"""The fuzz targets: every parser that reads bytes an untrusted peer or file controls.

Each target feeds one input through the public API and checks two things: the only
exceptions are the package's typed rejections, and the invariants that make the result
trustworthy hold (e.g. an accepted handshake identity is bound to its key, an extracted
bundle wrote nothing outside its directory, a repaired peers.json reloads cleanly).
Fixed key material comes from the golden vectors, so seeds taken from the vectors verify.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from ._harness import Target

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "go-p2p-reference.json"


@cache
def vectors() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(VECTORS.read_text())
    return doc


@cache
def sandbox() -> Path:
    """A per-process scratch directory on tmpfs when there is one (fsync is cheap there)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="p2p-fuzz-", dir=base))


def _fresh_dir(name: str) -> Path:
    d = sandbox() / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


# --- UEPS ---------------------------------------------------------------------------------


def ueps_secret() -> bytes:
    return bytes.fromhex(vectors()["ueps"]["default_secret_hex"])


def _ueps_outcome(mod: Any, data: bytes, secret: bytes) -> tuple[str, Any]:
    from p2p.ueps import UEPSError

    try:
        pkt = mod.read_and_verify(data, secret)
    except UEPSError as exc:
        return ("error", type(exc).__name__)
    h = pkt.header
    fields = (h.version, h.current_layer, h.target_layer, h.intent_id, h.threat_score)
    return ("ok", (fields, bytes(pkt.payload)))


def run_ueps(data: bytes) -> None:
    """read_and_verify on both implementations (they must agree), then FrameReader on the
    same bytes split into ~16 chunks (it must yield what repeated read_and_verify yields)."""
    from p2p.ueps import UEPSError, _pure

    secret = ueps_secret()
    pure = _ueps_outcome(_pure, data, secret)
    try:
        from p2p.ueps import _speedups
    except ImportError:
        _speedups = None
    if _speedups is not None:
        fast = _ueps_outcome(_speedups, data, secret)
        assert fast == pure, f"cython {fast!r} != pure {pure!r}"
    reader = _pure.FrameReader(secret)
    got: list[Any] = []
    failed = False
    step = max(7, len(data) // 16)  # split frames at arbitrary points, without O(n^2)
    for i in range(0, len(data), step):
        try:
            got.extend(reader.feed(data[i : i + step]))
        except UEPSError:
            failed = True
            break
    if not failed:
        assert reader.buffered <= _pure.MAX_FRAME_SIZE
        for pkt in got:
            assert len(pkt.payload) <= 0xFFFF
    if pure[0] == "ok" and got:
        first = got[0]
        h = first.header
        fields = (h.version, h.current_layer, h.target_layer, h.intent_id, h.threat_score)
        assert (fields, bytes(first.payload)) == pure[1], "FrameReader disagrees"
    if pure[0] == "error":
        raise UEPSError(pure[1])


def ueps_target() -> Target:
    from p2p.ueps import UEPSError

    return Target("ueps", run_ueps, (UEPSError,))


# --- SMSG ---------------------------------------------------------------------------------


def smsg_password() -> str:
    return str(vectors()["smsg"]["fixed_nonce_transport_frame"]["password"])


def run_smsg_decrypt(data: bytes) -> None:
    """The whole received frame is attacker-controlled (header, lengths, ciphertext)."""
    from p2p.transport import smsg

    msg = smsg.decrypt(data, smsg_password(), max_frame=1 << 20, max_plaintext=1 << 20)
    assert isinstance(msg.body, str)


def run_smsg_plaintext(data: bytes) -> None:
    """What a peer *holding the key* can send: any header JSON and any plaintext.

    Input layout: ``header_json \\x00 plaintext``; the plaintext is sealed with the real key,
    so decompression, v2 framing and the inner JSON parse are reached.
    """
    from p2p.transport import sigil, smsg, trix
    from p2p.transport.errors import TransportError

    header, _, plain = data.partition(b"\x00")
    try:
        key = sigil.derive_key(smsg_password())
        frame = trix.encode(b"SMSG", header, sigil.seal(key, plain))
    except TransportError:
        return  # not a container we can build (e.g. header too big): nothing to test
    msg = smsg.decrypt(frame, smsg_password(), max_frame=1 << 20, max_plaintext=1 << 20)
    assert len(msg.body.encode("utf-8", "surrogatepass")) <= 1 << 20


def smsg_targets() -> list[Target]:
    from p2p.transport.errors import SmsgError

    return [
        Target("smsg_decrypt", run_smsg_decrypt, (SmsgError,)),
        Target("smsg_plaintext", run_smsg_plaintext, (SmsgError,)),
    ]


# --- Message decode -----------------------------------------------------------------------


def run_message(data: bytes) -> None:
    """Decode like Go, decode the payload by type, and re-encode: encoding what we decoded
    must succeed, and decoding that again must give the same message."""
    from p2p.controller.payloads import PAYLOAD_TYPES
    from p2p.transport.messages import Message, MessageError

    msg = Message.from_json(data)
    with contextlib.suppress(MessageError):
        msg.decode_payload(PAYLOAD_TYPES)
    out = msg.to_json()
    again = Message.from_json(out)
    assert again.to_json() == out, "re-encoding is not stable"


def message_target() -> Target:
    from p2p.transport.messages import MessageError

    return Target("message", run_message, (MessageError,), json_aware=True)


# --- handshake ----------------------------------------------------------------------------


@cache
def _wire_parties() -> tuple[Any, Any, Any, Any]:
    """(server identity, server keypair, client identity, client keypair) of the capture."""
    from p2p.identity import KeyPair, NodeIdentity

    wc = vectors()["wire_capture"]
    frames = wc["capture"]["frames"]
    hello = json.loads(next(f["payload_text"] for f in frames if f.get("opcode") == 1))
    ack = json.loads([f["payload_text"] for f in frames if f.get("opcode") == 1][1])
    skp = KeyPair.from_private_bytes(bytes.fromhex(wc["server_identity"]["private_key_hex"]))
    ckp = KeyPair.from_private_bytes(bytes.fromhex(wc["client_identity"]["private_key_hex"]))
    sid = NodeIdentity.from_json(json.dumps(ack["payload"]["identity"]))
    cid = NodeIdentity.from_json(json.dumps(hello["payload"]["identity"]))
    return sid, skp, cid, ckp


def capture_challenge() -> bytes:
    frames = vectors()["wire_capture"]["capture"]["frames"]
    hello = json.loads(next(f["payload_text"] for f in frames if f.get("opcode") == 1))
    return base64.b64decode(hello["payload"]["challenge"])


def run_responder(data: bytes) -> None:
    """The responder never raises; an accepted peer is bound to its key and allowed."""
    from p2p.identity import node_id_from_public_key
    from p2p.transport.handshake import HandshakeResponder
    from p2p.transport.messages import HandshakeAckPayload, Message

    sid, skp, cid, _ckp = _wire_parties()
    allowed_keys = {cid.public_key}
    responder = HandshakeResponder(
        sid, skp.derive_shared_secret, lambda _id, key: key in allowed_keys
    )
    decision = responder.receive_hello(data)
    if decision.result is not None:
        peer = decision.result.peer
        assert peer.id == node_id_from_public_key(peer.public_key), "unbound identity accepted"
        assert peer.public_key in allowed_keys, "gate bypassed"
        assert decision.reply is not None
        ack = HandshakeAckPayload.from_json(decision.reply.payload)
        assert ack.accepted and len(ack.challenge_response) == 32
    elif decision.reply is not None:
        reply = Message.from_json(decision.reply.to_json())
        assert not HandshakeAckPayload.from_json(reply.payload).accepted


def run_initiator(data: bytes) -> None:
    """The initiator (pinned to the capture's server key) only raises HandshakeError and
    only accepts the pinned key with a correct challenge response."""
    from p2p.transport.handshake import HandshakeInitiator

    sid, _skp, cid, ckp = _wire_parties()
    initiator = HandshakeInitiator(
        cid,
        ckp.derive_shared_secret,
        expected_public_key=sid.public_key,
        challenge=capture_challenge(),
    )
    initiator.hello()
    result = initiator.receive_ack(data)
    assert result.peer.public_key == sid.public_key, "pinning bypassed"


# protocol 1.1: the capture's parties with 1.1 offered and fixed Noise ephemerals, so the
# seeds (made by make_corpus from the same machines) verify on every run
EPHEMERAL_INIT = bytes(range(1, 33))
EPHEMERAL_RESP = bytes(range(33, 65))


def initiator_1_1() -> Any:
    from p2p.transport.handshake import HandshakeInitiator, with_1_1

    sid, _skp, cid, ckp = _wire_parties()
    return HandshakeInitiator(
        cid,
        ckp.derive_shared_secret,
        expected_public_key=sid.public_key,
        challenge=capture_challenge(),
        features=with_1_1(["ueps/1"]),
        static_key=ckp.private_bytes,
        noise_ephemeral=EPHEMERAL_INIT,
    )


def responder_1_1() -> Any:
    from p2p.transport.handshake import HandshakeResponder, with_1_1

    sid, skp, cid, _ckp = _wire_parties()
    allowed_keys = {cid.public_key}
    return HandshakeResponder(
        sid,
        skp.derive_shared_secret,
        lambda _id, key: key in allowed_keys,
        features=with_1_1(["ueps/1"]),
        static_key=skp.private_bytes,
        noise_ephemeral=EPHEMERAL_RESP,
    )


def run_responder_1_1(data: bytes) -> None:
    """A 1.1-capable responder never raises on any hello; it answers 1.1 only to a hello
    that offers it, and then only names an allowed, bound identity (not yet proven)."""
    from p2p.identity import node_id_from_public_key
    from p2p.transport.handshake import offers_1_1

    responder = responder_1_1()
    decision = responder.receive_hello(data)
    peer = decision.peer
    if peer is not None:
        assert peer.id == node_id_from_public_key(peer.public_key), "unbound identity"
        assert decision.reply is not None
    if decision.awaiting_finish:
        assert decision.result is None, "1.1 peer accepted before message 3"
        assert offers_1_1(json.loads(decision.reply.payload)["features"])  # type: ignore[union-attr]


def run_finish_1_1(data: bytes) -> None:
    """After a genuine hello/ack, any third message: never raises, and an accepted one
    proves the hello's key (only the real initiator's can)."""
    from p2p.transport import envelope

    _sid, _skp, cid, _ckp = _wire_parties()
    initiator, responder = initiator_1_1(), responder_1_1()
    decision = responder.receive_hello(envelope.to_text(initiator.hello()))
    assert decision.awaiting_finish
    final = responder.receive_finish(data)
    if final.result is not None:
        assert final.result.protocol == "1.1"
        assert final.result.peer.public_key == cid.public_key


def run_initiator_1_1(data: bytes) -> None:
    """The 1.1-offering initiator (pinned to the capture's server key) only raises
    HandshakeError; a 1.1 result comes with ciphers and a third message, for the pinned key."""
    initiator = initiator_1_1()
    initiator.hello()
    sid = _wire_parties()[0]
    result = initiator.receive_ack(data)
    assert result.peer.public_key == sid.public_key, "pinning bypassed"
    if result.protocol == "1.1":
        assert result.send is not None and initiator.finish is not None


def handshake_targets() -> list[Target]:
    from p2p.transport.handshake import HandshakeError

    return [
        Target("handshake_responder", run_responder, (), json_aware=True),
        Target("handshake_initiator", run_initiator, (HandshakeError,), json_aware=True),
        Target("handshake_1_1_responder", run_responder_1_1, (), json_aware=True),
        Target("handshake_1_1_initiator", run_initiator_1_1, (HandshakeError,), json_aware=True),
        Target("handshake_1_1_finish", run_finish_1_1, (), json_aware=True),
    ]


# --- bundles ------------------------------------------------------------------------------

BUNDLE_PASSWORD = "fuzz-password"


def _escapes(root: Path, dest: Path) -> list[str]:
    """Paths under ``root`` that are neither ``dest`` nor inside it, and any symlink."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                bad.append(f"symlink {p}")
            if p != dest and dest not in p.parents and p not in dest.parents:
                bad.append(str(p))
    return bad


def run_bundle_tar(data: bytes) -> None:
    """Any tar inside a validly encrypted miner bundle: nothing may land outside dest."""
    from p2p.controller import _stim
    from p2p.controller.bundles import Bundle, extract_miner_bundle

    root = _fresh_dir("tar")
    dest = root / "miners" / "fuzz"
    stim = _stim.encode_stim(b'{"Header":{},"Payload":null}', data, BUNDLE_PASSWORD)
    bundle = Bundle.create("miner", "fuzz", stim)
    try:
        miner, _profile = extract_miner_bundle(bundle, BUNDLE_PASSWORD, dest)
        assert miner.is_file() and dest in miner.parents
    finally:
        bad = _escapes(root, dest)
        assert not bad, f"extraction escaped: {bad[:3]}"


def run_bundle_json(data: bytes) -> None:
    """A received bundle document (deploy payload / bundle file), then extraction."""
    from p2p.controller.bundles import (
        Bundle,
        BundleType,
        extract_miner_bundle,
        extract_profile_bundle,
    )

    bundle = Bundle.from_json(data)
    password = vectors()["bundles"]["bundles"][0]["password"]
    if bundle.type is BundleType.PROFILE:
        extract_profile_bundle(bundle, password)
        return
    root = _fresh_dir("bjson")
    dest = root / "d"
    try:
        extract_miner_bundle(bundle, password, dest)
    finally:
        bad = _escapes(root, dest)
        assert not bad, f"extraction escaped: {bad[:3]}"


def bundle_targets() -> list[Target]:
    from p2p.controller.errors import BundleError

    return [
        Target("bundle_tar", run_bundle_tar, (BundleError,), max_len=64 * 1024),
        Target("bundle_json", run_bundle_json, (BundleError,), json_aware=True),
    ]


# --- files on disk ------------------------------------------------------------------------


def run_peers_load(data: bytes) -> None:
    """Any peers.json: loading never raises; the repaired state saves and reloads cleanly."""
    from p2p.peers import PeerRegistry

    d = _fresh_dir("peers")
    path = d / "peers.json"
    path.write_bytes(data)
    reg = PeerRegistry(path, save_delay=3600.0)
    ids = sorted(p.id for p in reg.peers())
    assert all(isinstance(i, str) for i in ids)
    reg.close()
    again = PeerRegistry(path, save_delay=3600.0)
    try:
        assert again.load_error is None, f"our own save does not reload: {again.load_error}"
        assert sorted(p.id for p in again.peers()) == ids, "peers changed across save/load"
    finally:
        again.close()


def run_identity_load(data: bytes) -> None:
    """Any node.json next to a valid key: a typed error, or an identity bound to the key."""
    from p2p.identity import NodeManager, node_id_from_public_key

    _sid, skp, _cid, _ckp = _wire_parties()
    d = _fresh_dir("identity")
    (d / "private.key").write_bytes(skp.private_bytes)
    (d / "private.key").chmod(0o600)
    (d / "node.json").write_bytes(data)
    manager = NodeManager(d / "private.key", d / "node.json")
    ident = manager.identity
    assert ident is not None
    assert ident.public_key == skp.public_key_b64
    assert ident.id == node_id_from_public_key(ident.public_key)


def file_targets() -> list[Target]:
    from p2p.identity import IdentityError

    return [
        Target("peers_load", run_peers_load, (), json_aware=True),
        Target("identity_load", run_identity_load, (IdentityError,), json_aware=True),
    ]


# --- WebSocket frames (the transport's fast data path) ------------------------------------


def run_ws_frames(data: bytes) -> None:
    """The extension's ``ws_scan`` against websockets' ``Frame.parse`` on any stream: the
    first byte picks the side (bit 0: we are the client, frames unmasked) and the frame
    limit; every payload it returns is the frame websockets parses there, and where it
    stops websockets agrees (needs more, rejects from the header, or a complete frame of
    exactly that length that is not a simple BINARY one)."""
    from p2p.transport.aio import connection
    from websockets.exceptions import PayloadTooBig, ProtocolError
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    codec = connection._codec
    if codec is None or not data:
        return
    masked = not data[0] & 1
    limit = (data[0] >> 1) * 64
    stream = data[1:]
    pos = 0
    while True:
        payloads, stop, why, size = codec.ws_scan(stream, pos, masked, limit, True)
        reader = StreamReader()
        reader.feed_data(stream[pos:])
        reader.feed_eof()

        def parse(reader: StreamReader = reader) -> Frame:
            gen = Frame.parse(reader.read_exact, mask=masked, max_size=limit)
            try:
                while True:
                    next(gen)
            except StopIteration as done:
                frame: Frame = done.value
                return frame

        for payload in payloads or []:
            frame = parse()
            assert (frame.opcode, frame.fin, bytes(frame.data)) == (Opcode.BINARY, True, payload)
        assert len(stream) - pos - len(reader.buffer) == stop - pos, "scan and parse disagree"
        if why == codec.WS_SCAN_END:
            assert stop == len(stream)
            return
        if why == codec.WS_SCAN_MORE:
            assert stop + size > len(stream)
            try:
                parse()
            except EOFError:
                return
            raise AssertionError("websockets parsed a frame the scan called incomplete")
        if why == codec.WS_SCAN_REJECT:
            try:
                parse()
            except (ProtocolError, PayloadTooBig):
                return
            raise AssertionError("websockets accepted a frame the scan rejected")
        assert why == codec.WS_SCAN_OTHER
        before = len(reader.buffer)
        try:
            frame = parse()
        except ProtocolError:  # RSV bits, control frame rules: checked after the payload
            pass
        else:
            assert not (frame.opcode is Opcode.BINARY and frame.fin and not frame.rsv1)
        assert before - len(reader.buffer) == size, "frame length differs"
        pos = stop + size


def ws_frames_target() -> Target:
    return Target("ws_frames", run_ws_frames, ())


def all_targets() -> dict[str, Target]:
    targets = [
        ueps_target(),
        *smsg_targets(),
        message_target(),
        *handshake_targets(),
        *bundle_targets(),
        *file_targets(),
        ws_frames_target(),
    ]
    return {t.name: t for t in targets}


TARGET_NAMES = (
    "ueps",
    "smsg_decrypt",
    "smsg_plaintext",
    "message",
    "handshake_responder",
    "handshake_initiator",
    "handshake_1_1_responder",
    "handshake_1_1_initiator",
    "handshake_1_1_finish",
    "bundle_tar",
    "bundle_json",
    "peers_load",
    "identity_load",
    "ws_frames",
)
