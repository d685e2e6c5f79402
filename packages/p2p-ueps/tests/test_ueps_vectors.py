"""Every case of the golden vectors' ``ueps`` section, on both implementations."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from p2p import ueps
from p2p.ueps import errors


def _hx(s: str | None) -> bytes:
    return bytes.fromhex(s or "")


def _fields(h: Any) -> dict[str, int]:
    return {
        k: getattr(h, k)
        for k in ("version", "current_layer", "target_layer", "intent_id", "threat_score")
    }


def _expected_error(read: dict[str, Any]) -> type[Exception]:
    e = read.get("error") or ""
    if read.get("panic"):
        return errors.MalformedFrameError
    if "HMAC mismatch" in e:
        return errors.IntegrityError
    if "missing HMAC" in e:
        return errors.MissingSignatureError
    if "EOF" in e:
        return errors.TruncatedFrameError
    raise AssertionError(f"unmapped reference error {e!r}")


def test_valid_cases_build_and_read(impl: ModuleType, golden: dict[str, Any]) -> None:
    cases = golden["ueps"]["valid"]
    assert cases
    for c in cases:
        secret, payload = _hx(c["secret_hex"]), _hx(c["payload_hex"])
        b = impl.PacketBuilder(c["header"]["intent_id"], payload)
        for k, v in c["header"].items():
            setattr(b.header, k, v)
        frame = b.marshal_and_sign(secret)
        assert frame.hex() == c["frame_hex"], c["name"]
        assert impl.build(payload=payload, secret=secret, **c["header"]) == frame
        p = impl.read_and_verify(_hx(c["frame_hex"]), secret)
        assert _fields(p.header) == c["read"]["header"], c["name"]
        assert p.payload == payload


def test_bad_cases_get_reference_verdict(impl: ModuleType, golden: dict[str, Any]) -> None:
    for c in golden["ueps"]["bad"]:
        read, frame, secret = c["read"], _hx(c["frame_hex"]), _hx(c["secret_hex"])
        if read["ok"]:
            p = impl.read_and_verify(frame, secret)
            assert _fields(p.header) == read["header"], c["name"]
            assert p.payload == _hx(read["payload_hex"]), c["name"]
        else:
            with pytest.raises(_expected_error(read)):
                impl.read_and_verify(frame, secret)


def test_builder_errors(impl: ModuleType, golden: dict[str, Any]) -> None:
    for c in golden["ueps"]["builder_errors"]:
        with pytest.raises(errors.ValueTooLargeError, match="too large"):
            impl.PacketBuilder(c["intent"], bytes(c["payload_len"])).marshal_and_sign(b"k" * 32)


@pytest.mark.parametrize("step", [1, 2, 7, 64, 10_000])
def test_two_frames_in_one_stream(impl: ModuleType, golden: dict[str, Any], step: int) -> None:
    t = golden["ueps"]["two_frames_in_one_stream"]
    stream = _hx(t["stream_hex"])
    want = [r for r in t["reads"] if r["ok"]]
    reader = impl.FrameReader(_hx(t["secret_hex"]))
    got = []
    for i in range(0, len(stream), step):
        got.extend(reader.feed(stream[i : i + step]))
    assert [(_fields(g.header), g.payload.hex()) for g in got] == [
        (w["header"], w["payload_hex"]) for w in want
    ]
    assert reader.buffered == 0
    reader.close()  # the reference's third read is EOF at a frame boundary: nothing left


def test_dispatch_verdicts_match_reference(impl: ModuleType, golden: dict[str, Any]) -> None:
    d = ueps.Dispatcher()
    seen: list[int] = []
    for intent in (0x01, 0x20, 0x30, 0xFF):
        d.register(intent, lambda p: seen.append(p.header.intent_id))
    n = 0
    for c in golden["ueps"]["valid"] + golden["ueps"]["bad"]:
        want = c.get("dispatch")
        if not want or not c["read"].get("ok"):
            continue
        p = impl.read_and_verify(_hx(c["frame_hex"]), _hx(c["secret_hex"]))
        n += 1
        if want.get("ok"):
            d.dispatch(p)
            assert seen[-1] == p.header.intent_id
        elif "threat" in want["error"]:
            with pytest.raises(ueps.ThreatScoreExceeded):
                d.dispatch(p)
        else:
            assert "unknown intent" in want["error"]
            with pytest.raises(ueps.UnknownIntent):
                d.dispatch(p)
    assert n >= 20
    assert golden["ueps"]["dispatcher"]["threat_score_threshold"] == ueps.THREAT_SCORE_THRESHOLD
