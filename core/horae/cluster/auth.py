"""The cluster key (`--encrypt`): every inter-node gRPC call carries a credential derived from it.

A caller puts HMAC-SHA256(key, "horae-rpc") in the call's metadata; each server's interceptor checks it
with `hmac.compare_digest` and refuses a missing or wrong one with UNAUTHENTICATED and a message saying
what to fix. A server without a key refuses callers that send one, so a keyed node never half-joins an
open cluster (its Raft traffic, encrypted with the key, would be unreadable there). The key is Dkron's
(Serf's) form: base64 of 16, 24 or 32 random bytes, as `horae keygen` and `dkron keygen` print.

The credential proves that a caller holds the key; without TLS (`tls`: --cert-file or --auto-tls) gRPC is
not encrypted, so it does not hide payloads from, or stop replays by, someone who can read the network (Raft
traffic is encrypted).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from horae.logs import fields

log = logging.getLogger("horae.cluster.auth")

METADATA_KEY = "x-horae-cluster-auth"
KEY_SIZES = (16, 24, 32)
NEW_KEY_BYTES = 32
_CONTEXT = b"horae-rpc"

MISSING_KEY = (
    "no cluster key: this cluster is encrypted; start this node with --encrypt "
    "(or HORAE_ENCRYPT) set to the cluster's key"
)
WRONG_KEY = "wrong cluster key: the --encrypt key of this node does not match the cluster's"
UNEXPECTED_KEY = (
    "this server has no cluster key but the caller sent one: start every node with the same --encrypt key, "
    "or none on all of them"
)


class BadKey(ValueError):
    """The key is not base64 of 16, 24 or 32 bytes."""


def new_key() -> str:
    """A new random key: base64 (standard, padded) of 32 bytes, the form `dkron keygen` prints."""
    return base64.b64encode(os.urandom(NEW_KEY_BYTES)).decode()


def decode_key(text: str) -> bytes:
    """The key's bytes; BadKey says what is wrong without repeating the key."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("is not base64; generate a key with `horae keygen`") from None
    if len(raw) not in KEY_SIZES:
        raise BadKey(
            f"decodes to {len(raw)} bytes; a key is base64 of 16, 24 or 32 bytes (generate one with `horae keygen`)"
        )
    return raw


def token(key: str) -> str:
    """The credential a node holding `key` sends: hex HMAC-SHA256(key bytes, "horae-rpc")."""
    return hmac.new(decode_key(key), _CONTEXT, hashlib.sha256).hexdigest()


def check(expected: str | None, presented: str | None) -> str | None:
    """None when a call with credential `presented` may pass a server expecting `expected`; else why not."""
    if expected is None:
        return UNEXPECTED_KEY if presented else None
    if not presented:
        return MISSING_KEY
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        return WRONG_KEY
    return None


def call_metadata(key_token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata a caller adds to every call (RpcClient does, to unary calls and the Connect stream)."""
    return ((METADATA_KEY, key_token),) if key_token else ()


class ServerAuth(grpc.aio.ServerInterceptor):
    """Refuses calls whose credential does not match this server's key (or that send one when it has none)."""

    def __init__(self, key: str | None) -> None:
        self._expected = token(key) if key else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        presented = dict(details.invocation_metadata or ()).get(METADATA_KEY)
        problem = check(self._expected, presented if isinstance(presented, str) else None)
        handler = await continuation(details)
        if problem is None or handler is None:
            return handler
        log.warning("inter-node call refused", extra=fields(method=details.method, reason=problem))
        return _refusal(handler, problem)


def _refusal(handler: grpc.RpcMethodHandler, problem: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that aborts with UNAUTHENTICATED."""

    async def deny(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny, **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny, **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **codecs)
    return grpc.stream_stream_rpc_method_handler(deny, **codecs)
