"""How the allowlists and rules match what a request names, at boundaries only (pure).

- An image prefix matches the registry host whole, then path segments whole:
  `ghcr.io/acme` allows `ghcr.io/acme/web` and `ghcr.io/acme` itself, never
  `ghcr.io/acme-attacker/web`; `123456789012.dkr.ecr.eu-west-1.amazonaws.com`
  never allows `123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example/x`.
  A prefix that ends in `/` means "below this path" (`ghcr.io/acme/` allows
  `ghcr.io/acme/web`, not `ghcr.io/acme`). A host's port is part of the host.
- A pattern of names or ARNs is a shell-style glob matched whole and
  case-sensitively, in which `*` and `?` never cross a `/` or a `:`: `prod-*`
  allows `prod-eu`, `web` allows only `web`, and
  `arn:aws:ecs:eu-west-1:*:cluster/prod` allows that cluster in any account of
  that region and nothing else.
"""

from __future__ import annotations

import functools
import re

from chalicelib.core.locations import name_of

_SEPARATORS = "/:"


def prefix_allows(prefix: str, repository: str) -> bool:
    """True when `repository` is `prefix` itself or below it, at a boundary (see the module docstring)."""
    if not prefix:
        return False
    if prefix.endswith("/"):
        return repository.startswith(prefix)
    return repository == prefix or repository.startswith(prefix + "/")


def glob_matches(pattern: str, value: str) -> bool:
    """True when `value` matches the glob `pattern` whole; `*` and `?` stay within one segment."""
    return _compiled(pattern).fullmatch(value) is not None


def name_or_arn_matches(pattern: str, identifier: str) -> bool:
    """A pattern of ARNs matches the whole ARN; a pattern of names matches the name (an ARN's last part)."""
    if pattern.startswith("arn:"):
        return identifier.startswith("arn:") and glob_matches(pattern, identifier)
    return glob_matches(pattern, name_of(identifier))


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            parts.append(f"[^{_SEPARATORS}]*")
        elif char == "?":
            parts.append(f"[^{_SEPARATORS}]")
        elif char == "[" and (end := pattern.find("]", index + 2)) != -1:
            members = pattern[index + 1 : end]
            negated = members.startswith("!")
            body = re.escape(members[1:] if negated else members).replace("\\-", "-")
            parts.append(f"[^{body}{_SEPARATORS}]" if negated else f"[{body}]")
            index = end
        else:
            parts.append(re.escape(char))
        index += 1
    return re.compile("".join(parts))
