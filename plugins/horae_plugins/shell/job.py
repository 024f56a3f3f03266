"""One running job: pump its output, watch its time and memory, kill its processes, collect its figures.

The calling thread (the gRPC worker of the Execute call) reads stdout and stderr with large
reads and sends every chunk on at once, so output flows live and fast and only the tail stays in
memory. A watcher thread enforces the timeout and the memory limit and samples the resident
memory of the process tree. Cancellation kills from the canceller's thread.

The job is over when its first process has exited: whatever it left running in its process group
is killed then (as systemd does with a service's control group), and output still in the pipes is
read. The first process stays a zombie until then, so its pid, which is the process group id,
cannot be reused by another process while we signal the group.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

# Large reads from large pipes: each chunk becomes one Update call to the host, and the job keeps
# writing into the pipe while that call is under way.
READ_BYTES = 256 * 1024
PIPE_BYTES = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Memory is sampled often at first, so that short jobs get a figure too, then every 150 ms.
FIRST_WATCH_INTERVAL_SECONDS = 0.01
WATCH_INTERVAL_SECONDS = 0.15
# After the first process exits and the group is killed, the pipes normally close at once; a process
# that left the group (setsid) may keep them open, and is not waited for longer than this.
DRAIN_SECONDS = 2.0


class Tail:
    """The last `limit` bytes of everything added, in at most twice that much memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._buffer = bytearray()

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if not self.limit:
            return
        self._buffer += data
        if len(self._buffer) > 2 * self.limit:
            del self._buffer[: -self.limit]

    def value(self) -> bytes:
        return bytes(self._buffer[-self.limit :]) if self.limit else b""


@dataclass(frozen=True)
class JobResult:
    status: int  # as os.wait4 reports it
    cpu_seconds: float
    max_rss_bytes: int
    output: bytes
    # Why horae killed it ("timed out after 30s", …), or "" when it ended by itself.
    killed_because: str

    @property
    def exit_code(self) -> int:
        """The exit status; 128 + N when signal N killed it, as a shell reports it."""
        code = os.waitstatus_to_exitcode(self.status)
        return 128 - code if code < 0 else code

    @property
    def signal(self) -> int | None:
        code = os.waitstatus_to_exitcode(self.status)
        return -code if code < 0 else None


OutputSink = Callable[[bytes, bool], None]


