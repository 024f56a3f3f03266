"""Run a real `horae agent` in a subprocess for a test: free ports, a data dir, ready when `/health` is 200.

    with AgentProcess(tmp_path / "node1", node_name="node1") as agent:
        with agent.client() as http:
            http.get("/v1/jobs")
    assert agent.returncode == 0

The agent's output goes to `<data_dir>/agent.log`; `log_text()` reads it (put it in assertion messages).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support import REPO_ROOT

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AgentProcess:
    def __init__(
        self,
        data_dir: Path,
        node_name: str = "horae-test",
        extra_args: Sequence[str] = (),
        dev: bool = True,
        host: str = "127.0.0.1",
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        # Another host than loopback (say, an address inside a network namespace, which
        # `command_prefix = ["ip", "netns", "exec", name]` enters) also binds Raft and RPC there.
        self.host = host
        self.command_prefix = list(command_prefix)
        self.node_name = node_name
        self.http_port = free_port()
        self.raft_port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://{host}:{self.http_port}"
        self.extra_args = list(extra_args)
        self.dev = dev
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir / "agent.log"

    @property
    def argv(self) -> list[str]:
        return [
            *self.command_prefix,
            sys.executable,
            "-m",
            "horae.cli",
            "agent",
            *(["--dev"] if self.dev else []),
            "--node-name",
            self.node_name,
            "--http-addr",
            f"{self.host}:{self.http_port}",
            "--bind-addr",
            self.host,
            # Off loopback the API is open to that network (tests use no tokens): say that is meant.
            *(["--insecure-http"] if self.host != "127.0.0.1" else []),
            "--data-dir",
            str(self.data_dir),
            "--raft-port",
            str(self.raft_port),
            "--rpc-port",
            str(self.rpc_port),
            *self.extra_args,
        ]

    @property
    def rpc_address(self) -> str:
        return f"{self.host}:{self.rpc_port}"

    @property
    def raft_address(self) -> str:
        return f"{self.host}:{self.raft_port}"

    def start(self, timeout: float = START_TIMEOUT_SECONDS, wait_healthy: bool = True) -> AgentProcess:
        """Start the agent and wait until `GET /health` answers 200 (unless `wait_healthy=False`:
        a server of a cluster still forming is healthy only once the others run too)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
        if wait_healthy:
            try:
                self.wait_healthy(timeout)
            except BaseException:
                self.kill()  # `with` never reaches __exit__ when __enter__ fails: leave no agent behind
                raise
        return self

    def wait_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"agent exited with {self.process.returncode} while starting:\n{self.log_text()}")
            try:
                response = httpx.get(f"{self.url}/health", timeout=1.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.05)
        raise AssertionError(f"agent not healthy within {timeout:g}s (last: {last}):\n{self.log_text()}")

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 10.0), **kwargs)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then wait; kills it (and fails) if it does not exit in time. Returns the exit code."""
        if self.process is None:
            raise RuntimeError("the agent was not started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"agent did not exit within {timeout:g}s of SIGTERM:\n{self.log_text()}") from None
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def log_text(self, tail: int = 8000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return "(no agent log)"

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
