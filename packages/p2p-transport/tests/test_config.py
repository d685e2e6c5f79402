"""TransportConfig: the reference's defaults, our additions, validation."""

from __future__ import annotations

import pytest
from p2p.transport.config import ConfigError, TransportConfig, parse_listen_addr


def test_reference_defaults(golden: dict) -> None:
    go = golden["messages"]["constants"]["DefaultTransportConfig"]
    cfg = TransportConfig()
    assert cfg.listen_host == "0.0.0.0" and cfg.listen_port == 9091
    assert cfg.listen_addr == "0.0.0.0:9091"
    assert go["ListenAddr"] == ":9091" and parse_listen_addr(go["ListenAddr"]) == ("0.0.0.0", 9091)
    assert cfg.ws_path == go["WSPath"] == "/ws"
    assert cfg.max_conns == go["MaxConns"] == 100
    assert cfg.max_message_size == go["MaxMessageSize"] == 1 << 20
    assert cfg.ping_interval == 30.0 and go["PingInterval"] == "30s"
    assert cfg.pong_timeout == 10.0 and go["PongTimeout"] == "10s"
    assert cfg.handshake_timeout == 10.0 and cfg.send_timeout == 10.0
    assert cfg.idle_timeout == 40.0
    assert (cfg.rate_burst, cfg.rate_refill_per_s) == (100, 50.0)
    assert cfg.dedup_ttl == 300.0 and cfg.ts_window == 300.0
    assert cfg.tls_cert_path is None and not cfg.tls_enabled
    assert cfg.features == ()


def test_listen_addr_forms() -> None:
    assert TransportConfig(listen_addr="127.0.0.1:0").listen_port == 0
    cfg = TransportConfig(listen_addr="[::1]:8080")
    assert (cfg.listen_host, cfg.listen_port, cfg.listen_addr) == ("::1", 8080, "[::1]:8080")
    assert TransportConfig(listen_host="127.0.0.1", listen_port=5).listen_addr == "127.0.0.1:5"
    moved = TransportConfig(listen_addr="127.0.0.1:1").replace(listen_port=2)
    assert moved.listen_addr == "127.0.0.1:2"


@pytest.mark.parametrize(
    "changes",
    [
        {"ping_interval": 0},
        {"pong_timeout": -1.0},
        {"handshake_timeout": float("nan")},
        {"send_timeout": float("inf")},
        {"max_conns": 0},
        {"max_message_size": 0},
        {"max_message_size": True},
        {"rate_burst": -5},
        {"rate_refill_per_s": 0.0},
        {"dedup_ttl": 0},
        {"dedup_max_entries": 0},
        {"ts_window": 0},
        {"max_handshakes_per_ip": 0},
        {"handler_concurrency": 0},
        {"max_undecryptable_in_a_row": 0},
        {"max_handshake_message_size": 0},
        {"ws_path": "ws"},
        {"listen_port": 70000},
        {"listen_addr": "nonsense"},
        {"tls_cert_path": "/x.pem"},
        {"features": ("",)},
        {"handshake_turn_budget": -0.001},
        {"handshake_turn_budget": 2.0},
        {"handshake_turn_budget": True},
        {"handshake_turn_budget": float("nan")},
        {"handshake_turn_budget": "5ms"},
    ],
)
def test_rejects_out_of_range(changes: dict) -> None:
    with pytest.raises(ConfigError):
        TransportConfig(**changes)


def test_ts_window_may_be_disabled() -> None:
    assert TransportConfig(ts_window=None).ts_window is None


def test_handshake_pacing_may_be_turned_off() -> None:
    assert TransportConfig().handshake_turn_budget == 0.005
    assert TransportConfig(handshake_turn_budget=0).handshake_turn_budget == 0
