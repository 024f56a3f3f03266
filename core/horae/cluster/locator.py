"""How a client agent finds the leader: ask the servers it knows (`--join`, then any it has heard of).

Servers answer Hello with every server and the leader's Raft address; the leader's RPC address is
where the client links. A client remembers the servers it learns, so it still finds the leader
when the ones it was told to join are gone.
"""

from __future__ import annotations

import logging

from horae.cluster.rpc import RpcClient, ServerInfo
from horae.logs import fields

log = logging.getLogger("horae.cluster.locator")

HELLO_TIMEOUT = 2.0


class ServerLocator:
    def __init__(self, client: RpcClient, node_name: str, join: list[str]) -> None:
        self._client = client
        self._me = ServerInfo(node_name, "", "")  # no Raft address: servers do not take a client for a server
        self._join = list(join)
        self._learned: list[str] = []
        self._next = 0

    def known(self) -> list[str]:
        return [*self._join, *(a for a in self._learned if a not in self._join)]

    async def leader_rpc_address(self) -> str | None:
        """The leader's RPC address, asking one known server after another; None when none knows."""
        addresses = self.known()
        for offset in range(len(addresses)):
            address = addresses[(self._next + offset) % len(addresses)]
            try:
                view = await self._client.hello(address, self._me, HELLO_TIMEOUT)
            except Exception as error:  # unreachable or not a horae server: try the next
                log.debug("server did not answer", extra=fields(server=address, error=repr(error)))
                continue
            self._next = (self._next + offset) % len(addresses)
            self._learned = [s.rpc_address for s in view.servers if s.rpc_address]
            for server in view.servers:
                if server.raft_address == view.leader_raft_address and server.rpc_address:
                    return server.rpc_address
        return None
