"""A real rsyslogd for tests: unprivileged, on 127.0.0.1, writing every message it gets to a file.

It listens on an ephemeral UDP port, an ephemeral TCP port and a unix socket (the local format's
path), all inside the test's directory, and writes one JSON line per message with the fields a
test checks: PRI, facility, severity, protocol version, APP-NAME/TAG, PROCID, host, input module
and MSG. rsyslogd comes from the Debian package `rsyslog`; it is installed when missing and the
tests run as root, otherwise the tests fail saying which command to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support import wait_until

INSTALL_COMMAND = ["apt-get", "install", "-y", "rsyslog"]
START_TIMEOUT = 15.0

# The fields each received message is written with; msg and the free-text ones JSON-escaped.
_TEMPLATE = (
    '{"pri":%pri%,"facility":"%syslogfacility-text%","severity":"%syslogseverity-text%",'
    '"version":"%protocol-version%","app_name":"%app-name:::json%","procid":"%procid:::json%",'
    '"syslogtag":"%syslogtag:::json%","hostname":"%hostname:::json%","input":"%inputname%",'
    '"msg":"%msg:::json%"}\\n'
)
_CONFIG = """
global(workDirectory="{work}")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{tcp_port_file}")
input(type="imuxsock" Socket="{socket}")
template(name="received" type="string" string="{template}")
*.* action(type="omfile" file="{output}" template="received")
"""


@dataclass(frozen=True)
class Received:
    """One message as rsyslog parsed it; `msg` without the space rsyslog keeps after a traditional TAG."""

    pri: int
    facility: str
    severity: str
    version: str
    app_name: str
    procid: str
    syslogtag: str
    hostname: str
    input: str
    msg: str


@dataclass
class Rsyslog:
    udp_port: int
    tcp_port: int
    socket_path: Path
    output: Path
    process: subprocess.Popen

    def messages(self) -> list[Received]:
        if not self.output.exists():
            return []
        received = []
        for line in self.output.read_text().splitlines():
            fields = json.loads(line)
            fields["msg"] = fields["msg"].removeprefix(" ")
            received.append(Received(**fields))
        return received

    def wait_for(self, contains: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The messages whose MSG contains `contains`, once there are at least `count` of them."""
        found: list[Received] = []

        def enough() -> bool:
            found[:] = [message for message in self.messages() if contains in message.msg]
            return len(found) >= count

        wait_until(enough, timeout=timeout, what=f"{count} syslog messages containing {contains!r} (got {found})")
        return found


def rsyslogd_path() -> str:
    """The rsyslogd binary, installed with apt-get when missing and running as root."""
    found = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"rsyslogd is not installed; run: sudo {' '.join(INSTALL_COMMAND)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(INSTALL_COMMAND, env=env, capture_output=True).returncode != 0:
        # The package lists may be missing or stale.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(INSTALL_COMMAND, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(INSTALL_COMMAND)}` failed: {done.stderr.strip()[-500:]}")
    return shutil.which("rsyslogd", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) or "/usr/sbin/rsyslogd"


@contextlib.contextmanager
def running_rsyslog(directory: Path) -> Iterator[Rsyslog]:
    """Start rsyslogd with its config, socket and output in `directory`; stop it on exit."""
    binary = rsyslogd_path()
    work = directory / "work"
    work.mkdir(parents=True, exist_ok=True)
    udp_port = _free_udp_port()
    tcp_port_file, socket_path, output = directory / "tcp.port", directory / "log.sock", directory / "received.jsonl"
    config = directory / "rsyslog.conf"
    config.write_text(
        _CONFIG.format(
            work=work,
            udp_port=udp_port,
            tcp_port_file=tcp_port_file,
            socket=socket_path,
            output=output,
            template=_TEMPLATE.replace('"', '\\"'),
        )
    )
    # setpriv: rsyslogd dies with the test run even when pytest is killed.
    guard = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
    log = (directory / "rsyslogd.log").open("wb")
    process = subprocess.Popen(
        [*guard, binary, "-n", "-f", str(config), "-i", str(directory / "rsyslogd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(process, udp_port, tcp_port_file, socket_path, directory / "rsyslogd.log")
        yield Rsyslog(udp_port, int(tcp_port_file.read_text()), socket_path, output, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_listening(
    process: subprocess.Popen, udp_port: int, tcp_port_file: Path, socket_path: Path, log: Path
) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"rsyslogd exited with code {process.returncode}: {log.read_text()[-2000:]}")
        if not (tcp_port_file.exists() and tcp_port_file.read_text().strip() and socket_path.exists()):
            return False
        ports = {conn.laddr.port for conn in psutil.Process(process.pid).net_connections(kind="udp4")}
        return udp_port in ports

    try:
        wait_until(listening, timeout=START_TIMEOUT, what="rsyslogd to listen")
    except AssertionError:
        raise RuntimeError(f"rsyslogd did not start listening: {log.read_text()[-2000:]}") from None


def _free_udp_port() -> int:
    """A UDP port free right now (imudp cannot report an ephemeral port it picked itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
