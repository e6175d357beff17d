"""The one redaction helper."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtflash import redact


def test_registered_secret_masked_everywhere():
    redact.register("hunter2-canary", None, "", "ab")
    assert redact.redact("pw=hunter2-canary; again hunter2-canary") == f"pw={redact.MASK}; again {redact.MASK}"
    assert redact.redact("ab stays") == "ab stays"
    assert redact.redact_bytes(b"x hunter2-canary y") == f"x {redact.MASK} y".encode()


def test_key_shapes_masked_without_registration():
    text = "Authorization: Bearer abcdefghijklmnopqrstuvwxyz and sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX"
    out = redact.redact(text)
    assert "abcdefghijklmnop" not in out and "sk-proj-ABC" not in out


def test_longest_secret_wins():
    redact.register("abcd", "abcdefgh")
    assert redact.redact("abcdefgh") == redact.MASK


def test_mask_display():
    assert redact.mask("") == "(empty)"
    assert redact.mask("short") == redact.MASK
    assert redact.mask("hunter2-long-password") == redact.MASK
    assert redact.mask("sk-1234567890abcdef") == "sk-" + redact.MASK


@given(st.text(min_size=4, max_size=20), st.text(max_size=40), st.text(max_size=40))
def test_never_leaks_registered_secret(secret, before, after):
    redact.clear()
    redact.register(secret)
    assert secret not in redact.redact(before + secret + after) or secret in redact.MASK


def test_shape_hints_cover_every_key_shape():
    """redact() runs the key-shape regex only when a hint occurs (it is the costly step on a fast log);
    if redact.py learns a new shape, this fails until the hints cover it."""
    from rtflash.redact import _SHAPES, SHAPE_HINTS

    starts = tuple(h if h.startswith("sk-") else f"(?<={h})" for h in SHAPE_HINTS)
    alternatives = [alt.removeprefix("(?<![A-Za-z0-9])") for alt in _SHAPES.pattern.split("|")]
    assert all(alt.startswith(starts) for alt in alternatives), _SHAPES.pattern
    assert redact.redact("auth: Bearer abcdefghijklmnopqrstuvwxyz0123") == "auth: Bearer ********"
