"""Inter-node gRPC over TLS (horae.cluster.tls) with real in-process gRPC servers: which settings talk,
and what a caller whose setting differs from the server's is told."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from horae.cluster import auth
from horae.cluster.rpc import AgentServicer, Directory, RpcClient, RpcServer, ServerInfo
from horae.cluster.state import ClusterState
from horae.cluster.tls import (
    AUTO_TLS_NAME,
    TlsRefusal,
    TlsSetupError,
    auto_tls_material,
    cluster_ca_key,
    rpc_tls,
    speaks_tls,
)
from horae.config import AgentConfig, ConfigError, check_serving
from tests.integration.agent_process import free_port
from tests.pki import make_pki

KEY = auth.new_key()
OTHER_KEY = auth.new_key()
ME = ServerInfo("c1", "", "")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def settings(kind: str, pki) -> object:
    """The RpcTls of a node set up as `kind`."""
    return {
        "plain": None,
        "files": rpc_tls(str(pki.server_cert), str(pki.server_key), str(pki.ca)),
        "files-no-ca": rpc_tls(str(pki.server_cert), str(pki.server_key)),  # trusts its own certificate
        "ca-only": rpc_tls(ca_file=str(pki.ca)),  # a client agent
        "auto": auto_tls_material(KEY),
        "auto-other-key": auto_tls_material(OTHER_KEY),
    }[kind]


async def hello(server_tls, client_tls) -> None:
    address = f"127.0.0.1:{free_port()}"
    directory = Directory(ServerInfo("s1", "127.0.0.1:1", address), ClusterState())
    server = RpcServer(AgentServicer(directory, RpcClient()), address, tls=server_tls)
    await server.start()
    client = RpcClient(tls=client_tls)
    try:
        view = await client.hello(address, ME, timeout=5.0)
        assert [s.node_name for s in view.servers] == ["s1"]
    finally:
        await client.close()
        await server.stop()


@pytest.mark.parametrize(
    ("server", "client"),
    [("files", "files"), ("files", "ca-only"), ("files", "files-no-ca"), ("auto", "auto"), ("plain", "plain")],
)
async def test_nodes_with_matching_settings_talk(pki, server: str, client: str) -> None:
    await hello(settings(server, pki), settings(client, pki))


@pytest.mark.parametrize(
    ("server", "client", "reason"),
    [
        ("files", "plain", "serves inter-node gRPC over TLS but this node has no TLS setting"),
        ("auto", "plain", "serves inter-node gRPC over TLS but this node has no TLS setting"),
        ("plain", "files", "serves inter-node gRPC without TLS but this node uses TLS (--cert-file/--ca-file)"),
        ("plain", "auto", "serves inter-node gRPC without TLS but this node uses TLS (--auto-tls)"),
        (
            "auto",
            "auto-other-key",
            "not from this cluster's auto-TLS CA; start every node with --auto-tls and the same",
        ),
        ("files", "auto", "not from this cluster's auto-TLS CA"),
        ("auto", "files", "does not chain to --ca-file"),
    ],
)
async def test_a_caller_whose_setting_differs_is_told_why_once(
    pki, server: str, client: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(TlsRefusal) as raised:
        await hello(settings(server, pki), settings(client, pki))
    assert reason in raised.value.details()
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED  # formation stops at once, as for a wrong key
    logged = [r for r in caplog.records if r.getMessage() == "inter-node TLS mismatch"]
    assert len(logged) == 1 and reason in logged[0].fields["reason"]


async def test_an_unreachable_server_is_not_called_a_tls_mismatch() -> None:
    client = RpcClient(tls=auto_tls_material(KEY))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.hello(f"127.0.0.1:{free_port()}", ME, timeout=2.0)
    finally:
        await client.close()
    assert not isinstance(raised.value, TlsRefusal)
    assert await speaks_tls(f"127.0.0.1:{free_port()}") is None


def test_every_node_derives_the_same_ca_from_the_key_and_another_key_gives_another() -> None:
    def public(key: str) -> int:
        return cluster_ca_key(key).public_key().public_numbers().x

    assert public(KEY) == public(KEY)
    assert public(KEY) != public(OTHER_KEY)
    first, second = auto_tls_material(KEY), auto_tls_material(KEY)
    assert first.key_pem != second.key_pem, "each node makes a fresh key at start"
    assert first.mutual and first.target_name == AUTO_TLS_NAME


def test_unusable_files_are_refused_naming_the_flag(pki, tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError, match=r"ca-file .*missing\.pem: cannot read it"):
        rpc_tls(str(pki.server_cert), str(pki.server_key), str(tmp_path / "missing.pem"))
    with pytest.raises(TlsSetupError, match=r"key-file .*: is not an unencrypted PEM private key"):
        rpc_tls(str(pki.server_cert), str(pki.server_cert))
    with pytest.raises(TlsSetupError, match=r"cert-file .*: holds no PEM certificate"):
        rpc_tls(str(pki.server_key), str(pki.server_key))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"auto_tls": True}, "auto-tls needs --encrypt"),
        ({"auto_tls": True, "encrypt": KEY, "ca_file": "ca.pem"}, "ca-file and auto-tls both set"),
        ({"server": True, "ca_file": "ca.pem"}, "ca-file is set but cert-file is not"),
    ],
)
def test_contradictory_tls_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_serving(AgentConfig(**changes))


def test_consistent_tls_settings_pass() -> None:
    check_serving(AgentConfig(auto_tls=True, encrypt=KEY))
    check_serving(AgentConfig(ca_file="ca.pem"))  # a client agent that checks the servers' certificates
    check_serving(AgentConfig(server=True, cert_file="c.pem", key_file="k.pem", ca_file="ca.pem"))
