"""The built-in `rabbitmq` executor (Dkron's rabbitmq executor keys), run as `python -m horae_plugins.rabbitmq`.

config.py parses the job's keys, connection.py connects and publishes with aio-pika (publisher
confirms), and executor.py ties them together as the plugin's Executor, on the event loop and
connection cache the nats executor also uses (horae_plugins.nats.asyncio_bridge, .connection_cache).
"""
