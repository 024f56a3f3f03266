"""Serve the nats executor: `python -m horae_plugins.nats` (started by the agent, not by hand)."""

from horae_plugins.nats.executor import NatsExecutor
from horae_sdk import serve

if __name__ == "__main__":
    serve(executor=NatsExecutor())
