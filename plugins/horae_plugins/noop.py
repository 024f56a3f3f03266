"""The no-op executor: returns its config's `text` at once. For dry runs and benchmarks."""

from __future__ import annotations

from horae_sdk import Executor, OutputStream, serve


class NoopExecutor(Executor):
    name = "noop"
    version = "1"
    config_schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "output to return"}},
        "additionalProperties": False,
    }
    conformance = {"echo": {"text": "horae-conformance"}}

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> bytes:
        return config.get("text", "").encode()


if __name__ == "__main__":
    serve(executor=NoopExecutor())
