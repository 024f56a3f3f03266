"""SIGTERM stops a busy agent promptly and cleanly, whatever its HTTP clients and schedule are doing."""

from __future__ import annotations

import socket
import time

from tests.integration.agent_process import AgentProcess
from tests.support import wait_until

JOBS = 40
# Running executions get the agent's shutdown grace; the noop ones here end at once.
STOP_WITHIN_SECONDS = 15.0


def test_sigterm_with_fires_pending_and_a_request_half_sent(tmp_path) -> None:
    agent = AgentProcess(tmp_path / "node", node_name="stop-node").start()
    try:
        with agent.client() as http:
            for number in range(JOBS):
                body = {"name": f"tick-{number}", "schedule": "@every 1s", "executor": "noop"}
                assert http.post("/v1/jobs", json=body).status_code == 201
            wait_until(lambda: http.get("/v1/jobs/tick-0/executions").json(), timeout=10, what="the jobs to fire")
        # A client that sent half a request and went quiet: uvicorn alone would wait for it forever.
        stalled = socket.create_connection(("127.0.0.1", agent.http_port))
        stalled.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        code = agent.stop(timeout=STOP_WITHIN_SECONDS)
        stalled.close()
    finally:
        if agent.returncode is None:
            agent.stop()
    log = agent.log_text(200_000)
    assert code == 0, f"exit code {code}:\n{log[-4000:]}"
    assert time.monotonic() - started < STOP_WITHIN_SECONDS
    assert "agent stopped" in log
    # Every result reached Raft before it stopped, and nothing failed on the way out.
    tail = log[log.index("agent stopping") :]
    assert "result not recorded" not in tail, tail[-4000:]
    # uvicorn logs the stalled request it cancelled; horae itself reports no error.
    assert "level=error logger=horae" not in tail, tail[-4000:]
    assert "execution finished" not in tail.split("agent stopped", 1)[1]
