"""Reading request bodies: a size cap, JSON errors that say where the text breaks, Dkron's multipart upload.

Like Dkron, the content type of a JSON body is not checked (`curl -d @job.json` sends a form content
type); the bytes must simply be JSON. Large bodies are decoded in a thread so the loop stays free.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
from typing import Any

from starlette.requests import Request

from horae.errors import BadRequest
from horae_web.errors import PayloadTooLarge

MAX_JOB_BODY_BYTES = 1024 * 1024
MAX_RESTORE_BODY_BYTES = 64 * 1024 * 1024
# Bodies larger than this are parsed in a thread rather than on the event loop.
INLINE_PARSE_BYTES = 64 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body has {declared} bytes; at most {limit} are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes; send less")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(raw: bytes, what: str = "the body") -> Any:
    """Parse JSON text; a BadRequest names the line and column where it stops being JSON."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(f"{what} is not UTF-8 text (byte {error.start} is invalid); send JSON") from None
    if not text.strip():
        raise BadRequest(f"{what} is empty; send JSON")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise BadRequest(
            f"{what} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno} (character {error.pos})"
        ) from None
    except RecursionError:
        raise BadRequest(f"{what} nests arrays or objects too deeply; flatten it") from None


async def parse_json(raw: bytes, what: str = "the body") -> Any:
    if len(raw) <= INLINE_PARSE_BYTES:
        return decode_json(raw, what)
    return await asyncio.to_thread(decode_json, raw, what)


async def read_json(request: Request, limit: int = MAX_JOB_BODY_BYTES) -> Any:
    return await parse_json(await read_body(request, limit))


def multipart_field(raw: bytes, content_type: str, field: str) -> bytes:
    """The content of form field `field` in a multipart/form-data body (the standard library parses it)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", errors="replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise BadRequest("the multipart body could not be read: check its boundary and Content-Type")
    names = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == field:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
        names.append(str(name))
    found = ", ".join(names) or "none"
    raise BadRequest(f"the multipart form has no field {field!r} (fields found: {found}); upload the file as {field!r}")


def _refuse_constant(name: str) -> Any:
    """Python's json reads NaN and Infinity; JSON (and Dkron) does not."""
    raise BadRequest(f"{name} is not a JSON value; use a number or null")
