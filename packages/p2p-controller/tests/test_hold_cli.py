"""Terminal injection (issue 13, finding 10) and name resolution against learned peers
(finding 6): remote strings never reach the terminal raw, our own names never hold
control characters, and a stranger's claimed name never shadows the operator's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from p2p.controller import NodeConfig, NodeConfigError
from p2p.controller._cli_output import EXIT_USAGE, stats_text, table
from p2p.controller.node import AmbiguousPeerError, resolve_peer
from p2p.identity import KeyPair, NodeManager, NodeRole, node_id_from_public_key
from p2p.peers import Peer, PeerRegistry
from pytest_p2p.cli import run_cli as run

EVIL = "w\x1b]0;pwned\x07\x1b[2J\rforged\nline\u202e\x9b"
RAW = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


@pytest.mark.parametrize(
    "argv",
    [
        ("identity", "init", "--name", "bad\x1bname"),
        ("identity", "init", "--name", "two\nlines"),
        ("peers", "add", "ws://127.0.0.1:1/ws", "--name", "x\u202ey"),
    ],
)
def test_our_own_names_refuse_control_characters(
    tmp_path: Path, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run("--data-dir", str(tmp_path), *argv)
    err += capsys.readouterr().err  # argparse writes usage errors to sys.stderr
    assert code == EXIT_USAGE
    assert "control characters" in err
    assert not any(c in err for c in RAW)
    assert not (tmp_path / "node.json").exists()


def test_serve_name_refuses_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    from p2p.controller.cli import build_parser

    with pytest.raises(SystemExit) as exc:  # parsed only: never starts serving
        build_parser().parse_args(["serve", "--name", "bell\x07", "--listen", "127.0.0.1:0"])
    assert exc.value.code == EXIT_USAGE
    assert "control characters" in capsys.readouterr().err


def test_config_name_refuses_control_characters(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="control characters"):
        NodeConfig(name="n\x1b[0m")
    cfg = tmp_path / "config.toml"
    cfg.write_text('name = "tab\\there"\n')
    with pytest.raises(NodeConfigError, match="control characters"):
        NodeConfig.from_file(cfg)


def test_stats_text_and_tables_escape_remote_strings() -> None:
    stats = {
        "nodeId": "ab\x1bcd" * 20,
        "nodeName": EVIL,
        "uptime": 5,
        "miners": [{"name": EVIL, "type": "x\x07" * 100, "hashrate": "NaN", "uptime": 1e400}],
    }
    text = stats_text("", stats)
    assert not any(c in text for c in RAW)
    assert all(line.isprintable() for line in text.split("\n"))
    assert "\\x1b]0;pwned\\x07" in text
    assert len(text.split("\n")) == 3  # head, table header, one miner row: nothing forged
    assert max(len(line) for line in text.split("\n")) < 400
    assert table(("A",), [(EVIL,)]).count("\n") == 1


async def test_stats_of_a_node_with_a_hostile_name(tmp_path: Path) -> None:
    """A real node whose (Go-written) identity name holds terminal controls: human output
    shows them escaped; --json keeps the exact string."""
    import asyncio

    from p2p.controller import Node

    served = tmp_path / "served"
    NodeManager(served / "node" / "private.key", served / "node.json").generate(
        EVIL, NodeRole.WORKER
    )
    async with Node(served, config=NodeConfig(listen="127.0.0.1:0")) as node:
        address = node.address

        def client(*argv: str) -> tuple[int, str, str]:
            return run("--data-dir", str(tmp_path / "client"), *argv)

        code, out, err = await asyncio.to_thread(client, "stats", address)
        assert code == 0, err
        assert not any(c in out + err for c in RAW), repr(out)
        assert "\\x1b]0;pwned" in out
        code, out, _ = await asyncio.to_thread(client, "stats", address, "--json")
        assert code == 0 and json.loads(out)["nodeName"] == EVIL
        code, out, _ = await asyncio.to_thread(client, "peers", "list")
        assert code == 0 and not any(c in out for c in RAW)


def _peer(name: str) -> Peer:
    pub = KeyPair.generate().public_key_b64
    return Peer(id=node_id_from_public_key(pub), name=name, public_key=pub)


def test_operator_names_win_over_names_strangers_claim(tmp_path: Path) -> None:
    reg = PeerRegistry(tmp_path / "peers.json", save_delay=3600)
    mine = _peer("worker-w")
    reg.add(mine)
    for _ in range(3):
        reg.add(_peer("worker-w"), learned=True)
    assert resolve_peer(reg, "worker-w").id == mine.id
    # without the operator's peer, a name several strangers claim resolves to none
    reg.remove(mine.id)
    with pytest.raises(AmbiguousPeerError):
        resolve_peer(reg, "worker-w")
    # a name exactly one stranger claims still works
    solo = _peer("solo")
    reg.add(solo, learned=True)
    assert resolve_peer(reg, "solo").id == solo.id
    # the id still works for each of them
    for p in reg.peers():
        assert resolve_peer(reg, p.id).id == p.id
    reg.close()


def test_file_sync_keeps_learned_peers_learned(tmp_path: Path) -> None:
    """Another process (a CLI command) writes peers.json and the learned sidecar: serve's
    registry adds learned peers as learned, and adopts one the operator added there."""
    from p2p.controller._filesync import RegistryFileSync

    path = tmp_path / "peers.json"
    serve = PeerRegistry(path, save_delay=3600)
    sync = RegistryFileSync(serve, interval=1.0)
    other = PeerRegistry(path, save_delay=3600)
    stranger, mine = _peer("s1"), _peer("mine")
    other.add(stranger, learned=True)
    other.add(mine)
    other.close()
    assert sync.poll()
    assert serve.is_learned(stranger.id) and not serve.is_learned(mine.id)
    again = PeerRegistry(path, save_delay=3600)
    assert again.is_learned(stranger.id)
    assert again.adopt(stranger.id)  # e.g. `p2p-node peers add` of that peer
    again.close()
    assert sync.poll()
    assert not serve.is_learned(stranger.id)
    serve.close()


def test_max_learned_peers_from_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("max_learned_peers = 7\n")
    assert NodeConfig.from_file(cfg).max_learned_peers == 7
    assert NodeConfig().max_learned_peers == 1000
    for bad in (-1, True, "5", 10**9):
        with pytest.raises(NodeConfigError, match="max_learned_peers"):
            NodeConfig(max_learned_peers=bad)  # type: ignore[arg-type]


def test_peers_list_shows_which_names_are_claimed(tmp_path: Path) -> None:
    reg = PeerRegistry(tmp_path / "peers.json", save_delay=3600)
    reg.add(_peer("mine"))
    reg.add(_peer("claimed"), learned=True)
    reg.close()
    code, out, _ = run("--data-dir", str(tmp_path), "peers", "list")
    assert code == 0
    rows = {line.split()[1]: line.split()[-1] for line in out.splitlines()[1:]}
    assert rows == {"mine": "added", "claimed": "learned"}
    code, out, _ = run("--data-dir", str(tmp_path), "peers", "list", "--json")
    assert {p["name"]: p["learned"] for p in json.loads(out)["peers"]} == {
        "mine": False,
        "claimed": True,
    }


async def test_add_peer_makes_the_peer_the_operators(tmp_path: Path) -> None:
    """Dialling registers the peer as learned (the gate sees every proven peer); `add_peer`
    is the operator's word, so it adopts it. The other side only learned us."""
    from p2p.controller import Node

    async with (
        Node(tmp_path / "a", config=NodeConfig(listen="127.0.0.1:0")) as a,
        Node(tmp_path / "b", config=NodeConfig(listen="127.0.0.1:0")) as b,
    ):
        peer = await a.add_peer(b.address, name="bee")
        assert peer.id == b.id and not a.registry.is_learned(b.id)
        assert resolve_peer(a.registry, "bee").id == b.id
        for _ in range(100):
            if a.id in b.registry:
                break
            await asyncio.sleep(0.05)
        assert b.registry.is_learned(a.id)
