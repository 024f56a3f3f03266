"""The built-in `http` executor (Dkron's http executor keys), run as `python -m horae_plugins.http`.

config.py parses the job's keys, tls.py turns the TLS keys into an SSL context, clients.py keeps
one client per TLS setting, pool.py its thread-safe keep-alive connections, sockets.py lets a
cancel or the deadline interrupt a blocked request, debug.py and errors.py word what happened,
and executor.py ties them together as the plugin's Executor.
"""
