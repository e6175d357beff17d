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
# Shapes that are secret whatever their source: OpenAI keys (`sk-` and 8+ key characters at the start
# of a word: `sk-test-CANARY12` is one, `task-watchdog` is not) and bearer tokens. Every shape starts
# with one of SHAPE_HINTS, so text without them skips the regex (it is the costly part on a 2 Mbaud log).
_SHAPES = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}|(?<=Bearer )[A-Za-z0-9_\-\.]{16,}")
_SHAPES_BYTES = re.compile(_SHAPES.pattern.encode())
SHAPE_HINTS = ("sk-", "Bearer ")
# The end of a stream chunk where a key shape may be starting or still running: `s`, `sk`, `sk-...`,
# `B` ... `Bearer`, `Bearer tok...`. Only these (and registered secrets' prefixes) are held back.
_OPEN_SHAPE = re.compile(rb"(?<![A-Za-z0-9])(?:s|sk|sk-[A-Za-z0-9_\-]*|B(?:e(?:a(?:r(?:e(?:r(?: [A-Za-z0-9_\-.]*)?)?)?)?)?)?)\Z")
_UNFINISHED = re.compile(rb"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]+\Z|(?<=Bearer )[A-Za-z0-9_\-.]+\Z")
_OPEN_WINDOW = 1024  # how far back an open key shape is looked for (a key is far shorter)


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


def held_tail(data: bytes) -> int:
    """How many trailing bytes of a stalled stream must wait for more: they could still become a secret.

    Why this is the right depth: a stream cut at a read or an idle pause is shown in pieces, each
    redacted alone, so a secret split across pieces would be shown in halves. The cut is put before
    any trailing text that is a registered secret's prefix or an unfinished key shape, then moved
    back further if a secret already complete in `data` would straddle it. What is before the cut
    can be redacted and shown now; what is after it waits for the next chunk (or `mask_unfinished`).
    """
    n = len(data)
    cut = n - _open_tail(data)
    return 0 if cut == n else n - _clear_of_secrets(data, cut)


def mask_unfinished(data: bytes) -> bytes:
    """The end of a stream (port gone, monitor stopped): a secret cut short there is masked too.

    A registered secret's first 4+ bytes or a started key (`sk-x...`, `Bearer x...`) is part of a
    secret even if the rest never comes; shorter prefixes are shown (masking them would hide noise).
    """
    n = len(data)
    m = _UNFINISHED.search(data, max(0, n - _OPEN_WINDOW))
    keep = n - m.start() if m else 0
    for _, secret in _ordered:
        for k in range(min(len(secret) - 1, n), max(keep, 3), -1):
            if data.endswith(secret[:k]):
                keep = k
                break
    return data[: n - keep] + _MASK_BYTES if keep else data


def _open_tail(data: bytes) -> int:
    """Length of the longest suffix that is a proper prefix of a registered secret or an open key shape."""
    m = _OPEN_SHAPE.search(data, max(0, len(data) - _OPEN_WINDOW))
    best = len(data) - m.start() if m else 0
    for _, secret in _ordered:
        for k in range(min(len(secret) - 1, len(data)), best, -1):
            if data.endswith(secret[:k]):
                best = k
                break
    return best


def _clear_of_secrets(data: bytes, cut: int) -> int:
    """Move `cut` back until no secret or key shape complete in `data` straddles it."""
    while cut > 0:
        start = cut
        for _, secret in _ordered:
            at = data.find(secret, max(0, cut - len(secret) + 1), cut + len(secret) - 1)
            if 0 <= at < start:
                start = at
        if b"sk-" in data or b"Bearer " in data:
            for m in _SHAPES_BYTES.finditer(data, max(0, cut - 4 * _OPEN_WINDOW), cut + 4 * _OPEN_WINDOW):
                if m.start() < start and m.end() > cut:
                    start = m.start()
        if start == cut:
            return cut
        cut = start
    return 0


def mask(value: str | None) -> str:
    """A display form that shows a value exists without showing any of it (an API key keeps its public `sk-`)."""
    if not value:
        return "(empty)"
    return ("sk-" if value.startswith("sk-") else "") + MASK
