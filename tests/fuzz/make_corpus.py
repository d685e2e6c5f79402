"""Write the seed corpus of every fuzz target from the golden vectors (run from tests/).

    cd tests && python -m fuzz.make_corpus

Seeds are real inputs: Go-made UEPS frames and SMSG containers, the wire capture's
handshake and ack, the messages and bundles of the vectors, peers.json / node.json as the
Go node writes them, plus a few hand-made hostile archives. Existing ``crash-*`` files
(regressions) are never touched.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

from ._harness import CORPUS
from ._targets import _wire_parties, vectors


def _write(target: str, name: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def _make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, content in members:
            tf.addfile(info, io.BytesIO(content) if content is not None else None)
    return buf.getvalue()


def _entry(name: str, content: bytes = b"", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = 0o755
    for k, v in kw.items():
        setattr(info, k, v)
    return info, content


def main() -> None:
    v = vectors()
    # UEPS: valid frames, every "bad" case, two frames in one stream
    for case in v["ueps"]["valid"][:8]:
        _write("ueps", case["name"], bytes.fromhex(case["frame_hex"]))
    for case in v["ueps"]["bad"]:
        if (
            case.get("secret_hex", v["ueps"]["default_secret_hex"])
            == v["ueps"]["default_secret_hex"]
        ):
            _write("ueps", case["name"], bytes.fromhex(case["frame_hex"]))
    _write("ueps", "two_frames", bytes.fromhex(v["ueps"]["two_frames_in_one_stream"]["stream_hex"]))

    # SMSG: the transport frame under the fixed password, the decrypt-error cases
    frame = bytes.fromhex(v["smsg"]["fixed_nonce_transport_frame"]["container_hex"])
    _write("smsg_decrypt", "transport_frame", frame)
    for case in v["smsg"]["decrypt_errors"]:
        _write("smsg_decrypt", case["name"], bytes.fromhex(case["container_hex"]))
    tf = v["smsg"]["fixed_nonce_transport_frame"]
    header = v["smsg"]["header_json"].encode()
    _write("smsg_plaintext", "v1", header + b"\x00" + tf["plaintext_json"].encode())
    inner = json.dumps({"body": tf["message_json"], "timestamp": 1}).encode()
    v2 = len(inner).to_bytes(4, "big") + inner + b"attachment"
    _write("smsg_plaintext", "v2", b'{"format":"v2"}\x00' + v2)
    _write("smsg_plaintext", "gzip", b'{"compression":"gzip"}\x00' + gzip.compress(inner))
    bomb = gzip.compress(b'{"body":"' + b"A" * (4 << 20) + b'"}')
    _write("smsg_plaintext", "gzip_bomb", b'{"compression":"gzip"}\x00' + bomb)
    _write("smsg_plaintext", "checksum", b'{"checksum":"00","checksum_algo":"md5"}\x00' + inner)

    # Messages: every decode case and every reference message
    for case in v["messages"]["decode_cases"]:
        _write("message", case["name"], case["input"].encode())
    for i, m in enumerate(v["messages"]["messages"]):
        _write("message", f"ref-{i:02d}", m["json"].encode())

    # Handshake: the capture's hello (responder) and ack (initiator), plus the reject ack
    frames = v["wire_capture"]["capture"]["frames"]
    texts = [f["payload_text"] for f in frames if f.get("opcode") == 1]
    _write("handshake_responder", "capture_hello", texts[0].encode())
    _write("handshake_initiator", "capture_ack", texts[1].encode())
    reply = v["wire_capture"]["reject_version_2_0"]["server_reply"]
    _write("handshake_initiator", "reject_version", reply.split(" ", 1)[1].encode())
    hello = json.loads(texts[0])
    hello["payload"]["version"] = "2.0"
    _write("handshake_responder", "version_2", json.dumps(hello).encode())

    _write_1_1_seeds()

    # Bundles: every vector bundle document, and hostile archives
    for b in v["bundles"]["bundles"]:
        _write("bundle_json", b["name"].replace("/", "_"), b["bundle_stream_json"].encode())
    from p2p.controller import _tar

    _write("bundle_tar", "go_single", _tar.write_tar([("xmrig", b"\x7fELF...")], mtime=1))
    hostile = [
        ("traversal", [_entry("../evil", b"x")]),
        ("absolute", [_entry("/etc/evil", b"x")]),
        ("nested_traversal", [_entry("a/../../evil", b"x")]),
        (
            "symlink_then_write",
            [_entry("l", type=tarfile.SYMTYPE, linkname="/tmp"), _entry("l/evil", b"x")],
        ),
        (
            "hardlink",
            [_entry("h", type=tarfile.LNKTYPE, linkname="/etc/passwd"), _entry("ok", b"x")],
        ),
        ("dir_and_file", [_entry("bin", type=tarfile.DIRTYPE), _entry("bin/miner", b"x")]),
        ("fifo", [_entry("f", type=tarfile.FIFOTYPE), _entry("ok", b"x")]),
        ("dup_names", [_entry("m", b"1"), _entry("m", b"2")]),
        ("long_name", [_entry("d/" * 80 + "m", b"x")]),
    ]
    for name, members in hostile:
        for fmt, tag in ((tarfile.PAX_FORMAT, "pax"), (tarfile.GNU_FORMAT, "gnu")):
            try:
                _write("bundle_tar", f"{name}_{tag}", _make_tar(members, fmt))
            except ValueError:
                continue

    # peers.json as Go writes it, an empty registry ("null"), a null element
    peers = []
    for p in v["peer_selection"]["peers"][:3]:
        peers.append(
            {
                "id": p["id"],
                "name": p["name"],
                "publicKey": "",
                "address": "127.0.0.1:9091",
                "role": "worker",
                "addedAt": "2026-01-02T03:04:05.123456789Z",
                "lastSeen": "0001-01-01T00:00:00Z",
                "pingMs": p["pingMs"],
                "hops": p["hops"],
                "geoKm": p["geoKm"],
                "score": p["scoreInput"],
            }
        )
    _write("peers_load", "go", json.dumps(peers, indent=2).encode())
    _write("peers_load", "null", b"null")
    _write("peers_load", "null_element", json.dumps([None, *peers[:1]]).encode())

    # node.json of the capture's server (its key is the fixed private.key of the target)
    sid, _skp, _cid, _ckp = _wire_parties()
    _write("identity_load", "server", sid.to_json())
    _write(
        "identity_load",
        "go_example",
        v["identity"]["generated_identity_example"]["node_json"].encode(),
    )


def _write_1_1_seeds() -> None:
    """Protocol 1.1: a genuine hello, ack and third message of the capture's parties with
    the targets' fixed ephemerals (so they verify), plus the 1.0 capture hello."""
    from p2p.transport import envelope

    from ._targets import initiator_1_1, responder_1_1

    initiator, responder = initiator_1_1(), responder_1_1()
    hello = envelope.to_text(initiator.hello())
    decision = responder.receive_hello(hello)
    assert decision.reply is not None
    ack = envelope.to_text(decision.reply)
    initiator.receive_ack(ack)
    assert initiator.finish is not None
    _write("handshake_1_1_responder", "hello_1_1", hello.encode())
    _write("handshake_1_1_initiator", "ack_1_1", ack.encode())
    _write("handshake_1_1_finish", "finish_1_1", envelope.to_text(initiator.finish).encode())
    frames = vectors()["wire_capture"]["capture"]["frames"]
    texts = [f["payload_text"] for f in frames if f.get("opcode") == 1]
    _write("handshake_1_1_responder", "capture_hello", texts[0].encode())


