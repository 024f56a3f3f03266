"""The http executor's job configuration: Dkron's `executor_config` keys, parsed and checked.

Every key is a string (Dkron's executor_config is a string map). A bad value fails the execution
with a message that names the key and says how to fix it, before any request is sent; the same
keys are described by `CONFIG_SCHEMA`, which the API uses to reject a bad job at save time.
Where Dkron silently went on with a default (unparsable headers or timeout, an unreadable
certificate), horae refuses instead: a job that quietly runs differently than written is worse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from horae_plugins.http.errors import config_error
from horae_plugins.http.tls import TlsSettings

DEFAULT_TIMEOUT_SECONDS = 30.0  # as Dkron

# Go's strconv.ParseBool, which Dkron uses for tlsNoVerifyPeer.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# RFC 9110 tokens: what a method or a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_STATUS_CODE = re.compile(r"\d{3}")

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "method": {
            "type": "string",
            "pattern": r"^\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*$",
            "description": "The request method, in uppercase: GET, POST, PUT, DELETE…",
        },
        "url": {
            "type": "string",
            "pattern": r"^\s*[hH][tT][tT][pP][sS]?://[^/?#\s]+",
            "description": "The request URL, http:// or https://. Redirects are followed (at most 10), as Dkron.",
        },
        "headers": {
            "type": "string",
            "description": 'A JSON array of "Name: value" strings, such as ["Content-Type: application/json"]. '
            "The value is everything after the first colon, so it may contain colons itself.",
        },
        "body": {"type": "string", "description": "The request body, sent as is (UTF-8)."},
        "timeout": {
            "type": "string",
            "pattern": r"^\s*(|\d+(\.\d*)?|\.\d+)\s*$",
            "description": "Fail when the whole exchange (connect, send, headers and body) takes longer than this "
            "many seconds. Default 30; 0 means no limit of its own (the job's timeout still applies).",
        },
        "expectCode": {
            "type": "string",
            "pattern": r"^[\s\d,]*$",
            "description": "Comma-separated response codes that count as success, such as 200,206. "
            "Empty: any response code succeeds, as in Dkron.",
        },
        "expectBody": {
            "type": "string",
            "description": "A regular expression the response body must contain a match of, such as success. "
            "Empty: any body.",
        },
        "debug": {
            "type": "string",
            "description": 'Put the request and response lines and headers before the body in the output ("true"). '
            "As Dkron, any non-empty value turns it on, except false/0.",
        },
        "tlsNoVerifyPeer": {
            "type": "string",
            "enum": sorted(_TRUE | _FALSE | {""}),
            "description": 'Do not verify the server\'s TLS certificate ("true"); default "false".',
        },
        "tlsCertificateFile": {
            "type": "string",
            "description": "PEM file with the client certificate, for servers that require mutual TLS.",
        },
        "tlsCertificateKeyFile": {
            "type": "string",
            "description": "PEM file with the client certificate's private key (may be omitted when the "
            "certificate file holds the key too).",
        },
        "tlsRootCAsFile": {
            "type": "string",
            "description": "PEM file of the CA certificates to trust instead of the system's.",
        },
    },
    "required": ["method", "url"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class HttpConfig:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    timeout: float | None
    expect_codes: frozenset[int]
    expect_code_text: str
    expect_body: re.Pattern[str] | None
    debug: bool
    tls: TlsSettings


def parse_config(config: dict[str, str]) -> HttpConfig:
    """A checked HttpConfig, or ExecutionError naming the key that is wrong."""
    expect_codes = parse_expect_code(config.get("expectCode", ""))
    return HttpConfig(
        method=parse_method(config.get("method", "")),
        url=parse_url(config.get("url", "")),
        headers=parse_headers(config.get("headers", "")),
        body=config.get("body", "").encode(),
        timeout=parse_timeout(config.get("timeout", "")),
        expect_codes=expect_codes,
        expect_code_text=",".join(str(code) for code in sorted(expect_codes)),
        expect_body=parse_expect_body(config.get("expectBody", "")),
        debug=parse_debug(config.get("debug", "")),
        tls=TlsSettings(
            no_verify_peer=parse_bool("tlsNoVerifyPeer", config.get("tlsNoVerifyPeer", "")),
            certificate_file=config.get("tlsCertificateFile", "").strip(),
            certificate_key_file=config.get("tlsCertificateKeyFile", "").strip(),
            root_cas_file=config.get("tlsRootCAsFile", "").strip(),
        ),
    )


def parse_method(text: str) -> str:
    method = text.strip()
    if not method:
        raise config_error("method is empty: set it to GET, POST, PUT, DELETE…")
    if not _TOKEN.fullmatch(method):
        raise config_error(f"method {text!r} is not an HTTP method (examples: GET, POST)")
    return method


def parse_url(text: str) -> str:
    url = text.strip()
    if not url:
        raise config_error("url is empty: set it to the http:// or https:// address to call")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise config_error(f"url {text!r} is not a valid URL: {error}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise config_error(f"url {text!r} is not an http:// or https:// URL with a host")
    return url


def parse_headers(text: str) -> list[tuple[str, str]]:
    """Dkron's JSON array of "Name: value"; the value is what follows the first colon, trimmed.

    Dkron cut the value at its second colon (`Authorization: Basic a:b` lost `:b`); here it is kept whole.
    """
    if not text.strip():
        return []
    try:
        items = json.loads(text)
    except ValueError as error:
        raise config_error(
            f'headers is not valid JSON ({error}): write a JSON array such as ["Content-Type: application/json"]'
        ) from None
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise config_error('headers must be a JSON array of "Name: value" strings, such as ["Accept: text/plain"]')
    headers: dict[str, tuple[str, str]] = {}  # by lower-case name: a later entry replaces, as Go's Header.Set
    for item in items:
        if not item.strip():
            continue  # Dkron skips empty entries
        name, colon, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _TOKEN.fullmatch(name):
            raise config_error(f'headers entry {item!r} is not "Name: value"')
        if "\r" in value or "\n" in value:
            raise config_error(f"headers entry {name!r} has a line break in its value")
        headers[name.lower()] = (name, value)
    return list(headers.values())


def parse_timeout(text: str) -> float | None:
    """Seconds (Dkron: a whole number; fractions are accepted too); empty is 30, 0 is no limit."""
    value = text.strip()
    if not value:
        return DEFAULT_TIMEOUT_SECONDS
    if not _NUMBER.fullmatch(value):
        raise config_error(f"timeout {text!r} is not a number of seconds (examples: 30, 2.5; 0 for no limit)")
    return float(value) or None


def parse_expect_code(text: str) -> frozenset[int]:
    codes = set()
    for item in text.split(","):
        if not item.strip():
            continue
        if not _STATUS_CODE.fullmatch(item.strip()):
            raise config_error(f"expectCode item {item.strip()!r} is not a response code (example: 200,206)")
        codes.add(int(item))
    return frozenset(codes)


def parse_expect_body(text: str) -> re.Pattern[str] | None:
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as error:
        raise config_error(f"expectBody {text!r} is not a valid regular expression: {error}") from None


def parse_debug(text: str) -> bool:
    """Dkron turns debug on for any non-empty value; an explicit false turns it off here."""
    value = text.strip()
    return bool(value) and value not in _FALSE


def parse_bool(key: str, text: str) -> bool:
    """Go's strconv.ParseBool; empty is false."""
    value = text.strip()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise config_error(f'{key} must be "true" or "false", not {text!r}')
