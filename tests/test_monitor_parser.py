"""The line parser: ESP-IDF log lines, partial lines, bad bytes, filters, wrong-baud detection."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtflash import redact
from rtflash.monitor.parser import (
    GarbageDetector,
    LineSplitter,
    clean,
    decode_lines,
    parse,
    parse_filters,
    passes,
)


@pytest.mark.parametrize("text, level, time, tag, message", [
    ("I (1234) wifi_sta: got ip: 192.168.1.23", "I", "1234", "wifi_sta", "got ip: 192.168.1.23"),
    ("E (0) boot: Factory app partition is not bootable", "E", "0", "boot", "Factory app partition is not bootable"),
    ("W (12:34:56.789) rt_session: peer state: FAILED", "W", "12:34:56.789", "rt_session", "peer state: FAILED"),
    ("D (55) esp_image: segment 0: paddr=0x00010020", "D", "55", "esp_image", "segment 0: paddr=0x00010020"),
    ("V (56) my tag: with: colons", "V", "56", "my tag", "with: colons"),
    ("I app_main: log v2 without a timestamp", "I", "", "app_main", "log v2 without a timestamp"),
])
def test_parses_esp_idf_log_lines(text, level, time, tag, message):
    line = parse(text, 1.5)
    assert (line.level, line.device_time, line.tag, line.message, line.text) == (level, time, tag, message, text)
    assert line.host_time == 1.5


@pytest.mark.parametrize("text", [
    "ESP-ROM:esp32s3-20210327", "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)",
    "Backtrace: 0x42008a3b:0x3fc9a2f0", "I", "I (", "X (12) tag: not a level", "", "Iam: not a log line",
])
def test_other_lines_stay_plain(text):
    line = parse(text)
    assert line.level == "" and line.text == text and line.to_dict()["message"] == text


def test_colour_escapes_from_the_device_are_dropped_before_parsing():
    lines = LineSplitter().feed(b"\x1b[0;32mI (318) cpu_start: Starting scheduler.\x1b[0m\r\n")
    assert [(ln.level, ln.tag, ln.message, ln.text) for ln in lines] == [
        ("I", "cpu_start", "Starting scheduler.", "I (318) cpu_start: Starting scheduler.")]


def test_partial_lines_are_joined_across_chunks():
    splitter = LineSplitter()
    assert splitter.feed(b"I (1) a: he") == []
    assert splitter.feed(b"llo\r") == []
    lines = splitter.feed(b"\nW (2) b: second\nthird (no newline yet)")
    assert [ln.text for ln in lines] == ["I (1) a: hello", "W (2) b: second"]
    assert splitter.tail == b"third (no newline yet)"
    flushed = splitter.flush(9.0)
    assert [(ln.text, ln.partial, ln.host_time) for ln in flushed] == [("third (no newline yet)", True, 9.0)]
    assert splitter.flush() == []


def test_a_utf8_character_cut_by_a_read_is_decoded_whole():
    data = "I (5) tag: température 25 °C\n".encode()
    cut = data.index(b"\xc3") + 1  # in the middle of "é"
    splitter = LineSplitter()
    lines = splitter.feed(data[:cut]) + splitter.feed(data[cut:])
    assert [ln.message for ln in lines] == ["température 25 °C"]


def test_invalid_utf8_nul_and_control_bytes_are_shown_escaped():
    lines = LineSplitter().feed(b"bin\x00ary \xff\xfe noise\x07 \x1b stray esc \x1b[2J\x9b\n")
    assert [ln.text for ln in lines] == ["bin\\x00ary \\xff\\xfe noise\\x07 \\x1b stray esc \\x9b"]


def test_c1_controls_and_bidi_overrides_are_escaped():
    assert clean("a\u0085b\u202ec\u2028d\te") == "a\\u0085b\\u202ec\\u2028d\te"


def test_a_stream_without_newlines_is_still_shown_in_pieces():
    splitter = LineSplitter(max_line=100)
    lines = splitter.feed(b"\xaa" * 150)
    assert len(lines) == 1 and lines[0].partial and lines[0].text == "\\xaa" * 150
    assert splitter.tail == b""


def test_registered_secrets_and_key_shapes_are_redacted_per_batch():
    redact.register("hunter2-wifi-pass")
    out = decode_lines(b"I (1) wifi: pass hunter2-wifi-pass\nkey sk-" b"abcdefghijklmnopqrstuvwx end")
    assert out == ["I (1) wifi: pass ********", "key ******** end"]


def test_filters_follow_esp_idf_monitor_rules():
    rules = parse_filters(["wifi_sta:D", "*:W"])
    assert passes(parse("D (1) wifi_sta: scanning"), rules)
    assert not passes(parse("V (1) wifi_sta: details"), rules)
    assert passes(parse("W (1) other: careful"), rules)
    assert not passes(parse("I (1) other: chatter"), rules)
    assert passes(parse("plain text"), rules)  # '*' above N shows non-log lines
    only = parse_filters(["rt_session"])  # no level: verbose; every other tag hidden
    assert passes(parse("V (1) rt_session: x"), only)
    assert not passes(parse("E (1) wifi_sta: x"), only)
    assert not passes(parse("plain text"), only)
    panic = parse("Backtrace: 0x42000000:0x3fc00000")
    panic.kind = "panic"
    assert passes(panic, only), "a crash is never filtered away"
    assert parse_filters(["a:E,b:I"]) == {"a": 1, "b": 3}
    assert passes(parse("I (1) x: y"), {})


@pytest.mark.parametrize("spec", ["wifi:Q", ":I", "a:b:c:"])
def test_bad_filters_say_how_to_write_one(spec):
    with pytest.raises(ValueError, match="use TAG:LEVEL"):
        parse_filters([spec])


def test_garbage_detector_says_wrong_baud_once():
    import random

    rng = random.Random(7)
    det = GarbageDetector()
    noise = bytes(rng.randrange(256) for _ in range(300))
    said = [det.feed(noise, LineSplitter().feed(noise)) for _ in range(5)]
    assert said == [False, True, False, False, False]


def test_garbage_detector_is_quiet_on_a_real_log_with_some_binary():
    det = GarbageDetector()
    chunk = b"I (27) boot: ESP-IDF v5.4 2nd stage bootloader\r\n" + b"\xff\x00\x01\x02" * 100
    assert not any(det.feed(chunk, LineSplitter().feed(chunk)) for _ in range(20))


def _lines(chunks: list[bytes]) -> list[tuple[str, bool]]:
    splitter = LineSplitter()
    out = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    out += splitter.flush(final=True)
    return [(ln.text, ln.partial) for ln in out]


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=4000), max_size=20))
def test_random_bytes_never_crash_and_chunking_does_not_matter(data, cuts):
    whole = _lines([data])
    assert _lines(_chunked(data, cuts)) == whole
    tail = data.rsplit(b"\n", 1)[-1]
    assert len(whole) == data.count(b"\n") + (1 if tail else 0)
    assert [partial for _text, partial in whole] == [False] * data.count(b"\n") + ([True] if tail else [])
    for text, _partial in whole:
        assert text.replace("\t", " ").isprintable(), repr(text)
        assert "\x1b" not in text and "\x00" not in text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("EWIDV"), st.integers(0, 10**9),
                          st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
                          st.text(st.characters(min_codepoint=32, max_codepoint=0x2ff,
                                                blacklist_categories=("Cc", "Cs", "Cf", "Zs", "Zl", "Zp"))
                                  | st.just(" "), max_size=60)),
                max_size=20))
def test_generated_log_lines_parse_back_exactly(entries):
    data = "".join(f"{lv} ({t}) {tag}: {msg}\r\n" for lv, t, tag, msg in entries).encode()
    splitter = LineSplitter()
    lines = splitter.feed(data)
    assert [(ln.level, ln.device_time, ln.tag, ln.message) for ln in lines] == [
        (lv, str(t), tag, msg) for lv, t, tag, msg in entries]
