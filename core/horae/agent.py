"""One horae node: wires the store, Raft, the plugin host, leadership and dispatch, and serves HTTP.

The HTTP app is handed in by the CLI (the composition root), so the core never imports the web layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from horae.cluster.formation import FORMATION_TIMEOUT, FormationError, announce_member, form_cluster
from horae.cluster.heartbeat import Heartbeats
from horae.cluster.history import HistoryCatchUp
from horae.cluster.links import NodeLinks
from horae.cluster.locator import ServerLocator
from horae.cluster.raft import RaftNode, RaftSettings
from horae.cluster.rpc import AgentServicer, Directory, LeaderForwarder, RpcClient, RpcServer, ServerInfo
from horae.cluster.state import ClusterState
from horae.cluster.tls import RpcTls, TlsSetupError, rpc_tls
from horae.config import AgentConfig
from horae.dispatch import Dispatcher, LocalNode
from horae.host.discovery import DEFAULT_PLUGIN_DIRS, discover_plugins
from horae.host.supervisor import PluginHost
from horae.leader import Leadership, state_listener
from horae.logs import fields
from horae.metrics import Metrics
from horae.notifier import Notifier
from horae.runner import ExecutionRunner
from horae.running import RunningExecutions
from horae.schedule_book import ScheduleBook
from horae.service import HoraeService
from horae.store import ExecutionStore
from horae.worker import Worker, describe_node

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
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        os.makedirs(self.config.data_dir, exist_ok=True)
        if self.config.server:
            await self._run_server(app_factory)
        else:
            await self._run_client()

    async def _start_host(self) -> tuple[PluginHost, list[str]]:
        config = self.config
        discovery = discover_plugins(
            [*config.plugin_dirs, os.path.join(config.data_dir, "plugins"), *DEFAULT_PLUGIN_DIRS]
        )
        for problem in discovery.problems:
            log.warning(problem)
        host = PluginHost(discovery.plugins)
        await host.start()
        executors = sorted(spec.name for spec in discovery.plugins if spec.kind == "executor")
        return host, executors

    async def _run_client(self) -> None:
        """A client agent: no Raft, no API; it links to the leader through any server and runs what it is sent."""
        config = self.config
        if not config.join and not config.retry_join:
            log.error("a client agent needs --join with a server's RPC address (or --server to be one)")
            raise SystemExit(2)
        tls = self._rpc_tls()
        host, executors = await self._start_host()
        running = RunningExecutions()
        runner = ExecutionRunner(host, ScheduleBook(), running, config.node_name)
        rpc_client = RpcClient(key=config.encrypt, tls=tls)
        locator = ServerLocator(rpc_client, config.node_name, [*config.join, *config.retry_join])
        node = describe_node(
            config.node_name, "client", dict(config.tags), executors, config_schemas=host.config_schemas()
        )
        worker = Worker(node, runner, running, rpc_client, locator.leader_rpc_address, config.heartbeat_seconds)
        worker_task = asyncio.create_task(worker.run())
        log.info("agent started", extra=fields(node=config.node_name, server=False, join=",".join(config.join)))
        self.ready.set()
        await self._stop.wait()
        log.info("agent stopping", extra=fields(grace=f"{config.shutdown_grace:g}s"))
        await worker.stop(config.shutdown_grace)
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        await host.stop()
        await rpc_client.close()
        log.info("agent stopped")

    async def _run_server(self, app_factory: AppFactory) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        store = ExecutionStore(os.path.join(config.data_dir, "horae.db"), config.max_executions)
        state = ClusterState(sink=store)
        raft_dir = os.path.join(config.data_dir, "raft")
        me = ServerInfo(config.node_name, config.raft_address, self._rpc_address(), dict(config.tags))
        directory = Directory(me, state)
        tls = self._rpc_tls()
        rpc_client = RpcClient(key=config.encrypt, tls=tls)
        servicer = AgentServicer(directory, rpc_client)
        rpc_server = RpcServer(servicer, f"{config.bind_addr}:{config.rpc_port}", key=config.encrypt, tls=tls)
        await rpc_server.start()
        peers = await self._form(directory, rpc_client, raft_dir)
        if peers is None:
            await rpc_server.stop()
            await rpc_client.close()
            store.close()
            log.info("agent stopped before the cluster formed")
            return
        host, executors = await self._start_host()
        schedules = ScheduleBook()
        running = RunningExecutions()

        metrics = Metrics()
        leadership_changes: asyncio.Queue[bool] = asyncio.Queue()
        raft = RaftNode(
            config.raft_address,
            peers,
            state,
            raft_dir,
            RaftSettings(
                multiplier=config.raft_multiplier,
                password=config.encrypt or None,
                snapshot_threshold=config.raft_snapshot_threshold,
            ),
            on_leadership=metrics.leadership_listener(leadership_changes.put_nowait),
            forwarder=LeaderForwarder(rpc_client, directory.rpc_address),
            history=store,
        )
        servicer.raft = raft
        announce_task = asyncio.create_task(announce_member(raft, me, executors, host.config_schemas()))
        runner = ExecutionRunner(host, schedules, running, config.node_name)
        leadership = Leadership(raft, state, schedules)

        async def node_failed(name: str, reason: str) -> None:
            await dispatcher.node_failed(name, reason)

        heartbeats = Heartbeats(raft, state, config.node_name, node_failed, config.failure_seconds)
        links = NodeLinks(raft, state, heartbeats, config.node_name, config.heartbeat_seconds)
        notifier = Notifier(config, store.executions)
        dispatcher = Dispatcher(
            raft,
            state,
            runner,
            schedules,
            running,
            LocalNode(config.node_name, dict(config.tags), frozenset(executors)),
            links,
            leadership.scheduler.set,
            on_result=notifier.execution_recorded,
        )
        links.events = dispatcher
        servicer.links = links
        servicer.run_job = dispatcher.run_now
        leadership.attach(dispatcher, links)
        state.listener = metrics.counting(state_listener(loop, leadership), lambda: raft.is_leader)
        service = HoraeService(
            config,
            state,
            store,
            raft,
            host,
            schedules,
            running,
            dispatcher,
            leadership,
            heartbeats,
            rpc_client,
            directory,
        )
        service.stop_agent = self.request_stop
        servicer.stop_run, servicer.store = service.stop_on_leader, store
        history_task = asyncio.create_task(HistoryCatchUp(store, directory, raft, rpc_client).run())
        service.metrics = metrics
        node = describe_node(
            config.node_name,
            "server",
            dict(config.tags),
            executors,
            me.rpc_address,
            me.raft_address,
            config_schemas=host.config_schemas(),
        )

        async def leader_rpc_address() -> str | None:
            leader = raft.leader_address
            return None if leader is None else directory.rpc_address(leader)

        worker = Worker(
            node,
            runner,
            running,
            rpc_client,
            leader_rpc_address,
            config.heartbeat_seconds,
            dispatcher.results_in_flight,
            no_leader_poll_seconds=0.05,  # its own Raft member knows
        )
        worker_task = asyncio.create_task(worker.run())

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
                http="httptools",
                ssl_certfile=config.cert_file or None,
                ssl_keyfile=config.key_file or None,
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
        announce_task.cancel()
        await leadership.scheduler.stop()
        await asyncio.gather(
            dispatcher.stop(config.shutdown_grace, leadership.scheduler.pending_launches()),
            worker.stop(config.shutdown_grace),
        )
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        await notifier.stop()
        await links.stop()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(server_task), HTTP_SHUTDOWN_SECONDS + 2)
        except Exception:
            server.force_exit = True
            server_task.cancel()
        history_task.cancel()
        await asyncio.gather(history_task, return_exceptions=True)
        await host.stop()
        await rpc_server.stop()
        await rpc_client.close()
        raft.destroy()
        store.close()
        log.info("agent stopped")

    def _rpc_tls(self) -> RpcTls | None:
        """Inter-node gRPC's TLS from --cert-file/--key-file/--ca-file or --auto-tls; exits with 2 on a bad file."""
        config = self.config
        try:
            return rpc_tls(config.cert_file, config.key_file, config.ca_file, config.auto_tls, config.encrypt)
        except TlsSetupError as error:
            log.error("inter-node TLS settings not usable", extra=fields(error=str(error)))
            raise SystemExit(2) from None

    def _rpc_address(self) -> str:
        return f"{self.config.advertise_addr or self.config.bind_addr}:{self.config.rpc_port}"

    async def _form(self, directory: Directory, client: RpcClient, raft_dir: str) -> list[str] | None:
        """The Raft peers to start with; None when asked to stop first. Exits with 1 if the cluster cannot form."""
        config = self.config
        join = [*config.join, *config.retry_join]
        if config.retry_max > 0:
            timeout = config.retry_max * config.retry_interval
        else:
            timeout = math.inf if config.retry_join else FORMATION_TIMEOUT
        formation = asyncio.create_task(
            form_cluster(directory, client, config.bootstrap_expect, join, raft_dir, timeout, config.retry_interval)
        )
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
