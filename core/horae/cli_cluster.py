"""`horae members`, `horae leave`, `horae raft list-peers|remove-peer` and `horae keygen`, as Dkron's commands.

All but keygen talk to a server's HTTP API (`--address`, or HORAE_ADDR). A client agent has no API:
`horae leave` makes the server it talks to leave; a client agent leaves when it stops (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any

from horae.api_client import ApiClient
from horae.cluster.auth import new_key
from horae.table import format_table

MEMBER_HEADERS = ("NAME", "ADDRESS", "ROLE", "STATUS", "TAGS", "LAST HEARTBEAT")
PEER_HEADERS = ("Node", "ID", "Address", "State", "Voter")


def add_cluster_commands(commands: argparse._SubParsersAction) -> None:
    members = commands.add_parser("members", help="the cluster's members: servers and client agents")
    _api_options(members)
    members.set_defaults(run=members_list)

    leave = commands.add_parser(
        "leave",
        help="make the server at --address leave the cluster and stop (a leader hands its leadership over first)",
    )
    _api_options(leave)
    leave.set_defaults(run=leave_cluster)

    raft = commands.add_parser("raft", help="the Raft membership of the servers")
    sub = raft.add_subparsers(dest="raft_command", required=True, metavar="SUBCOMMAND")
    listing = sub.add_parser(
        "list-peers", help="the servers in the Raft membership, as the server at --address sees it"
    )
    _api_options(listing)
    listing.set_defaults(run=raft_list_peers)
    remove = sub.add_parser(
        "remove-peer", help="remove a (dead) server from the Raft membership; a live one should `horae leave`"
    )
    _api_options(remove)
    remove.add_argument("--peer-id", required=True, help="the server's node name or Raft address (host:port)")
    remove.set_defaults(run=raft_remove_peer)

    keygen = commands.add_parser("keygen", help="print a new cluster key for --encrypt (base64 of 32 random bytes)")
    keygen.set_defaults(run=keygen_print)


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="a server's API (default: $HORAE_ADDR or http://127.0.0.1:8080)")
    parser.add_argument("--token", help="API token (default: $HORAE_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.address, args.token)


def _print(args: argparse.Namespace, value: Any, headers: tuple[str, ...], rows: list) -> None:
    if args.json:
        print(json.dumps(value, indent=2))
    else:
        print(format_table(headers, rows) if rows else "nothing to show")


def _member_rows(members: list[dict[str, Any]]) -> list[tuple]:
    rows = []
    for member in members:
        tags = {k: v for k, v in (member.get("Tags") or {}).items() if k != "role"}
        address = f"{member.get('Addr') or ''}:{member.get('Port') or ''}" if member.get("Addr") else "-"
        rows.append(
            (
                member.get("Name", ""),
                address,
                member.get("role", ""),
                member.get("statusText", ""),
                ",".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-",
                member.get("last_heartbeat") or "-",
            )
        )
    return rows


def members_list(args: argparse.Namespace) -> int:
    members = _client(args).request("GET", "/v1/members")
    _print(args, members, MEMBER_HEADERS, _member_rows(members))
    return 0


def leave_cluster(args: argparse.Namespace) -> int:
    members = _client(args).request("POST", "/v1/leave")
    _print(args, members, MEMBER_HEADERS, _member_rows(members))
    return 0


def _peer_rows(peers: list[dict[str, Any]]) -> list[tuple]:
    return [
        (p.get("node") or "(unknown)", p["id"], p["address"], p["state"], str(p.get("voter", True)).lower())
        for p in peers
    ]


def raft_list_peers(args: argparse.Namespace) -> int:
    peers = _client(args).request("GET", "/v1/raft/peers")
    _print(args, peers, PEER_HEADERS, _peer_rows(peers))
    return 0


def raft_remove_peer(args: argparse.Namespace) -> int:
    peers = _client(args).request("DELETE", f"/v1/raft/peers/{urllib.parse.quote(args.peer_id, safe='')}")
    _print(args, peers, PEER_HEADERS, _peer_rows(peers))
    return 0


def keygen_print(args: argparse.Namespace) -> int:
    print(new_key())
    return 0
