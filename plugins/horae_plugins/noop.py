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

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> None:
        # Written to the stream, so live output shows it too; the result is what was written.
        stream.write(config.get("text", ""))


if __name__ == "__main__":
    serve(executor=NoopExecutor())
