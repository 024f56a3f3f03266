"""The built-in `nats` executor (Dkron's nats executor keys), run as `python -m horae_plugins.nats`.

config.py parses the job's keys, connection.py connects and publishes with nats-py, and executor.py
ties them together as the plugin's Executor. asyncio_bridge.py (one event loop for the worker
threads), connection_cache.py (one shared connection per server and credentials) and
config_values.py (Go booleans, the `timeout` key) are also used by the rabbitmq executor.
"""
