"""One redaction helper for every printer, logger, subprocess echo and error message.

Secrets are registered once when they are resolved (credentials.py) and every output path passes its
text through `redact()`. Registration is process-wide on purpose: a secret must not leak just because
some code path forgot to thread it through.
"""

from __future__ import annotations

import re

MASK = "********"
_MASK_BYTES = MASK.encode()
_secrets: set[str] = set()
_ordered: list[tuple[str, bytes]] = []  # longest first, so a secret inside another is masked whole
# Shapes that are secret whatever their source: OpenAI keys and bearer tokens. Every shape starts with
# one of SHAPE_HINTS, so text without them skips the regex (it is the costly part on a 2 Mbaud log).
_SHAPES = re.compile(r"sk-[A-Za-z0-9_\-]{16,}|(?<=Bearer )[A-Za-z0-9_\-\.]{16,}")
SHAPE_HINTS = ("sk-", "Bearer ")


def register(*secrets: str | None) -> None:
    """Remember secrets to mask; values shorter than 4 characters are ignored (they would mask noise)."""
    added = {s for s in secrets if s and len(s) >= 4} - _secrets
    if added:
        _secrets.update(added)
        _ordered[:] = [(s, s.encode()) for s in sorted(_secrets, key=len, reverse=True)]


def clear() -> None:
    """Forget every registered secret (tests)."""
    _secrets.clear()
    _ordered.clear()


def redact(text: str) -> str:
    """Return `text` with every registered secret and every key-shaped token masked."""
    for secret, _ in _ordered:
        text = text.replace(secret, MASK)
    if any(hint in text for hint in SHAPE_HINTS):
        text = _SHAPES.sub(MASK, text)
    return text


def redact_bytes(data: bytes) -> bytes:
    """Byte-level redaction for raw streams (the monitor's --raw and --log)."""
    for _, secret in _ordered:
        data = data.replace(secret, _MASK_BYTES)
    return data


_TOKEN_TAIL = re.compile(rb"[A-Za-z0-9_\-.]{1,256}\Z")


def held_tail(data: bytes) -> int:
    """How many trailing bytes of a stream chunk might be the start of a secret (hold them back)."""
    m = _TOKEN_TAIL.search(data)
    best = len(m[0]) if m else 0
    for _, secret in _ordered:
        for n in range(min(len(secret) - 1, len(data)), best, -1):
            if data.endswith(secret[:n]):
                best = n
                break
    return best


def mask(value: str | None) -> str:
    """A display form that shows a value exists without showing any of it (an API key keeps its public `sk-`)."""
    if not value:
        return "(empty)"
    return ("sk-" if value.startswith("sk-") else "") + MASK
