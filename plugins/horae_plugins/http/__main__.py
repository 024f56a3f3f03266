"""Serve the http executor: `python -m horae_plugins.http` (started by the agent, not by hand)."""

from horae_plugins.http.executor import HttpExecutor
from horae_sdk import serve

if __name__ == "__main__":
    serve(executor=HttpExecutor())
