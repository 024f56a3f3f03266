"""Serve the kafka executor: `python -m horae_plugins.kafka` (started by the agent, not by hand)."""

from horae_plugins.kafka.executor import KafkaExecutor
from horae_sdk import serve

if __name__ == "__main__":
    serve(executor=KafkaExecutor())
