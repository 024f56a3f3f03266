"""API tokens (`--acl-tokens FILE`): who may read, change jobs, or operate the cluster.

The file is YAML: `tokens: [{name: ci, secret: "...", role: write}, ...]`. Roles are ordered: `admin` may do
everything `write` may, and `write` everything `read` may. A secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import yaml

ROLES = ("read", "write", "admin")
MIN_SECRET_LENGTH = 16


class TokenFileError(ValueError):
    """The token file cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class AccessTokens:
    """The tokens of one file, looked up by secret."""

    def __init__(self, tokens: dict[str, Token]) -> None:
        # Keyed by the secret's digest: a lookup compares digests, never the secrets themselves.
        self._by_digest = {_digest(secret): token for secret, token in tokens.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, secret: str) -> Token | None:
        """The token whose secret this is, or None."""
        wanted = _digest(secret)
        found = None
        for digest, token in self._by_digest.items():
            if hmac.compare_digest(digest, wanted):
                found = token
        return found


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def load_tokens(path: str | Path) -> AccessTokens:
    """Read and check a token file; a TokenFileError says what is wrong with which entry."""
    where = f"acl-tokens file {path}"
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise TokenFileError(f"{where}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise TokenFileError(f"{where}: is not YAML ({error})") from None
    entries = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TokenFileError(
            f'{where}: write `tokens: [{{name: ci, secret: "...", role: write}}]` with at least one token'
        )
    tokens: dict[str, Token] = {}
    names: set[str] = set()
    for index, entry in enumerate(entries):
        at = f"{where}: tokens[{index}]"
        if not isinstance(entry, dict):
            raise TokenFileError(f"{at} must be a mapping with name, secret and role")
        unknown = sorted(set(entry) - {"name", "secret", "role"})
        if unknown:
            raise TokenFileError(f"{at} has unknown key(s) {', '.join(unknown)}; the keys are name, secret, role")
        name, secret, role = entry.get("name"), entry.get("secret"), entry.get("role")
        if not isinstance(name, str) or not name.strip():
            raise TokenFileError(f"{at}: name must be a non-empty string, e.g. ci")
        if name in names:
            raise TokenFileError(f"{at}: name {name!r} is used twice; each token needs its own name")
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            raise TokenFileError(
                f"{at} ({name}): secret must be a string of at least {MIN_SECRET_LENGTH} characters; "
                "`horae keygen` prints a good one"
            )
        if secret in tokens:
            raise TokenFileError(f"{at} ({name}): the same secret as {tokens[secret].name}; give each token its own")
        if role not in ROLES:
            raise TokenFileError(f"{at} ({name}): role must be one of {', '.join(ROLES)}, got {role!r}")
        names.add(name)
        tokens[secret] = Token(name=name, role=role)
    return AccessTokens(tokens)