class RunningJob:
    def __init__(
        self,
        process: subprocess.Popen,
        *,
        payload: bytes | None,
        timeout: float | None,
        mem_limit: int | None,
        output_limit: int,
        on_output: OutputSink,
    ) -> None:
        self.pid = process.pid  # also its process group id: it leads a session of its own
        self._process = process
        self._payload = payload
        self._timeout = timeout
        self._mem_limit = mem_limit
        self._tail = Tail(output_limit)
        self._on_output = on_output
        self._lock = threading.Lock()
        self._reaped = False
        self._killed_because = ""
        self._peak_rss = 0
        self._done = threading.Event()
        try:
            self._psutil: psutil.Process | None = psutil.Process(self.pid)
        except psutil.Error:
            self._psutil = None

    def kill(self, reason: str) -> None:
        """Kill every process of the job, from any thread; the first reason given is the one reported."""
        with self._lock:
            if self._reaped:
                return
            self._killed_because = self._killed_because or reason
            # Descendants that left the process group (setsid) are found through the tree before it dies.
            strays = [p for p in self._descendants() if _group_of(p) != self.pid]
            self._kill_group()
            for process in strays:
                with contextlib.suppress(psutil.Error):
                    process.kill()

    def run(self) -> JobResult:
        """Pump output until the job is over, then reap it; returns its figures."""
        watcher = threading.Thread(target=self._watch, name=f"shell-watch-{self.pid}", daemon=True)
        watcher.start()
        try:
            self._pump()
        except BaseException:
            self.kill("the shell executor failed while the job ran")
            raise
        finally:
            self._done.set()
            # Wait for the exit without reaping, then reap under the lock: kill() never signals a reaped pid.
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            with self._lock:
                _, status, usage = os.wait4(self.pid, 0)
                self._reaped = True
                self._process.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits for it again
            watcher.join()
        # Not ru_maxrss: the first process was forked from this plugin, and the kernel counts the plugin's
        # memory as that process's peak from before its exec. The sampled sum of the tree is what the job used.
        return JobResult(
            status=status,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            max_rss_bytes=self._peak_rss,
            output=self._tail.value(),
            killed_because=self._killed_because,
        )

    def _pump(self) -> None:
        process = self._process
        selector = selectors.DefaultSelector()
        pidfd = os.pidfd_open(self.pid)
        pipes = {process.stdout.fileno(): False, process.stderr.fileno(): True}  # fd -> is stderr
        try:
            for fd, is_stderr in pipes.items():
                os.set_blocking(fd, False)
                with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
                    fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
                selector.register(fd, selectors.EVENT_READ, is_stderr)
            selector.register(pidfd, selectors.EVENT_READ, "exit")
            stdin = process.stdin
            payload = memoryview(self._payload or b"")
            if stdin is not None:
                os.set_blocking(stdin.fileno(), False)
                selector.register(stdin.fileno(), selectors.EVENT_WRITE, "stdin")
            open_pipes = set(pipes)
            drain_until: float | None = None
            while drain_until is None or (open_pipes and time.monotonic() < drain_until):
                timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.data == "exit":
                        # The first process is gone (still a zombie): end the rest of its group, read what is left.
                        selector.unregister(pidfd)
                        with self._lock:
                            self._kill_group()
                        drain_until = time.monotonic() + DRAIN_SECONDS
                        if stdin is not None:
                            selector.unregister(stdin.fileno())
                            _close(stdin)
                            stdin = None
                    elif key.data == "stdin":
                        if stdin is None:  # closed by an exit event of the same batch
                            continue
                        payload = self._feed(stdin, payload)
                        if not payload:
                            selector.unregister(stdin.fileno())
                            _close(stdin)
                            stdin = None
                    elif not self._read(key.fd, key.data):
                        selector.unregister(key.fd)
                        open_pipes.discard(key.fd)
        finally:
            selector.close()
            os.close(pidfd)
            _close(process.stdin, process.stdout, process.stderr)

    def _read(self, fd: int, is_stderr: bool) -> bool:
        """Read one chunk and pass it on; False at end of file."""
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return True
        if not data:
            return False
        self._tail.add(data)
        self._on_output(data, is_stderr)
        return True

    @staticmethod
    def _feed(stdin, payload: memoryview) -> memoryview:
        """Write what the pipe takes now; the rest of the payload, empty when done or the job closed stdin."""
        try:
            written = os.write(stdin.fileno(), payload[:READ_BYTES])
        except BlockingIOError:
            return payload
        except BrokenPipeError:
            return payload[:0]
        return payload[written:]

    def _watch(self) -> None:
        """Sample memory, enforce the memory limit and the timeout, until the job is over."""
        deadline = time.monotonic() + self._timeout if self._timeout else None
        interval = FIRST_WATCH_INTERVAL_SECONDS
        while True:
            rss = self._tree_rss()
            self._peak_rss = max(self._peak_rss, rss)
            if self._mem_limit and rss > self._mem_limit:
                self.kill(f"memory limit exceeded: peak {_size(self._peak_rss)} > limit {_size(self._mem_limit)}")
                return
            wait, interval = interval, min(interval * 2, WATCH_INTERVAL_SECONDS)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            if self._done.wait(wait):
                return
            if deadline is not None and time.monotonic() >= deadline:
                self.kill(f"timed out after {_seconds(self._timeout or 0)}")
                return

    def _tree_rss(self) -> int:
        if self._psutil is None:
            return 0
        total = 0
        for process in [self._psutil, *self._descendants()]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def _descendants(self) -> list[psutil.Process]:
        if self._psutil is None:
            return []
        try:
            return self._psutil.children(recursive=True)
        except psutil.Error:
            return []

    def _kill_group(self) -> None:
        # Callers hold the lock and have checked that the first process is not reaped yet.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _close(*files: object) -> None:
    for file in files:
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()  # type: ignore[attr-defined]


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _seconds(seconds: float) -> str:
    """Like Go prints a duration: 30s, 1m30s, 500ms."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, rest = divmod(rest, 60)
    text = (f"{int(hours)}h" if hours else "") + (f"{int(minutes)}m" if hours or minutes else "")
    return text + f"{rest:g}s"
