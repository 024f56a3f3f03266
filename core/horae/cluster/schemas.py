"""Plugin config schemas as the cluster keeps them: each distinct schema once, under a digest.

Every node reports the JSON Schema each of its plugins serves (Describe), keyed `kind:name`
(`executor:shell`). A member record holds only `plugin key -> digest` ("" when the plugin serves
none); the state machine holds `digest -> schema text` once, so a thousand agents with the same
plugins store each schema once. Pure functions: no Raft, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

from horae.logs import fields

log = logging.getLogger("horae.cluster.schemas")

# A digest names a schema; 128 bits of SHA-256 keep member records small and never collide in practice.
DIGEST_HEX_CHARS = 32
NO_SCHEMA = ""


def plugin_key(kind: str, name: str) -> str:
    """How a plugin is named in NodeInfo.config_schemas and member records: `executor:shell`."""
    return f"{kind}:{name}"


def split_plugin_key(key: str) -> tuple[str, str]:
    kind, _, name = key.partition(":")
    return kind, name


def canonical_schema(text: str) -> str | None:
    """The schema as compact JSON with sorted keys (so equal schemas share a digest); None when there is none.

    A plugin that serves something other than a JSON object is treated as serving no schema.
    """
    if not text.strip():
        return None
    try:
        schema = json.loads(text)
    except ValueError as error:
        log.warning("plugin config schema is not JSON: ignored", extra=fields(error=str(error)))
        return None
    if not isinstance(schema, dict):
        log.warning("plugin config schema is not a JSON object: ignored", extra=fields(got=type(schema).__name__))
        return None
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def schema_digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_HEX_CHARS]


def schema_refs(reported: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """From `plugin key -> schema JSON` (as a node reports it): (`plugin key -> digest`, `digest -> schema`)."""
    refs: dict[str, str] = {}
    texts: dict[str, str] = {}
    for key, text in reported.items():
        canonical = canonical_schema(text)
        if canonical is None:
            refs[key] = NO_SCHEMA
            continue
        digest = schema_digest(canonical)
        refs[key] = digest
        texts[digest] = canonical
    return refs, texts


def missing_schemas(refs: Mapping[str, str], texts: Mapping[str, str], stored: Mapping[str, str]) -> dict[str, str]:
    """The schemas a put_member command must carry: those `refs` name that the state does not hold yet."""
    return {digest: texts[digest] for digest in set(refs.values()) if digest and digest not in stored}
