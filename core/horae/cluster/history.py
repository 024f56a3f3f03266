"""A server restored from a Raft snapshot copies the recent history it lacks from a peer.

Finished executions are applied from the Raft log into each server's store and are not in
snapshots, so a server that loads a snapshot (a new server joining a cluster whose log was
compacted, one that lost horae.db, one that lagged too far behind) lacks the history before it.
The store notices (`ExecutionStore.history_gap`); `HistoryCatchUp` then streams a caught-up peer's
stored executions (the last N per job) over `Agent.FetchHistory`, page by page, and inserts those
missing here — an execution applied from the log meanwhile is never replaced by a copied one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from horae.logs import fields
from horae_sdk.proto.horae.agent.v1 import agent_pb2

if TYPE_CHECKING:
    from horae.cluster.raft import RaftNode
    from horae.cluster.rpc import Directory, RpcClient
    from horae.store import ExecutionStore

log = logging.getLogger("horae.cluster.history")

PAGE_SIZE = 500
MAX_PAGE_SIZE = 5000
# A page stays well below gRPC's 4 MiB message limit.
PAGE_BYTES = 1024 * 1024
# Between rounds over the peers while none could give the history.
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
# A whole copy (100 executions x 10,000 jobs is ~1 M rows) gets this long before it is tried again.
FETCH_TIMEOUT = 600.0


async def serve_history(store: ExecutionStore, page_size: int) -> AsyncIterator[agent_pb2.HistoryPage]:
    """Agent.FetchHistory: where this store's history stands, then its executions, a page at a time."""
    size = min(page_size or PAGE_SIZE, MAX_PAGE_SIZE)
    yield agent_pb2.HistoryPage(applied_seq=store.history_applied_seq, has_gap=store.history_gap is not None)
    after: str | None = None
    while True:
        # Reading and encoding a page happen in a thread: the loop keeps serving.
        encoded, after = await asyncio.to_thread(_encoded_page, store, after, size)
        if encoded:
            yield agent_pb2.HistoryPage(executions_json=encoded)
        if after is None:
            return


def _encoded_page(store: ExecutionStore, after: str | None, size: int) -> tuple[list[bytes], str | None]:
    """One page of at most `size` executions and about PAGE_BYTES (one execution at least, whatever
    its size), and the key to continue after (None after the last page)."""
    rows = store.history_page(after, size)
    encoded: list[bytes] = []
    total = 0
    for key, execution in rows:
        raw = json.dumps(execution, default=str).encode()
        if encoded and total + len(raw) > PAGE_BYTES:
            return encoded, after  # the rest of these rows goes in the next page
        encoded.append(raw)
        total += len(raw)
        after = key
    return encoded, (after if len(rows) == size else None)


def _decoded(page: agent_pb2.HistoryPage) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in page.executions_json]


class HistoryCatchUp:
    """Waits for a history gap in the store and fills it from a peer (the leader first)."""

    def __init__(self, store: ExecutionStore, directory: Directory, raft: RaftNode, client: RpcClient) -> None:
        self.store = store
        self.directory = directory
        self.raft = raft
        self.client = client
        self._wake = asyncio.Event()
        self._announced: int | None = None  # the gap whose catch-up was logged as started
        self._loop = asyncio.get_running_loop()
        store.on_gap = self._gap_opened

    def _gap_opened(self) -> None:  # Raft thread
        self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            gap = self.store.history_gap
            if gap is None:
                failures = 0
                await self._wake.wait()
                continue
            if await self._fill(gap):
                failures = 0
                continue
            # No peer could give it (all behind, or all missing history themselves): back off.
            failures += 1
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2 ** (failures - 1))):
                    await self._wake.wait()

    def _peers(self) -> list[tuple[str, str]]:
        """(node name, RPC address) of the other servers, the leader first (its store is the furthest along)."""
        me = self.raft.self_address
        leader = self.raft.leader_address
        servers = [s for s in self.directory.servers() if s.raft_address != me and s.rpc_address]
        servers.sort(key=lambda s: s.raft_address != leader)
        return [(s.node_name, s.rpc_address) for s in servers]

    async def _fill(self, gap: int) -> bool:
        """One round over the peers; True once one gave its whole history."""
        # A peer must have applied at least as far as this store (then it has applied every clear
        # and delete this store has) and must not be missing history itself.
        needed = max(gap, self.store.history_applied_seq)
        if self._announced != gap:
            self._announced = gap
            log.info("history catch-up started", extra=fields(gap=gap, applied=self.store.history_applied_seq))
        for name, address in self._peers():
            started = time.monotonic()
            try:
                async with asyncio.timeout(FETCH_TIMEOUT):
                    count = await self._copy_from(name, address, needed)
            except (grpc.aio.AioRpcError, TimeoutError) as error:
                detail = error.code().name if isinstance(error, grpc.aio.AioRpcError) else "timeout"
                log.warning("history fetch from peer failed", extra=fields(peer=name, rpc=address, error=detail))
                continue
            if count is None:
                continue
            await asyncio.to_thread(self.store.end_fetch, gap)
            log.info(
                "history catch-up done",
                extra=fields(peer=name, executions=count, ms=round((time.monotonic() - started) * 1000), gap=gap),
            )
            return True
        log.debug("history catch-up: no peer could give the history yet; retrying", extra=fields(gap=gap))
        return False

    async def _copy_from(self, name: str, address: str, needed: int) -> int | None:
        """Copy `name`'s history; None when it cannot give it (behind this store, or missing history itself)."""
        call = self.client.fetch_history(address, PAGE_SIZE)
        try:
            header = await call.read()
            if header is grpc.aio.EOF:
                return None
            if header.has_gap or header.applied_seq < needed:
                log.info(
                    "history peer not caught up",
                    extra=fields(peer=name, applied=header.applied_seq, needed=needed, has_gap=header.has_gap),
                )
                return None
            log.info("history fetch from peer", extra=fields(peer=name, rpc=address, applied=header.applied_seq))
            await asyncio.to_thread(self.store.begin_fetch)
            count = 0
            try:
                while (page := await call.read()) is not grpc.aio.EOF:
                    count += await asyncio.to_thread(_put_page, self.store, page)
            except BaseException:
                self.store.end_fetch(None)  # the gap stays open; nothing to wait for
                raise
            return count
        finally:
            call.cancel()


def _put_page(store: ExecutionStore, page: agent_pb2.HistoryPage) -> int:
    return store.put_fetched(_decoded(page))
