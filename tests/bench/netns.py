"""Network partitions for the chaos harness: one Linux network namespace per server, joined by a bridge.

Every node gets its own address (10.213.X.11, .12, …) on a veth pair into a bridge in the root
namespace, which holds 10.213.X.1, so the harness reaches every node's HTTP API at all times. A
partition gives the nodes of different groups false neighbour (ARP) entries for each other, so
their packets are dropped silently in both directions, as across a failed switch; it needs no
iptables, nft or tc filter (none of which this machine has). Healing deletes the entries.

    net = Netns.create(3)           # raises NetnsUnavailable (with the reason) where it cannot work
    agent.command_prefix, agent.host = net.prefix(0), net.address(0)
    net.partition([[0], [1, 2]]); net.heal(); net.close()

Names carry the creating process's id (`horae-chaos-<pid>-<i>`, links `hz<pid>…`), so a run
removes what a crashed earlier run left behind, and never touches a live run's namespaces.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

NAMESPACE_PREFIX = "horae-chaos-"
SUBNET_PREFIX = "10.213"
NAMESPACE_RE = re.compile(rf"^{NAMESPACE_PREFIX}(\d+)-\d+$")
# Root-namespace links: the bridge hzb<pid> and the root ends of the veth pairs hz<pid>r<i>.
LINK_RE = re.compile(r"^hz(?:b(\d+)|(\d+)r\d+)$")
# A locally administered MAC no interface has: frames sent to it are dropped by every bridge port.
NOWHERE_MAC = "02:00:5e:00:de:ad"


class NetnsUnavailable(RuntimeError):
    """This machine (or this user) cannot make network namespaces; the message says why."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ip …`; a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip() or done.returncode}")
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete namespaces and links left by runs whose process is gone; returns warnings.

    Processes still running inside a stale namespace (agents orphaned by a killed harness) are
    named in a warning, not killed: they were started by another run.
    """
    warnings = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAMESPACE_RE.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        pids = ip("netns", "pids", name, check=False).stdout.split()
        if pids:
            warnings.append(f"stale namespace {name} still holds processes {', '.join(pids)} (left running)")
        ip("netns", "delete", name, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        fields = line.split(": ")
        name = fields[1].split("@")[0] if len(fields) > 1 else ""
        match = LINK_RE.match(name)
        if match is not None and not _alive(int(match.group(1) or match.group(2))):
            ip("link", "delete", name, check=False)
    return warnings


def _free_subnet() -> str:
    """A 10.213.X.0/24 that no address in the root namespace uses yet (a concurrent run has its own)."""
    used = set(re.findall(rf"inet {re.escape(SUBNET_PREFIX)}\.(\d+)\.", ip("-o", "-4", "addr", "show").stdout))
    for third in range(256):
        if str(third) not in used:
            return f"{SUBNET_PREFIX}.{third}"
    raise NetnsUnavailable(f"every {SUBNET_PREFIX}.X.0/24 is in use in the root namespace")


class Netns:
    """`count` namespaces on one bridge; `partition` cuts groups apart, `heal` joins them again."""

    def __init__(self, count: int, subnet: str, pid: int) -> None:
        self.count = count
        self.subnet = subnet
        self.pid = pid
        self.bridge = f"hzb{pid}"
        self.names = [f"{NAMESPACE_PREFIX}{pid}-{i}" for i in range(count)]
        self.cut: list[tuple[int, str]] = []  # (node, peer address) with a false neighbour entry
        self.closed = False

    @classmethod
    def create(cls, count: int) -> Netns:
        """Build the namespaces, or raise NetnsUnavailable saying why this machine does not allow it."""
        if sys.platform != "linux":
            raise NetnsUnavailable(f"network namespaces are Linux only (this is {sys.platform})")
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (run the harness as root)")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
        for warning in remove_stale():
            print(f"netns: {warning}", file=sys.stderr)
        net = cls(count, _free_subnet(), os.getpid())
        _install_cleanup(net)
        try:
            net._build()
        except RuntimeError as error:
            net.close()
            raise NetnsUnavailable(str(error)) from error
        return net

    def address(self, node: int) -> str:
        return f"{self.subnet}.{11 + node}"

    @property
    def root_address(self) -> str:
        return f"{self.subnet}.1"

    def prefix(self, node: int) -> list[str]:
        """The command prefix that runs a program inside node's namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.names[node]]

    def outside(self, node: int) -> str:
        """The root-namespace end of node's veth pair, a port of the bridge."""
        return f"hz{self.pid}r{node}"

    def inside(self, node: int) -> str:
        return f"hz{self.pid}n{node}"

    def _build(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.root_address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for node, name in enumerate(self.names):
            outside, inside = self.outside(node), self.inside(node)
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
            ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", name)
            ip("link", "set", outside, "master", self.bridge)
            ip("link", "set", outside, "up")
            ip("-n", name, "addr", "add", f"{self.address(node)}/24", "dev", inside)
            ip("-n", name, "link", "set", inside, "up")

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut every node off from the nodes of the other groups (both ways); the root side reaches all.

        Each side's neighbour entry for the other becomes a permanent one with a MAC nobody has:
        frames go out and are dropped by every port, so a connect times out and an open TCP
        connection retransmits into the void, as across a failed switch. (Blackhole routes would
        fail a connect at once with EINVAL; iptables, nft and tc filters are missing here.)
        """
        nodes = [node for group in groups for node in group]
        if len(nodes) != len(set(nodes)) or not set(nodes) <= set(range(self.count)):
            raise ValueError(f"groups {groups!r}: each node 0..{self.count - 1} at most once")
        for group in groups:
            for node in group:
                for other in nodes:
                    if other not in group:
                        neighbour = ("neigh", "replace", self.address(other), "lladdr", NOWHERE_MAC)
                        ip("-n", self.names[node], *neighbour, "nud", "permanent", "dev", self.inside(node))
                        self.cut.append((node, self.address(other)))

    def isolate(self, node: int) -> None:
        """Split `node` from all the others (for 3 nodes: the 1 | 2 split)."""
        self.partition([[node], [other for other in range(self.count) if other != node]])

    def heal(self) -> None:
        """Forget the false neighbour entries: the next packet asks ARP for the real one."""
        while self.cut:
            node, address = self.cut.pop()
            ip("-n", self.names[node], "neigh", "del", address, "dev", self.inside(node), check=False)

    def close(self) -> None:
        """Remove the namespaces and links (idempotent; also run at exit and on SIGTERM/SIGHUP)."""
        if self.closed:
            return
        self.closed = True
        self.cut.clear()
        for node, name in enumerate(self.names):
            ip("link", "delete", self.outside(node), check=False)
            ip("netns", "delete", name, check=False)
        ip("link", "delete", self.bridge, check=False)


def _install_cleanup(net: Netns) -> None:
    """Tear down at interpreter exit, and turn SIGTERM/SIGHUP into SystemExit so `finally` blocks run first."""
    atexit.register(net.close)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can be set from the main thread only; atexit still cleans up
    for number in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) in (signal.SIG_DFL, None):
            signal.signal(number, _exit_on_signal)


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(128 + number)