def _ws_frame(opcode: int, payload: bytes, masked: bool, fin: bool = True) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = b"\x37\xfa\x21\x3d"
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def write_ws_seeds() -> None:
    """Frame streams as a server (mode byte even) and a client (odd) receives them."""
    for mode, masked in ((0x40, True), (0x41, False)):  # frame limit 32 * 64 = 2048
        side = "server" if masked else "client"
        frames = [
            _ws_frame(2, b"simple", masked),
            _ws_frame(9, b"ping", masked),
            _ws_frame(2, b"x" * 300, masked),
            _ws_frame(1, "text \u2603".encode(), masked),
            _ws_frame(2, b"frag", masked, fin=False),
            _ws_frame(0, b"ment", masked),
            _ws_frame(8, b"\x03\xe8bye", masked),
        ]
        _write("ws_frames", f"{side}_mixed", bytes([mode]) + b"".join(frames))
        _write("ws_frames", f"{side}_partial", bytes([mode]) + b"".join(frames)[:-3])
        _write("ws_frames", f"{side}_oversize", bytes([mode]) + _ws_frame(2, b"o" * 2049, masked))
        _write("ws_frames", f"{side}_wrong_mask", bytes([mode]) + _ws_frame(2, b"m", not masked))


if __name__ == "__main__":
    main()
    write_ws_seeds()
    for d in sorted(Path(CORPUS).iterdir()):
        print(f"{d.name:22} {sum(1 for _ in d.iterdir())} seeds")
