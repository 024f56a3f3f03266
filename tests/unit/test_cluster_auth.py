"""The cluster key (`--encrypt`): key format, the derived credential, and the check on a real gRPC server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import grpc
import pytest

from horae.cluster import auth
from horae.cluster.rpc import RpcClient, ServerInfo
from horae.config import ConfigError, Layer, build_config
from horae_sdk.proto.horae.agent.v1 import agent_pb2, agent_pb2_grpc

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()


def test_new_key_is_base64_of_32_bytes_like_dkron_keygen() -> None:
    key = auth.new_key()
    assert len(base64.b64decode(key, validate=True)) == 32
    assert len(key) == 44 and key.endswith("=")
    assert auth.new_key() != key


@pytest.mark.parametrize("size", [16, 24, 32])
def test_keys_of_serf_sizes_are_accepted(size: int) -> None:
    assert auth.decode_key(base64.b64encode(b"k" * size).decode()) == b"k" * size


@pytest.mark.parametrize(
    ("text", "problem"),
    [("not base64!", "not base64"), (base64.b64encode(b"short").decode(), "decodes to 5 bytes"), ("", "0 bytes")],
)
def test_bad_keys_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(auth.BadKey, match=problem):
        auth.decode_key(text)


def test_token_is_hmac_sha256_of_the_key_bytes() -> None:
    expected = hmac.new(bytes(range(32)), b"horae-rpc", hashlib.sha256).hexdigest()
    assert auth.token(KEY) == expected
    assert auth.token(OTHER_KEY) != expected


def test_check_refuses_missing_wrong_and_unexpected_credentials() -> None:
    expected = auth.token(KEY)
    assert auth.check(expected, expected) is None
    assert auth.check(expected, None) == auth.MISSING_KEY
    assert auth.check(expected, auth.token(OTHER_KEY)) == auth.WRONG_KEY
    assert auth.check(None, expected) == auth.UNEXPECTED_KEY
    assert auth.check(None, None) is None


def test_a_bad_encrypt_setting_is_a_config_error_that_names_it_and_hides_the_value() -> None:
    layer = Layer("environment", labels={"encrypt": "environment variable HORAE_ENCRYPT"})
    layer.set("encrypt", "c2VjcmV0", spelling="HORAE_ENCRYPT")  # "secret": 6 bytes
    with pytest.raises(ConfigError) as raised:
        build_config([layer])
    message = str(raised.value)
    assert "HORAE_ENCRYPT" in message and "setting encrypt" in message and "6 bytes" in message
    assert "c2VjcmV0" not in message
    good = Layer("flags")
    good.set("encrypt", KEY, spelling="--encrypt")
    assert build_config([good]).encrypt == KEY


class _Servers(agent_pb2_grpc.AgentServicer):
    async def Hello(self, request, context):
        return agent_pb2.ClusterView(servers=[request], formed=True)


async def _serve(key: str | None) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=[auth.ServerAuth(key)])
    agent_pb2_grpc.add_AgentServicer_to_server(_Servers(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


ME = ServerInfo("n1", "127.0.0.1:1", "127.0.0.1:2")


@pytest.mark.parametrize(
    ("server_key", "client_key", "message"),
    [
        (KEY, None, auth.MISSING_KEY),
        (KEY, OTHER_KEY, auth.WRONG_KEY),
        (None, KEY, auth.UNEXPECTED_KEY),
    ],
)
async def test_a_real_server_refuses_a_caller_without_the_right_key(
    server_key: str | None, client_key: str | None, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, address = await _serve(server_key)
    client = RpcClient(key=client_key)
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.hello(address, ME)
        with pytest.raises(grpc.aio.AioRpcError):
            await client.hello(address, ME)
    finally:
        await client.close()
        await server.stop(None)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == message
    server_side = [r for r in caplog.records if r.getMessage() == "inter-node call refused"]
    assert server_side and server_side[0].fields["method"] == "/horae.agent.v1.Agent/Hello"
    client_side = [r for r in caplog.records if r.getMessage() == "refused by server: cluster key does not match"]
    assert len(client_side) == 1, "the caller says so once per server and reason, as an error"
    assert client_side[0].levelno == logging.ERROR
    assert client_side[0].fields == {"server": address, "reason": message}


@pytest.mark.parametrize("key", [KEY, None])
async def test_a_real_server_answers_a_caller_with_the_same_key(key: str | None) -> None:
    server, address = await _serve(key)
    client = RpcClient(key=key)
    try:
        view = await client.hello(address, ME)
    finally:
        await client.close()
        await server.stop(None)
    assert view.formed and view.servers == [ME]
