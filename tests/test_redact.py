"""The one redaction helper."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtflash import redact


def test_registered_secret_masked_everywhere():
    redact.register("hunter2-canary", None, "", "ab")
    assert redact.redact("pw=hunter2-canary; again hunter2-canary") == f"pw={redact.MASK}; again {redact.MASK}"
    assert redact.redact("ab stays") == "ab stays"
    assert redact.redact_bytes(b"x hunter2-canary y") == f"x {redact.MASK} y".encode()


def test_key_shapes_masked_without_registration():
    text = "Authorization: Bearer abcdefghijklmnopqrstuvwxyz and sk-" "proj-ABCDEFGHIJKLMNOPQRSTUVWX"
    out = redact.redact(text)
    assert "abcdefghijklmnop" not in out and "sk-proj-ABC" not in out


def test_longest_secret_wins():
    redact.register("abcd", "abcdefgh")
    assert redact.redact("abcdefgh") == redact.MASK


def test_mask_display():
    assert redact.mask("") == "(empty)"
    assert redact.mask("short") == redact.MASK
    assert redact.mask("hunter2-long-password") == redact.MASK
    assert redact.mask("sk-" + "1234567890abcdef") == "sk-" + redact.MASK


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


def test_short_key_shapes_are_masked_but_words_with_sk_inside_are_not():
    assert redact.redact("key sk-test-CANARY12 ok") == "key ******** ok"
    assert redact.redact("(sk-proj-abcdefgh)") == "(********)"
    assert redact.redact("task-watchdog-timer risk-assessment sk-short") == "task-watchdog-timer risk-assessment sk-short"


@pytest.mark.parametrize("data, held", [
    (b"esp32> ", b""),  # a prompt: nothing could become a secret
    (b"waiting for wifi.....", b""),
    (b"key sk-", b"sk-"),  # an unregistered key shape, starting
    (b"key sk-test-CAN", b"sk-test-CAN"),
    (b"key s", b"s"),
    (b"keys", b""),
    (b"auth: Bearer abc", b"Bearer abc"),
    (b"auth: Bea", b"Bea"),
    (b"pw canary-p", b"canary-p"),  # a registered secret's prefix
    (b"pw canary-pw-7f3a9c1e", b""),  # whole: redacted where it is
    (b"pw canary-pw-7f3a9c1e and c", b"c"),
])
def test_held_tail_holds_only_what_could_still_become_a_secret(data, held):
    redact.register("canary-pw-7f3a9c1e")
    assert data[len(data) - redact.held_tail(data):] == held


def test_held_tail_never_cuts_through_a_complete_secret():
    redact.register("abcab", "p@ss w0rd")
    assert redact.held_tail(b"x abcab") == 5, "the suffix 'ab' could start another abcab: cut before the first"
    data = b"say p@ss w0rd p@ss"
    cut = len(data) - redact.held_tail(data)
    assert data[:cut] == b"say p@ss w0rd " and redact.redact_bytes(data[:cut]) == b"say ******** "


def test_mask_unfinished_masks_a_secret_cut_short_at_the_end():
    redact.register("canary-pw-7f3a9c1e")
    assert redact.mask_unfinished(b"pw canary-pw") == b"pw ********"
    assert redact.mask_unfinished(b"pw can") == b"pw can", "shorter than 4: noise"
    assert redact.mask_unfinished(b"key sk-live-1") == b"key ********"
    assert redact.mask_unfinished(b"auth: Bearer x") == b"auth: Bearer ********"
    assert redact.mask_unfinished(b"key sk-") == b"key sk-" and redact.mask_unfinished(b"done") == b"done"


SECRET_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=0x24f), min_size=4, max_size=24)
PLAIN = st.text(st.characters(min_codepoint=32, max_codepoint=0x24f, blacklist_characters="sBk"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(SECRET_TEXT, PLAIN, PLAIN, st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_a_stream_cut_anywhere_shows_the_secret_only_masked(secret, before, after, cuts):
    """Show what `held_tail` releases at each pause, the rest at the end: the joined output is exactly
    the whole stream redacted in one piece, so no cut ever let a fragment of a secret out."""
    redact.clear()
    redact.register(secret)
    data = (before + secret + after + "\n").encode()
    shown, pending = [], b""
    for a, b in itertools.pairwise(sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})):
        pending += data[a:b]
        keep = redact.held_tail(pending)
        shown.append(redact.redact_bytes(pending[: len(pending) - keep]))
        pending = pending[len(pending) - keep:]
    shown.append(redact.redact_bytes(redact.mask_unfinished(pending)))
    assert b"".join(shown) == redact.redact_bytes(data)
