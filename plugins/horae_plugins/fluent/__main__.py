"""Serve the fluent processor: `python -m horae_plugins.fluent` (started by the agent, not by hand)."""

from horae_plugins.fluent.processor import FluentProcessor
from horae_sdk import serve

if __name__ == "__main__":
    serve(processor=FluentProcessor())
