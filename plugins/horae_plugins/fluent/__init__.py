"""The built-in `fluent` processor (Dkron's fluent processor), run as `python -m horae_plugins.fluent`.

config.py parses the job's keys (with Dkron's FLUENTBIT_* variables as fallbacks), record.py turns
an execution into a Forward protocol event, client.py keeps one connection per receiver and waits
for its ack, and processor.py ties them together as the plugin's Processor.
"""
