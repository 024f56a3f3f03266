"""The built-in `syslog` processor (Dkron's syslog processor), run as `python -m horae_plugins.syslog`.

config.py parses the job's keys, message.py turns an execution into syslog messages (RFC 5424 on
the network, the traditional local format on a unix socket), transport.py delivers them over UDP,
TCP or a unix socket, and processor.py ties them together as the plugin's Processor.
"""
