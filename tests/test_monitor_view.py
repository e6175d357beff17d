"""The view (terminal, plain, JSON, log file, raw), the key state machine and the status line."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from rtflash import redact
from rtflash.monitor.keys import Action, feed, step
from rtflash.monitor.parser import LineSplitter, LogLine, parse
from rtflash.monitor.status import Status
from rtflash.monitor.view import RawSink, View

BOOT = (b"\x1b[0;32mI (318) cpu_start: Starting scheduler.\x1b[0m\r\n"
        b"\x1b[0;33mW (320) wifi_sta: disconnected (reason 201), retry in 2000 ms\x1b[0m\r\n"
        b"\x1b[0;31mE (400) rt_session: peer state: FAILED\x1b[0m\r\n"
        b"D (401) dbg: debug\r\nplain \x00 line\r\n")


def lines_of(data: bytes = BOOT, t: float = 0.0) -> list[LogLine]:
    return LineSplitter().feed(data, t)


def view(mode: str = "plain", **kw) -> tuple[View, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return View(out, err, mode, **kw), out, err


def test_plain_mode_writes_clean_text_only():
    v, out, err = view()
    v.show(lines_of())
    assert out.getvalue() == ("I (318) cpu_start: Starting scheduler.\n"
                              "W (320) wifi_sta: disconnected (reason 201), retry in 2000 ms\n"
                              "E (400) rt_session: peer state: FAILED\n"
                              "D (401) dbg: debug\nplain \\x00 line\n")
    assert "\x1b" not in out.getvalue() and err.getvalue() == ""
    assert v.lines_shown == 5


def test_host_timestamps_are_local_time_with_milliseconds():
    t = time.mktime((2024, 5, 1, 13, 14, 15, 0, 0, -1)) + 0.25
    v, out, _ = view(timestamps=True)
    v.show(lines_of(b"I (1) a: b\n", t))
    assert out.getvalue() == "13:14:15.250 I (1) a: b\n"


def test_terminal_mode_colours_by_level_with_richs_codes():
    v, out, _ = view("terminal", color_system="standard")
    v.show(lines_of())
    text = out.getvalue()
    assert "\x1b[32mI (318) cpu_start: Starting scheduler.\x1b[0m\n" in text
    assert "\x1b[33mW (320) wifi_sta:" in text
    assert "\x1b[31mE (400) rt_session: peer state: FAILED\x1b[0m\n" in text
    assert "D (401) dbg: debug\n" in text  # debug: the terminal's own colour, like ESP-IDF
    assert "\x1b[2m" not in text.split("D (401)")[0][-10:]


def test_panic_and_decoded_lines_have_their_own_styles():
    v, out, _ = view("terminal", color_system="standard")
    v.show([LogLine("Backtrace: 0x42000000:0x3fc00000", kind="panic"),
            LogLine("  0x42000000: app_main at main.c:3", kind="decoded")])
    assert out.getvalue() == ("\x1b[1;31mBacktrace: 0x42000000:0x3fc00000\x1b[0m\n"
                              "\x1b[36m  0x42000000: app_main at main.c:3\x1b[0m\n")


def test_grep_highlights_matches_inside_the_level_colour():
    v, out, _ = view("terminal", color_system="standard", grep=re.compile(r"reason \d+"))
    v.show(lines_of(b"W (320) wifi_sta: disconnected (reason 201), retry\n"))
    assert out.getvalue() == ("\x1b[33mW (320) wifi_sta: disconnected (\x1b[0m\x1b[1;30;43mreason 201\x1b[0m"
                              "\x1b[33m), retry\x1b[0m\n")


def test_no_colour_system_means_no_escape_codes_at_all():
    v, out, _ = view("terminal", color_system=None, grep=re.compile("a"), timestamps=True)
    v.show(lines_of())
    assert "\x1b" not in out.getvalue()


def test_json_mode_is_one_object_per_line():
    v, out, _ = view("json")
    v.show(lines_of(BOOT, 1700000000.5))
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0] == {"type": "line", "host_time": 1700000000.5, "level": "I", "device_time": "318",
                       "tag": "cpu_start", "message": "Starting scheduler.",
                       "text": "I (318) cpu_start: Starting scheduler.", "kind": "log"}
    assert rows[4]["level"] is None and rows[4]["message"] == "plain \\x00 line"
    v.status("wifi up", {"wifi": "up"})
    assert json.loads(out.getvalue().splitlines()[-1]) == {"type": "status", "summary": "wifi up", "wifi": "up"}


def test_status_row_is_redrawn_below_the_lines_on_a_terminal():
    v, out, _ = view("terminal", color_system="standard", width=30)
    v.status("wifi 192.168.1.23 | webrtc CONNECTED | dc oai-events open")
    v.show(lines_of(b"I (1) a: b\n"))
    v.close()
    row = "\x1b[7mwifi 192.168.1.23 | webrtc CO\x1b[0m"  # cut to the terminal width
    assert out.getvalue() == (row + "\r\x1b[2K\x1b[32mI (1) a: b\x1b[0m\n" + row +
                              "\r\x1b[2K--- status: wifi 192.168.1.23 | webrtc CONNECTED | dc oai-events open\n")


def test_status_changes_go_to_stderr_when_not_a_terminal():
    v, out, err = view()
    v.status("wifi up")
    v.status("wifi up")  # unchanged: not repeated
    assert out.getvalue() == "" and err.getvalue() == "--- status: wifi up\n"


def test_log_file_gets_every_line_and_the_notices():
    log = io.StringIO()
    v, _out, err = view(log=log)
    batch = lines_of(b"I (1) a: b\nno newline yet")
    batch += LineSplitter().flush()
    v.save(batch)
    splitter = LineSplitter()
    splitter.feed(b"prompt> ")
    v.save(splitter.flush())
    v.save(LineSplitter().feed(b"typed\n"))
    v.notice("reconnected on /dev/ttyACM1")
    assert log.getvalue() == "I (1) a: b\nprompt> typed\n--- rtflash: reconnected on /dev/ttyACM1\n"
    assert err.getvalue() == "--- reconnected on /dev/ttyACM1\n"


def test_notices_and_status_are_redacted():
    redact.register("s3cret-password-1")
    v, _out, err = view()
    v.notice("saw s3cret-password-1")
    v.status("ssid s3cret-password-1")
    assert "s3cret" not in err.getvalue() and err.getvalue().count("********") == 2


def test_raw_passes_every_byte_through_but_masks_secrets_even_split_across_reads():
    redact.register("canary-pw-7f3a9c1e")
    out, log = io.BytesIO(), io.BytesIO()
    sink = RawSink(out, log)
    noise = bytes(range(256))
    sink.feed(noise + b"\x1b[0;32mI (1) wifi: pw canary-pw-")
    sink.feed(b"7f3a9c1e ok\r\nkey sk-abcdefgh")
    sink.feed(b"ijklmnopqrstuvwxyz\r\ntail")
    sink.flush()
    expected = noise + b"\x1b[0;32mI (1) wifi: pw ******** ok\r\nkey ********\r\ntail"
    assert out.getvalue() == expected and log.getvalue() == expected
    assert sink.bytes_written == len(expected)


def test_raw_holds_nothing_back_without_a_possible_secret():
    out = io.BytesIO()
    sink = RawSink(out)
    sink.feed(b"abc \x00\xff\n")
    assert out.getvalue() == b"abc \x00\xff\n"


# --- keys: the state machine is a pure function -------------------------------------------

@pytest.mark.parametrize("keys, actions", [
    ("\x1d", ["quit"]),
    ("\x03", ["quit"]),
    ("\x14r", ["reset"]),
    ("\x14R", ["reset"]),
    ("\x14\x12", ["reset"]),
    ("\x14t", ["timestamps"]),
    ("\x14f", ["rebuild"]),
    ("\x14h", ["help"]),
    ("\x14\x1d", ["quit"]),
    ("\x14z", []),  # unknown after the menu key: nothing, and not sent
])
def test_key_sequences(keys, actions):
    menu, got = feed(False, keys)
    assert [a.kind for a in got] == actions and menu is False


def test_menu_state_survives_across_reads():
    menu, got = feed(False, "\x14")
    assert menu is True and got == []
    menu, got = feed(menu, "r")
    assert got == [Action("reset")] and menu is False


def test_other_keys_are_sent_to_the_device_in_one_write():
    _menu, got = feed(False, "help\r")
    assert got == [Action("send", b"help\r")]
    assert step(False, "\n") == (False, Action("send", b"\r"))
    assert step(True, "\x14") == (False, Action("send", b"\x14"))
    assert feed(False, "ab\x14tcd") == (False, [Action("send", b"ab"), Action("timestamps"), Action("send", b"cd")])


# --- status line: the firmware's own tags -----------------------------------------------------

FIRMWARE = b"""I (100) rtflash: firmware 0.3.1 board sonatino
I (1200) wifi_sta: connected to HomeNet
W (1300) wifi_sta: disconnected (reason 201), retry in 2000 ms
I (3400) wifi_sta: connected to HomeNet
I (3500) wifi_sta: got ip: 192.168.1.23
I (4000) rt_session: peer state: CHECKING
I (4100) rt_session: peer state: CONNECTED
I (4200) rt_session: datachannel open: oai-events
I (4300) rt_session: event: session.created
I (9000) rt_session: event: response.audio_transcript.done
"""


def test_status_follows_the_firmware_log():
    status = Status()
    summaries = []
    for line in LineSplitter().feed(FIRMWARE):
        if status.observe(line):
            summaries.append(status.summary())
    assert summaries == [
        "fw 0.3.1 on sonatino",
        "wifi associated (HomeNet) | fw 0.3.1 on sonatino",
        "wifi down (reason 201, retry in 2000 ms) (HomeNet) | fw 0.3.1 on sonatino",
        "wifi associated (HomeNet) | fw 0.3.1 on sonatino",
        "wifi 192.168.1.23 | fw 0.3.1 on sonatino",
        "wifi 192.168.1.23 | webrtc CHECKING | fw 0.3.1 on sonatino",
        "wifi 192.168.1.23 | webrtc CONNECTED | fw 0.3.1 on sonatino",
        "wifi 192.168.1.23 | webrtc CONNECTED | dc oai-events open | fw 0.3.1 on sonatino",
        "wifi 192.168.1.23 | webrtc CONNECTED | dc oai-events open | event session.created (#1) | fw 0.3.1 on sonatino",
        ("wifi 192.168.1.23 | webrtc CONNECTED | dc oai-events open | event response.audio_transcript.done (#2) "
         "| fw 0.3.1 on sonatino"),
    ]
    assert status.to_dict() == {"wifi": "up", "ssid": "HomeNet", "ip": "192.168.1.23", "peer": "CONNECTED",
                                "datachannel": "oai-events open", "last_event": "response.audio_transcript.done",
                                "events": 2, "firmware": "0.3.1", "board": "sonatino"}


def test_peer_going_down_closes_the_data_channel_and_other_tags_are_ignored():
    status = Status()
    for text in ("I (1) rt_session: datachannel open: oai-events", "W (2) rt_session: peer state: DISCONNECTED"):
        status.observe(parse(text))
    assert status.summary() == "webrtc DISCONNECTED | dc oai-events closed"
    assert not status.observe(parse("I (3) other: got ip: 10.0.0.1"))
    assert not status.observe(parse("wifi_sta: got ip: 10.0.0.1"))  # not a log line


def test_transient_state_takes_the_status_row_until_cleared():
    v, out, _ = view("terminal", color_system="standard", width=200)
    v.status("wifi up")
    v.transient("waiting for /dev/ttyACM0 to come back")
    v.transient(None)
    assert out.getvalue() == ("\x1b[7mwifi up\x1b[0m" "\r\x1b[2K\x1b[1;35mwaiting for /dev/ttyACM0 to come back\x1b[0m"
                              "\r\x1b[2K\x1b[7mwifi up\x1b[0m")
    plain, pout, perr = view()
    plain.transient("waiting")
    assert pout.getvalue() == perr.getvalue() == "", "not a terminal: only the reconnect line is said"


def test_release_clears_the_status_row_for_someone_else():
    v, out, _ = view("terminal", color_system=None)
    v.status("wifi up")
    v.release()
    v.release()
    assert out.getvalue() == "wifi up\r\x1b[2K"
