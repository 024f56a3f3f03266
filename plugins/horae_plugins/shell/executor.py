"""The shell executor: Dkron's `shell` executor as a horae plugin.

It turns a job's executor_config into a process (command, shell, env, cwd, su, payload), starts
it through the spawner, and turns what happened into the execution's result with Go's wording
for failures ("exit status 3", "signal: killed"), so messages read as they did under Dkron.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import signal
from typing import Any

from horae_plugins.shell.config import CONFIG_SCHEMA, ShellConfig, parse_config
from horae_plugins.shell.job import RunningJob
from horae_plugins.shell.spawner import SETPRIV, Spawner, wrap_command
from horae_sdk import ExecutionError, ExecutionResult, Executor, OutputStream, handshake

log = logging.getLogger("horae_plugins.shell")

# What the host set for the plugin's own handshake is no business of the job's.
_PLUGIN_ONLY_ENV = {
    *handshake.COOKIES,
    handshake.PROTOCOL_VERSIONS_KEY,
    handshake.MIN_PORT_KEY,
    handshake.MAX_PORT_KEY,
    handshake.UNIX_SOCKET_DIR_KEY,
    handshake.CLIENT_CERT_KEY,
    handshake.TRANSPORT_KEY,
}


class ShellExecutor(Executor):
    name = "shell"
    version = "1.0.0"
    config_schema: dict[str, Any] = CONFIG_SCHEMA
    conformance = {
        "echo": {"command": "echo horae-conformance", "shell": "true"},
        "sleep": {"command": "sleep 30", "shell": "true"},
        "flood": {"command": "head -c 11534336 /dev/zero | tr '\\0' x", "shell": "true"},
    }

    def __init__(self) -> None:
        self._spawner = Spawner()

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> ExecutionResult:
        settings = parse_config(config)
        stream.output_limit = max(settings.output_limit, 1)
        unknown = sorted(set(config) - set(CONFIG_SCHEMA["properties"]))
        if unknown:
            log.warning("job %s: ignoring unknown executor_config key(s) %s", job_name, ", ".join(unknown))
        env = job_environment(job_name, stream, settings)
        uid_gid = resolve_su(settings.su) if settings.su else None
        if uid_gid is not None:
            env.update(_user_environment(uid_gid[0]))
            env.update(settings.env)  # the job's own env key wins
        argv = resolve_command(settings, env)
        if settings.cwd is not None and not os.path.isdir(settings.cwd):
            raise ExecutionError(f"shell: chdir {settings.cwd}: no such directory", exit_code=1)
        if stream.cancelled.is_set():
            raise ExecutionError("cancelled before it started", exit_code=1)
        try:
            process = self._spawner.spawn(
                wrap_command(argv, *(uid_gid or (None, None))),
                env=env,
                cwd=settings.cwd,
                stdin_pipe=settings.payload is not None,
            )
        except OSError as error:
            raise ExecutionError(f"fork/exec {argv[0]}: {error.strerror or error}", exit_code=126) from None
        log.info("job %s: started pid %d", job_name, process.pid)
        try:
            job = RunningJob(
                process,
                payload=settings.payload,
                timeout=settings.timeout,
                mem_limit=settings.mem_limit,
                output_limit=settings.output_limit,
                on_output=lambda chunk, is_stderr: stream.write(chunk, stderr=is_stderr),
            )
            stream.on_cancel(lambda: job.kill("cancelled"))
            result = job.run()
        finally:
            self._spawner.job_over(process.pid)
        figures = {"cpu_seconds": result.cpu_seconds, "max_rss_bytes": result.max_rss_bytes}
        if result.killed_because:
            raise ExecutionError(
                f"shell: {result.killed_because}; the job's processes were killed",
                output=result.output,
                exit_code=result.exit_code,
                **figures,
            )
        if result.signal is not None:
            raise ExecutionError(
                f"signal: {_signal_name(result.signal)}", output=result.output, exit_code=result.exit_code, **figures
            )
        if result.exit_code != 0:
            raise ExecutionError(
                f"exit status {result.exit_code}", output=result.output, exit_code=result.exit_code, **figures
            )
        return ExecutionResult(output=result.output, exit_code=0, **figures)


def job_environment(job_name: str, stream: OutputStream, settings: ShellConfig) -> dict[str, str]:
    """The plugin's environment (without the handshake's variables), horae's variables, then the job's env."""
    env = {key: value for key, value in os.environ.items() if key not in _PLUGIN_ONLY_ENV}
    env.update(
        {
            "ENV_JOB_NAME": job_name,  # as Dkron sets it
            "HORAE_EXECUTION_ID": stream.execution_id,
            "HORAE_SLOT": str(stream.slot_unix_ms),
            "HORAE_ATTEMPT": str(stream.attempt),
        }
    )
    env.update(settings.env)
    return env


def resolve_command(settings: ShellConfig, env: dict[str, str]) -> list[str]:
    """The command's argv once its program is known to exist, or ExecutionError worded as Go's exec words it.

    The program is looked up in the job's PATH, as setpriv (or Popen) will look it up; argv[0] stays as written.
    """
    argv = list(settings.argv)
    program = argv[0]
    if "/" in program:
        if not os.path.exists(os.path.join(settings.cwd or "", program)):
            raise ExecutionError(f"fork/exec {program}: no such file or directory", exit_code=127)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise ExecutionError(f'exec: "{program}": executable file not found in $PATH', exit_code=127)
    return argv


def resolve_su(su: str) -> tuple[int, int]:
    """(uid, gid) for Dkron's `su` key, `user` or `user:group`; ExecutionError when it cannot be done."""
    user, _, group = su.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ExecutionError(f"shell: su: unknown user {user!r}", exit_code=1) from None
    gid = entry.pw_gid
    if group:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ExecutionError(f"shell: su: unknown group {group!r}", exit_code=1) from None
    if (entry.pw_uid, gid) != (os.geteuid(), os.getegid()):
        if os.geteuid() != 0:
            raise ExecutionError(
                f"shell: su {su}: running a job as another user needs the agent to run as root "
                f"(it runs as uid {os.geteuid()})",
                exit_code=1,
            )
        if not SETPRIV:
            raise ExecutionError(f"shell: su {su}: needs setpriv (util-linux), which is not installed", exit_code=1)
    return entry.pw_uid, gid


def _user_environment(uid: int) -> dict[str, str]:
    entry = pwd.getpwuid(uid)
    return {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}


def _signal_name(signum: int) -> str:
    """Go's wording: "killed", "terminated", "segmentation fault"."""
    try:
        return (signal.strsignal(signum) or f"signal {signum}").lower()
    except ValueError:
        return f"signal {signum}"
