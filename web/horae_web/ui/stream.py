"""Live output of a running execution as Server-Sent Events.

The output lives in the `RunningExecution` of the node that holds it: the node running the job holds its own,
and the leader holds every execution it dispatched (remote nodes stream their output to it,
`Dispatcher.execution_output`). So the leader can stream any running execution; a follower only those running
on itself. For any other, the stream sends one `elsewhere` event naming the leader, whose UI has the live
output, and the page says so; the full output is on every server once the execution has finished.

Events: `output` (data: JSON `{"text": …}`, the tail so far first), `done` (the execution ended here),
`elsewhere` (data: JSON `{"message": …}`). A comment every KEEPALIVE_SECONDS notices a closed browser.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from horae.running import RunningExecution
from horae_web.ui.guard import guarded
from horae_web.ui.pages import service_of

KEEPALIVE_SECONDS = 15.0


def event(kind: str, data: dict[str, str]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@guarded("GET", "/v1/jobs/x/executions/x")
async def stream(request: Request) -> Response:
    service = service_of(request)
    name, execution_id = request.path_params["name"], request.path_params["execution_id"]
    service.job(name)  # 404 for an unknown job
    running = service.running.get(name, execution_id)
    body = _follow(running) if running is not None else _not_here(request, name, execution_id)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: do not buffer the stream
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


async def _follow(running: RunningExecution) -> AsyncIterator[bytes]:
    # No await between taking the tail and listening: no chunk is lost or sent twice.
    tail = running.output_tail()
    queue = running.listen()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        yield b"retry: 2000\n\n"
        if tail:
            yield event("output", {"text": decoder.decode(tail)})
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if chunk is None:
                break
            text = decoder.decode(chunk)
            if text:
                yield event("output", {"text": text})
        rest = decoder.decode(b"", final=True)
        if rest:
            yield event("output", {"text": rest})
        yield event("done", {})
    finally:
        running.unlisten(queue)


async def _not_here(request: Request, name: str, execution_id: str) -> AsyncIterator[bytes]:
    service = service_of(request)
    execution = await service.execution(name, execution_id)
    if not execution.get("running"):
        yield event("done", {})
        return
    leader = service.leader()
    node = execution.get("node_name") or "another node"
    where = f"the leader, {leader['Name']} ({leader['Addr']})" if leader else "the leader (none is known right now)"
    message = (
        f"This server ({service.config.node_name}) does not hold the live output of this execution, which runs on "
        f"{node}: open this page on {where} to watch it live. The full output shows here once it has finished."
    )
    yield event("elsewhere", {"message": message})
