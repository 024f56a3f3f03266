"""API tokens: the token file's checks, the role a request needs, and where a secret is read from."""

from __future__ import annotations

import pytest

from horae.access_tokens import TokenFileError, load_tokens
from horae_web.access import presented_secret, required_role

GOOD = """
tokens:
  - {name: viewer, secret: "read-secret-0123456789", role: read}
  - {name: ci, secret: "write-secret-0123456789", role: write}
  - {name: ops, secret: "admin-secret-0123456789", role: admin}
"""


def test_a_secret_finds_its_token_and_roles_are_ordered(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(GOOD)
    tokens = load_tokens(path)
    assert len(tokens) == 3
    ci = tokens.find("write-secret-0123456789")
    assert ci is not None and ci.name == "ci"
    assert ci.allows("read") and ci.allows("write") and not ci.allows("admin")
    assert tokens.find("admin-secret-0123456789").allows("admin")
    assert not tokens.find("read-secret-0123456789").allows("write")
    assert tokens.find("write-secret-012345678") is None
    assert tokens.find("") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tokens: []", "at least one token"),
        ("- a", "at least one token"),
        ("tokens: [{name: ci, secret: short, role: write}]", "at least 16 characters"),
        ('tokens: [{name: ci, secret: "0123456789abcdefgh", role: root}]', "role must be one of read, write, admin"),
        ('tokens: [{name: ci, secret: "0123456789abcdefgh", role: read, scope: x}]', "unknown key(s) scope"),
        (
            'tokens: [{name: a, secret: "0123456789abcdefgh", role: read}, {name: a, secret: "x123456789abcdefgh", '
            "role: read}]",
            "used twice",
        ),
        (
            'tokens: [{name: a, secret: "0123456789abcdefgh", role: read}, {name: b, secret: "0123456789abcdefgh", '
            "role: read}]",
            "the same secret as a",
        ),
        ("tokens: [", "is not YAML"),
    ],
)
def test_a_bad_token_file_is_refused_with_what_to_fix(tmp_path, text, expected):
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(TokenFileError) as raised:
        load_tokens(path)
    assert expected in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_missing_token_file_says_so(tmp_path):
    with pytest.raises(TokenFileError, match="cannot be read"):
        load_tokens(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/v1/jobs", "read"),
        ("GET", "/v1/raft/peers", "read"),
        ("HEAD", "/v1/members", "read"),
        ("POST", "/v1/jobs", "write"),
        ("PUT", "/v1/jobs/a", "write"),
        ("DELETE", "/v1/jobs/a", "write"),
        ("POST", "/v1/jobs/a/run", "write"),
        ("POST", "/v1/jobs/a/executions/1/stop", "write"),
        ("POST", "/v1/leave", "admin"),
        ("POST", "/v1/pause", "admin"),
        ("POST", "/v1/unpause", "admin"),
        ("POST", "/v1/restore", "admin"),
        ("DELETE", "/v1/raft/peers/s2", "admin"),
        ("GET", "/health", None),
        ("GET", "/metrics", None),
        ("POST", "/v1x", None),
    ],
)
def test_each_request_needs_its_role(method, path, role):
    assert required_role(method, path) == role


@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        ([(b"authorization", b"Bearer abc")], "abc"),
        ([(b"authorization", b"bearer  abc ")], "abc"),
        ([(b"x-horae-token", b"abc")], "abc"),
        ([(b"x-dkron-token", b"abc")], "abc"),
        ([(b"cookie", b"theme=dark; horae_token=abc")], "abc"),
        ([(b"authorization", b"Basic abc")], ""),
        ([], ""),
    ],
)
def test_a_secret_is_read_from_each_place_a_client_puts_it(headers, secret):
    assert presented_secret({"headers": headers}) == secret


def test_secrets_are_masked_and_a_returned_mask_keeps_the_stored_secret():
    from horae_web.secrets import MASK, masked, unmasked

    stored = {
        "name": "pub",
        "executor": "kafka",
        "executor_config": {"topic": "t", "saslPassword": "hunter2", "saslUsername": "u"},
        "processors": {"fluent": {"host": "h", "token": "abc"}},
        "notify": {"on": ["failure"], "webhook": {"url": "https://h", "headers": {"Authorization": "Bearer x"}}},
    }
    shown = masked(stored)
    assert shown["executor_config"] == {"topic": "t", "saslPassword": MASK, "saslUsername": "u"}
    assert shown["processors"]["fluent"] == {"host": "h", "token": MASK}
    assert shown["notify"]["webhook"]["headers"] == {"Authorization": MASK}
    assert stored["executor_config"]["saslPassword"] == "hunter2"  # the stored job is not touched

    edited = {**shown, "executor_config": {**shown["executor_config"], "topic": "t2"}}
    written = unmasked(edited, stored)
    assert written["executor_config"] == {"topic": "t2", "saslPassword": "hunter2", "saslUsername": "u"}
    assert written["processors"]["fluent"]["token"] == "abc"
    assert written["notify"]["webhook"]["headers"] == {"Authorization": "Bearer x"}
    # A new secret replaces the stored one; a new job keeps what it was given.
    changed = unmasked({**edited, "executor_config": {"saslPassword": "new"}}, stored)
    assert changed["executor_config"] == {"saslPassword": "new"}
    assert unmasked(shown, None) == shown
