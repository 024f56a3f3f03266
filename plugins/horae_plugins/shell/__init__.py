"""The built-in `shell` executor (Dkron's shell executor keys), run as `python -m horae_plugins.shell`.

config.py parses the job's keys, spawner.py starts processes from one long-lived thread,
job.py runs one job (output, limits, kill), janitor.py cleans up after a SIGKILLed plugin, and
executor.py ties them together as the plugin's Executor.
"""
