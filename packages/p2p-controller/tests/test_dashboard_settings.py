"""The dashboard's knobs: ``[dashboard]`` in config.toml, ``--dashboard [HOST:]PORT``."""

from __future__ import annotations

from pathlib import Path

import pytest
from p2p.controller import NodeConfig, NodeConfigError
from p2p.controller.dashboard.launch import choose_config
from p2p.controller.dashboard.settings import DashboardConfig, parse_dashboard_address


def test_address_defaults_to_loopback() -> None:
    assert parse_dashboard_address("9092") == ("127.0.0.1", 9092)
    assert parse_dashboard_address(":8000") == ("127.0.0.1", 8000)
    assert parse_dashboard_address("0.0.0.0:8000") == ("0.0.0.0", 8000)
    assert parse_dashboard_address("[::1]:8000") == ("::1", 8000)
    for bad in ("http://x:1", "x", "1:99999", ""):
        with pytest.raises(NodeConfigError):
            parse_dashboard_address(bad)


def test_non_loopback_without_tls_warns(tmp_path: Path) -> None:
    assert DashboardConfig().insecure_warning() is None
    assert DashboardConfig(host="127.0.0.5").insecure_warning() is None
    assert DashboardConfig(host="localhost").insecure_warning() is None
    warning = DashboardConfig(host="0.0.0.0").insecure_warning()
    assert warning is not None and "without TLS" in warning
    tls = DashboardConfig(host="0.0.0.0", tls_cert=tmp_path / "c", tls_key=tmp_path / "k")
    assert tls.insecure_warning() is None


def test_the_table_in_config_toml(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'listen = "127.0.0.1:0"\n'
        "[dashboard]\n"
        'listen = "9100"\nread_only = true\nsample_interval = 2\nhistory = 7200\n'
        'tls_cert = "c.pem"\ntls_key = "k.pem"\n',
        encoding="utf-8",
    )
    cfg = NodeConfig.from_file(path)
    d = cfg.dashboard
    assert d is not None
    assert (d.host, d.port, d.read_only, d.sample_interval) == ("127.0.0.1", 9100, True, 2.0)
    assert d.points == 3601
    assert d.tls_cert == tmp_path / "c.pem"
    assert NodeConfig.from_mapping({}).dashboard is None


@pytest.mark.parametrize(
    "table",
    [
        {"nope": 1},
        {"read_only": "yes"},
        {"sample_interval": 0},
        {"sample_interval": True},
        {"history": 1, "sample_interval": 5},
        {"max_peers": 0},
        {"max_upload": 10},
        {"tls_cert": "c.pem"},
        {"listen": "a:b"},
    ],
)
def test_bad_tables_fail_naming_the_key(table: dict[str, object]) -> None:
    with pytest.raises(NodeConfigError, match="dashboard"):
        NodeConfig.from_mapping({"dashboard": table})


def test_flags_over_the_table() -> None:
    assert choose_config(None, None) is None
    on = choose_config(None, "8001")
    assert on is not None and (on.host, on.port) == ("127.0.0.1", 8001)
    table = DashboardConfig(port=9999, sample_interval=1.0)
    both = choose_config(table, "127.0.0.2:8002", read_only=True)
    assert both is not None
    assert (both.host, both.port, both.read_only, both.sample_interval) == (
        "127.0.0.2",
        8002,
        True,
        1.0,
    )
    assert choose_config(table, None) == table


async def test_without_the_extra_the_cli_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from p2p.controller import Node
    from p2p.controller._cli_output import CliError
    from p2p.controller.dashboard.launch import start_dashboard

    monkeypatch.setitem(sys.modules, "p2p.controller.dashboard.server", None)  # as if absent
    async with Node(tmp_path / "n", config=NodeConfig(listen="127.0.0.1:0")) as node:
        with pytest.raises(CliError) as info:
            await start_dashboard(node, DashboardConfig(port=0))
    assert "p2p-controller[dashboard]" in info.value.sentence()


async def test_a_taken_port_is_a_sentence_or_for_the_demo_another_port(tmp_path: Path) -> None:
    import socket

    pytest.importorskip("aiohttp")
    from p2p.controller import Node
    from p2p.controller._cli_output import CliError
    from p2p.controller.dashboard.launch import start_dashboard

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = DashboardConfig(port=port)
        async with Node(tmp_path / "n", config=NodeConfig(listen="127.0.0.1:0")) as node:
            with pytest.raises(CliError, match="cannot listen"):
                await start_dashboard(node, cfg)
            dash = await start_dashboard(node, cfg, fall_back_to_free_port=True)
            try:
                assert dash.port not in (0, port)
                assert dash.url.startswith(f"http://127.0.0.1:{dash.port}/?token=")
            finally:
                await dash.close()
