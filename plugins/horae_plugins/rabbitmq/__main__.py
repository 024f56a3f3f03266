"""Serve the rabbitmq executor: `python -m horae_plugins.rabbitmq` (started by the agent, not by hand)."""

from horae_plugins.rabbitmq.executor import RabbitMQExecutor
from horae_sdk import serve

if __name__ == "__main__":
    serve(executor=RabbitMQExecutor())
