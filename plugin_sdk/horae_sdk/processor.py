"""The processor side of the SDK: an Execution in plain Python, the base class, its gRPC service.

A processor runs on the agent that executed the job, after the executor; it gets the execution
and the job's config for it and returns the execution, possibly with its output replaced.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
import logging
import traceback
from dataclasses import dataclass
from typing import Any

import grpc

from horae_sdk.proto.horae.plugin.v1 import processor_pb2, processor_pb2_grpc

log = logging.getLogger("horae_sdk")


@dataclass
class Execution:
    job_name: str = ""
    success: bool = False
    output: bytes = b""
    node_name: str = ""
    group: int = 0
    attempt: int = 0
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    id: str = ""
    exit_code: int = 0

    def to_proto(self) -> processor_pb2.Execution:
        message = processor_pb2.Execution(
            job_name=self.job_name,
            success=self.success,
            output=self.output,
            node_name=self.node_name,
            group=self.group,
            attempt=self.attempt,
            id=self.id,
            exit_code=self.exit_code,
        )
        if self.started_at is not None:
            message.started_at.FromDatetime(self.started_at)
        if self.finished_at is not None:
            message.finished_at.FromDatetime(self.finished_at)
        return message

    @classmethod
    def from_proto(cls, message: processor_pb2.Execution) -> Execution:
        return cls(
            job_name=message.job_name,
            success=message.success,
            output=message.output,
            node_name=message.node_name,
            group=message.group,
            attempt=message.attempt,
            started_at=message.started_at.ToDatetime(datetime.UTC) if message.HasField("started_at") else None,
            finished_at=(message.finished_at.ToDatetime(datetime.UTC) if message.HasField("finished_at") else None),
            id=message.id,
            exit_code=message.exit_code,
        )

    def replace(self, **changes: Any) -> Execution:
        return dataclasses.replace(self, **changes)


class Processor(abc.ABC):
    """Subclass this and implement `process`. Class attributes describe the plugin (Describe)."""

    name: str = ""
    version: str = "0"
    config_schema: dict[str, Any] | None = None

    @abc.abstractmethod
    def process(self, execution: Execution, config: dict[str, str]) -> Execution:
        """Return the execution, possibly with its output replaced; raise to fail the call."""


class ProcessorService(processor_pb2_grpc.ProcessorServiceServicer):
    def __init__(self, processor: Processor) -> None:
        self._processor = processor

    def Process(self, request: processor_pb2.ProcessRequest, context: grpc.ServicerContext):
        execution = Execution.from_proto(request.execution)
        try:
            result = self._processor.process(execution, dict(request.config))
        except Exception as error:
            log.error("processing execution %s raised:\n%s", execution.id, traceback.format_exc())
            context.abort(grpc.StatusCode.INTERNAL, f"processor raised {type(error).__name__}: {error}")
        if not isinstance(result, Execution):
            context.abort(grpc.StatusCode.INTERNAL, f"processor returned {type(result).__name__}, not an Execution")
        return processor_pb2.ProcessResponse(execution=result.to_proto())

    def add_to_server(self, server: grpc.Server) -> None:
        processor_pb2_grpc.add_ProcessorServiceServicer_to_server(self, server)
