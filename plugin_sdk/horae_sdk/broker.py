"""The plugin side of go-plugin's broker: learn where the host serves callbacks, and dial them.

The host sends `ConnInfo{service_id, network, address}` on `GRPCBroker/StartStream`; an Execute
call names a service id in `status_server`, and the plugin dials that address to send `Update`s.
The ConnInfo and the Execute travel on different HTTP/2 streams, so `dial` waits for it briefly.
Announced ids are kept (the most recent 10,000), so a host may hand one id to many calls
(`Description.reusable_status_servers`, which the SDK sets).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator

import grpc

from horae_sdk.handshake import GRPC_OPTIONS
from horae_sdk.proto.plugin import grpc_broker_pb2, grpc_broker_pb2_grpc

DIAL_TIMEOUT_SECONDS = 5.0
# Hosts that never say goodbye to a service id must not grow this map without bound.
MAX_KNOWN_SERVICES = 10_000
# Hosts reuse their callback servers, but a server they closed leaves a dead address behind:
# keep the most recently used channels only (horae's host has at most 256 servers per plugin).
MAX_CHANNELS = 512


class BrokerError(RuntimeError):
    """The host never said where a callback service lives."""


class Broker(grpc_broker_pb2_grpc.GRPCBrokerServicer):
    def __init__(self, channel_credentials: grpc.ChannelCredentials | None = None) -> None:
        self._credentials = channel_credentials
        self._services: OrderedDict[int, grpc_broker_pb2.ConnInfo] = OrderedDict()
        self._channels: OrderedDict[str, grpc.Channel] = OrderedDict()
        self._changed = threading.Condition()

    def StartStream(self, request_iterator: Iterator[grpc_broker_pb2.ConnInfo], context) -> Iterator:
        for info in request_iterator:
            with self._changed:
                self._services[info.service_id] = info
                while len(self._services) > MAX_KNOWN_SERVICES:
                    self._services.popitem(last=False)
                self._changed.notify_all()
        return iter(())

    def dial(self, service_id: int, timeout: float = DIAL_TIMEOUT_SECONDS) -> grpc.Channel:
        """A channel to the host's service `service_id`; channels are shared per address."""
        with self._changed:
            if not self._changed.wait_for(lambda: service_id in self._services, timeout):
                raise BrokerError(f"the host never announced broker service {service_id} (waited {timeout:g}s)")
            info = self._services[service_id]
            self._services.move_to_end(service_id)  # in use: the last to be evicted
            target = f"unix:{info.address}" if info.network == "unix" else info.address
            channel = self._channels.get(target)
            if channel is None:
                channel = self._open(target)
                self._channels[target] = channel
                while len(self._channels) > MAX_CHANNELS:
                    self._channels.popitem(last=False)[1].close()
            else:
                self._channels.move_to_end(target)
            return channel

    def _open(self, target: str) -> grpc.Channel:
        if self._credentials is None:
            return grpc.insecure_channel(target, options=GRPC_OPTIONS)
        from horae_sdk.tls import TLS_SERVER_NAME

        options = [*GRPC_OPTIONS, ("grpc.ssl_target_name_override", TLS_SERVER_NAME)]
        return grpc.secure_channel(target, self._credentials, options=options)

    def close(self) -> None:
        with self._changed:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
