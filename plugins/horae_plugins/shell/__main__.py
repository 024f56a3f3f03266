"""Serve the shell executor: `python -m horae_plugins.shell` (started by the agent, not by hand)."""

from horae_plugins.shell.executor import ShellExecutor
from horae_sdk import serve

if __name__ == "__main__":
    serve(executor=ShellExecutor())
