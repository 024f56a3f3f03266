"""Start every job process from one long-lived thread, so that jobs die with the plugin.

A job runs under `setpriv --pdeathsig KILL --` in a session (and process group) of its own
(PLUGIN_PROTOCOL.md §6). Linux sends the parent-death signal when the *thread* that forked the
child exits, not the process: a job forked from a gRPC worker thread would be killed as soon as
the thread pool retires that thread. So every fork happens on the spawner thread, which lives as
long as the plugin. `preexec_fn` is never used (it is unsafe in a threaded process); Popen's
`start_new_session` is done by the C fork/exec code.

The spawner also keeps the janitor (janitor.py) running and tells it which process groups are
live, so that a job's grandchildren die too when the plugin is SIGKILLed.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

log = logging.getLogger("horae_plugins.shell")

SETPRIV = shutil.which("setpriv") or ""
JANITOR = Path(__file__).with_name("janitor.py")


def wrap_command(argv: list[str], uid: int | None = None, gid: int | None = None) -> list[str]:
    """`argv` under setpriv: parent-death signal, and a change of user when `uid` is given."""
    if not SETPRIV:
        return list(argv)
    wrapper = [SETPRIV, "--pdeathsig", "KILL"]
    if uid is not None and gid is not None:
        wrapper += [f"--reuid={uid}", f"--regid={gid}", "--init-groups"]
    return [*wrapper, "--", *argv]


class Janitor:
    """The plugin's end of the janitor's pipe; every method is best effort and never raises."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._warned = False

    def start(self) -> None:
        try:
            # Its own session: the host SIGKILLs the plugin's process group, and the janitor must survive that.
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(JANITOR)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            log.warning("could not start the janitor (%s): a SIGKILLed plugin may leave job processes behind", error)

    def register(self, group: int) -> None:
        self._send(f"+{group}\n")

    def unregister(self, group: int) -> None:
        self._send(f"-{group}\n")

    def _send(self, line: str) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        try:
            with self._lock:  # one short write each, so lines never interleave
                os.write(process.stdin.fileno(), line.encode())
        except OSError as error:
            if not self._warned:
                self._warned = True
                log.warning("the janitor is gone (%s): a SIGKILLed plugin may leave job processes behind", error)


class Spawner:
    """Runs `subprocess.Popen` on its own thread; `spawn()` may be called from any thread."""

    def __init__(self) -> None:
        self.janitor = Janitor()
        self._requests: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen], Future]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def spawn(self, argv: list[str], *, env: dict[str, str], cwd: str | None, stdin_pipe: bool) -> subprocess.Popen:
        """Start `argv` in a new session with piped stdout/stderr; raises what Popen raises."""

        def start() -> subprocess.Popen:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
                bufsize=0,
            )
            self.janitor.register(process.pid)  # in a new session, the pid is the process group id
            return process

        future: Future[subprocess.Popen] = Future()
        self._ensure_thread()
        self._requests.put((start, future))
        return future.result()

    def job_over(self, group: int) -> None:
        self.janitor.unregister(group)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                if not SETPRIV:
                    log.warning("setpriv (util-linux) not found: jobs will not get a parent-death signal")
                self._thread = threading.Thread(target=self._run, name="shell-spawner", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        self.janitor.start()
        while True:
            start, future = self._requests.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(start())
            except BaseException as error:
                future.set_exception(error)
