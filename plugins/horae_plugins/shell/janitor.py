"""Kill the process groups of running jobs when the shell plugin dies, however it dies.

The parent-death signal only reaches a job's first process: what that process started (the
`sleep` under `sh -c "sleep 30; …"`) would outlive a SIGKILLed plugin. So the plugin starts this
small program once, in a session of its own, and tells it on a pipe which process groups are
running ("+PGID" when a job starts, "-PGID" when it is over). The pipe reaches end-of-file only
when the plugin is gone; the janitor then SIGKILLs every group still registered, and exits.

It is run by path with `python -I -S`, and imports nothing but the standard library, so it
starts fast and does not depend on the plugin's packages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def main() -> None:
    # Only end-of-file on stdin ends the janitor: a Ctrl-C meant for the agent must not.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin.buffer:
        text = line.strip()
        if not text[1:].isdigit():
            continue
        group = int(text[1:])
        if text.startswith(b"+"):
            groups.add(group)
        elif text.startswith(b"-"):
            groups.discard(group)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


if __name__ == "__main__":
    main()
