"""One horae node: wires the store, Raft, the plugin host, leadership and dispatch, and serves HTTP.

The HTTP app is handed in by the CLI (the composition root), so the core never imports the web layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from horae.cluster.formation import FormationError, announce_member, form_cluster
from horae.cluster.raft import RaftNode, RaftSettings
from horae.cluster.rpc import AgentServicer, Directory, LeaderForwarder, RpcClient, RpcServer, ServerInfo
from horae.cluster.state import ClusterState
from horae.config import AgentConfig
from horae.dispatch import Dispatcher
from horae.host.discovery import DEFAULT_PLUGIN_DIRS, discover_plugins
from horae.host.supervisor import PluginHost
from horae.leader import Leadership, state_listener
from horae.logs import fields
from horae.running import RunningExecutions
from horae.schedule_book import ScheduleBook
from horae.service import HoraeService
from horae.store import ExecutionStore

log = logging.getLogger("horae.agent")

AppFactory = Callable[[HoraeService], Any]
# Open HTTP connections get this long to finish when the agent stops.
HTTP_SHUTDOWN_SECONDS = 3.0


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the agent owns SIGTERM and SIGINT and stops uvicorn.

    uvicorn replaces the loop's handlers with `signal.signal` ones while it serves, so a SIGTERM
    would only reach uvicorn's graceful shutdown, which can wait for connections without end.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, app_factory: AppFactory) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        os.makedirs(config.data_dir, exist_ok=True)

        store = ExecutionStore(os.path.join(config.data_dir, "horae.db"), config.max_executions)
        state = ClusterState(sink=store)
        raft_dir = os.path.join(config.data_dir, "raft")
        me = ServerInfo(config.node_name, config.raft_address, self._rpc_address(), dict(config.tags))
        directory = Directory(me, state)
        rpc_client = RpcClient()
        servicer = AgentServicer(directory, rpc_client)
        rpc_server: RpcServer | None = None
        peers: list[str] = []
        if config.server:
            rpc_server = RpcServer(servicer, f"{config.bind_addr}:{config.rpc_port}")
            await rpc_server.start()
            formed = await self._form(directory, rpc_client, raft_dir)
            if formed is None:
                await rpc_server.stop()
                await rpc_client.close()
                store.close()
                log.info("agent stopped before the cluster formed")
                return
            peers = formed
        schedules = ScheduleBook()
        running = RunningExecutions()
        discovery = discover_plugins(
            [*config.plugin_dirs, os.path.join(config.data_dir, "plugins"), *DEFAULT_PLUGIN_DIRS]
        )
        for problem in discovery.problems:
            log.warning(problem)
        host = PluginHost(discovery.plugins)
        await host.start()

        leadership_changes: asyncio.Queue[bool] = asyncio.Queue()
        raft = RaftNode(
            config.raft_address,
            peers,
            state,
            raft_dir,
            RaftSettings(multiplier=config.raft_multiplier),
            on_leadership=leadership_changes.put_nowait,
            forwarder=LeaderForwarder(rpc_client, directory.rpc_address) if config.server else None,
        )
        servicer.raft = raft
        announce_task = asyncio.create_task(announce_member(raft, me)) if config.server else None
        leadership = Leadership(raft, state, schedules)
        dispatcher = Dispatcher(raft, state, host, schedules, running, config.node_name, leadership.scheduler.set)
        leadership.attach(dispatcher)
        state.listener = state_listener(loop, leadership)
        service = HoraeService(config, state, store, raft, host, schedules, running, dispatcher, leadership)

        host_name, port = config.http_host_port
        server = _HttpServer(
            uvicorn.Config(
                app_factory(service),
                host=host_name,
                port=port,
                log_config=None,
                lifespan="off",
                access_log=False,
                timeout_graceful_shutdown=HTTP_SHUTDOWN_SECONDS,
            )
        )
        server_task = asyncio.create_task(server.serve())
        watch_task = asyncio.create_task(self._follow_leadership(leadership_changes, leadership))
        log.info(
            "agent started",
            extra=fields(node=config.node_name, http=config.http_addr, data_dir=config.data_dir, server=config.server),
        )
        self.ready.set()
        stop_task = asyncio.create_task(self._stop.wait())
        await asyncio.wait([server_task, stop_task], return_when=asyncio.FIRST_COMPLETED)

        log.info("agent stopping", extra=fields(grace=f"{config.shutdown_grace:g}s"))
        watch_task.cancel()
        if announce_task is not None:
            announce_task.cancel()
        await leadership.scheduler.stop()
        await dispatcher.stop(config.shutdown_grace, leadership.scheduler.pending_launches())
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(server_task), HTTP_SHUTDOWN_SECONDS + 2)
        except Exception:
            server.force_exit = True
            server_task.cancel()
        await host.stop()
        if rpc_server is not None:
            await rpc_server.stop()
        await rpc_client.close()
        raft.destroy()
        store.close()
        log.info("agent stopped")

    def _rpc_address(self) -> str:
        return f"{self.config.advertise_addr or self.config.bind_addr}:{self.config.rpc_port}"

    async def _form(self, directory: Directory, client: RpcClient, raft_dir: str) -> list[str] | None:
        """The Raft peers to start with; None when asked to stop first. Exits with 1 if the cluster cannot form."""
        config = self.config
        formation = asyncio.create_task(form_cluster(directory, client, config.bootstrap_expect, config.join, raft_dir))
        stop_task = asyncio.create_task(self._stop.wait())
        await asyncio.wait([formation, stop_task], return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        if not formation.done():
            formation.cancel()
            return None
        try:
            return formation.result()
        except FormationError as error:
            log.error("cluster formation failed", extra=fields(error=str(error)))
            raise SystemExit(1) from None

    @staticmethod
    async def _follow_leadership(changes: asyncio.Queue[bool], leadership: Leadership) -> None:
        while True:
            leading = await changes.get()
            if leading:
                leadership.gained()
            else:
                await leadership.lost()
