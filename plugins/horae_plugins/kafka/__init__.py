"""The built-in `kafka` executor (Dkron's kafka executor keys), run as `python -m horae_plugins.kafka`.

config.py parses the job's keys, producers.py keeps one shared producer per connection, and
executor.py produces one message per execution and reports how it went.
"""
