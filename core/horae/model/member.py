"""A cluster member in Dkron's `/v1/members` shape (Serf's member fields) plus horae's own.

Dkron returns Serf members: capitalised `Name`, `Addr`, `Port`, `Tags`, `Status` as Serf's integer,
the protocol version fields, and `statusText`. horae has no Serf (membership follows Nomad's
heartbeats) but keeps the shape so Dkron tools read it, and adds `role` and `last_heartbeat`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from horae.model.errors import Problems
from horae.model.reading import FieldNames, describe, moment, own_keys, string_map, text, whole
from horae.model.times import format_time

# hashicorp/serf MemberStatus values.
STATUS_NONE = 0
STATUS_ALIVE = 1
STATUS_LEAVING = 2
STATUS_LEFT = 3
STATUS_FAILED = 4
STATUS_TEXT = {
    STATUS_NONE: "none",
    STATUS_ALIVE: "alive",
    STATUS_LEAVING: "leaving",
    STATUS_LEFT: "left",
    STATUS_FAILED: "failed",
}
STATUS_BY_TEXT = {text: status for status, text in STATUS_TEXT.items()}
ROLES = ("server", "client")
# What a Dkron 4 node reports; horae speaks no Serf protocol, these only keep clients' parsers happy.
SERF_PROTOCOL = {
    "ProtocolMin": 1,
    "ProtocolMax": 5,
    "ProtocolCur": 2,
    "DelegateMin": 2,
    "DelegateMax": 5,
    "DelegateCur": 4,
}
MEMBER_FIELDS = FieldNames(
    "member", ("Name", "Addr", "Port", "Tags", "Status", "statusText", "role", "last_heartbeat", *SERF_PROTOCOL)
)


@dataclass(slots=True)
class Member:
    name: str
    addr: str
    port: int
    tags: dict[str, str] = field(default_factory=dict)
    status: int = STATUS_ALIVE
    role: str = "client"  # "server" (holds Raft state) or "client" (runs jobs only)
    last_heartbeat: datetime.datetime | None = None

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.status, "unknown")

    def to_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Addr": self.addr,
            "Port": self.port,
            "Tags": dict(self.tags),
            "Status": self.status,
            **SERF_PROTOCOL,
            "statusText": self.status_text,
            "role": self.role,
            "last_heartbeat": format_time(self.last_heartbeat),
        }

    @classmethod
    def from_json(cls, data: Any, strict: bool = True, warnings: list[str] | None = None) -> Member:
        problems = Problems(strict)
        if not isinstance(data, dict):
            problems.error("", f"a member is a JSON object, got {describe(data)}")
            problems.raise_if_any("member")
        data = own_keys(problems, "", data, MEMBER_FIELDS)
        member = cls(
            name=text(problems, "Name", data.get("Name")),
            addr=text(problems, "Addr", data.get("Addr")),
            port=whole(problems, "Port", data.get("Port"), 0, 65535),
            tags=string_map(problems, "Tags", data.get("Tags"), "tag values", '{"role": "web"}'),
            status=whole(problems, "Status", data.get("Status"), STATUS_NONE, STATUS_FAILED, default=STATUS_ALIVE),
            role=text(problems, "role", data.get("role"), default="client"),
            last_heartbeat=moment(problems, "last_heartbeat", data.get("last_heartbeat")),
        )
        if not member.name:
            problems.error("Name", "required: the node's name")
        if member.role not in ROLES:
            problems.error("role", f'must be "server" or "client", got {describe(member.role)}')
        if warnings is not None:
            warnings.extend(problems.warnings)
        problems.raise_if_any("member")
        return member
