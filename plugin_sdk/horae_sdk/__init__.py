"""horae's plugin SDK: write an executor or processor in Python and `serve()` it.

from horae_sdk import Executor, serve

class Echo(Executor):
    name = "echo"
    def execute(self, job_name, config, stream):
        stream.write(config.get("text", ""))

if __name__ == "__main__":
    serve(executor=Echo())
"""

from horae_sdk.executor import ExecutionError, ExecutionResult, Executor, OutputStream
from horae_sdk.processor import Execution, Processor
from horae_sdk.serve import serve
from horae_sdk.spec import PluginSpec, hookimpl

__all__ = [
    "Execution",
    "ExecutionError",
    "ExecutionResult",
    "Executor",
    "OutputStream",
    "PluginSpec",
    "Processor",
    "hookimpl",
    "serve",
]
