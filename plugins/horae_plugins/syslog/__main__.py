"""Serve the syslog processor: `python -m horae_plugins.syslog` (started by the agent, not by hand)."""

from horae_plugins.syslog.processor import SyslogProcessor
from horae_sdk import serve

if __name__ == "__main__":
    serve(processor=SyslogProcessor())
