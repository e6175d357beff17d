"""The monitor loop: a secret split by a read or a pause, a crash that resets the status, the decoder's
notices around a panic block, a port lost without reconnect.

The pause logic is driven through its timing input here (the data events' arrival times and the idle
ticks' clock), so every byte position and pause is covered in well under a second; the same cases run
with real time through the installed `rtflash monitor` in test_cli_monitor.py.
"""

from __future__ import annotations

import io
import json
import queue
import re

import pytest

from rtflash import redact
from rtflash.monitor.session import Monitor, MonitorOptions
from rtflash.monitor.view import RawSink, View
from tests.test_canary import API_KEY, PASSWORD

SHAPED_KEY = "sk-test-CANARY12"  # never registered: masked by its shape alone
LINE = f"I (5) wifi_sta: joining with {PASSWORD} key {API_KEY} and {SHAPED_KEY}, done\r\n".encode()
MASKED = "I (5) wifi_sta: joining with ******** key ******** and ********, done"
PAUSES = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)  # the idle flush comes after 0.1 s
TICK = 0.05  # the loop's idle tick (its queue timeout)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeReader:
    """The reader's interface, without a port: the test delivers the events itself."""

    path = "socket://device"

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def write(self, data: bytes) -> None: ...


def simulate(schedule: list[tuple[float, bytes]], mode: str = "plain", raw: bool = False) -> dict:
    """Deliver `schedule` ((arrival time, bytes) in order) like the loop would: idle ticks every 50 ms
    between arrivals, then the stream ends. Returns what the screen, the JSON and the log got."""
    out, err, log = _Recording(), io.StringIO(), io.StringIO()
    rout, rlog = io.BytesIO(), io.BytesIO()
    view = View(out, err, mode, log=None if raw else log, color_system="truecolor" if mode == "terminal" else None)
    monitor = Monitor(MonitorOptions(url=FakeReader.path), FakeReader(), view=view,
                      raw=RawSink(rout, rlog) if raw else None)
    last = None
    for at, data in schedule:
        if last is not None:
            tick = last + TICK
            while tick < at:
                monitor._idle(tick)
                tick += TICK
        monitor._event(("data", data, at))
        monitor._draw()
        last = at
    monitor._drain_after_stop()
    view.close()
    if raw:
        return {"screen": rout.getvalue().decode("latin-1"), "log": rlog.getvalue().decode("latin-1")}
    if mode == "json":
        rows = [json.loads(row) for row in out.getvalue().splitlines()]
        pieces = [row["text"] for row in rows if row["type"] == "line"]
        messages = [row["message"] for row in rows if row["type"] == "line"]
        return {"screen": "".join(pieces), "pieces": pieces, "messages": messages, "log": log.getvalue()}
    pieces = ANSI.sub("", out.getvalue().replace("\r\x1b[2K", "")).splitlines()
    return {"screen": "".join(pieces), "pieces": pieces, "log": log.getvalue(), "writes": out.writes}


class _Recording(io.StringIO):
    """stdout that counts its non-empty writes (how often the view showed something)."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += bool(text)
        return super().write(text)


def split_schedule(data: bytes, cut: int, pause: float) -> list[tuple[float, bytes]]:
    return [(100.0, data[:cut]), (100.0 + pause, data[cut:])]


def assert_masked_whole(got: dict, case: object = None) -> None:
    for where in ("screen", "log"):
        text = got[where]
        assert PASSWORD not in text and API_KEY[3:] not in text and "CANARY12" not in text, (case, where, text)
    assert got["screen"] == MASKED, (case, got.get("pieces"))
    assert got["log"] == MASKED + "\n", (case, got["log"])
    for piece in got.get("pieces", []):  # no piece holds a secret's fragment of 4+ characters
        for secret in (PASSWORD, API_KEY, SHAPED_KEY):
            assert not any(secret[i:i + 4] in piece for i in range(len(secret) - 3)), (case, piece, secret)


@pytest.mark.parametrize("mode", ["plain", "json", "terminal"])
def test_a_secret_split_at_every_byte_after_any_pause_is_never_shown_in_pieces(mode):
    redact.register(PASSWORD, API_KEY)
    for pause in PAUSES:
        for cut in range(len(LINE) + 1):
            got = simulate(split_schedule(LINE, cut, pause), mode)
            assert_masked_whole(got, (cut, pause))
            if mode == "json":
                assert "".join(got["messages"]).endswith("done")


@pytest.mark.parametrize("mode", ["plain", "json", "terminal"])
def test_slow_drip_one_byte_at_a_time(mode):
    redact.register(PASSWORD, API_KEY)
    for gap in (0.02, 0.2):
        got = simulate([(100.0 + i * gap, LINE[i:i + 1]) for i in range(len(LINE))], mode)
        assert_masked_whole(got, gap)
        if gap > 0.1 and mode == "plain":  # a pipe: shown as it comes, still one line
            assert got["pieces"] == [MASKED] and got["writes"] > 10, "shown as it comes, up to each secret"
        elif gap > 0.1:
            assert len(got["pieces"]) > 10, "shown as it comes, up to each secret"


def test_raw_mode_holds_a_split_secret_across_pauses_too():
    redact.register(PASSWORD, API_KEY)
    expected = LINE.decode().replace(PASSWORD, "********").replace(API_KEY, "********").replace(SHAPED_KEY, "********")
    for pause in (0.0, 0.2, 1.0):
        for cut in range(len(LINE) + 1):
            got = simulate(split_schedule(LINE, cut, pause), raw=True)
            assert got["screen"] == got["log"] == expected, (cut, pause)
    drip = simulate([(100.0 + i * 0.2, LINE[i:i + 1]) for i in range(len(LINE))], raw=True)
    assert drip["screen"] == expected


def test_a_stalled_prompt_is_shown_and_only_a_possible_secret_waits():
    redact.register(PASSWORD)
    got = simulate([(100.0, b"esp32> "), (100.5, b"pw canary"), (101.5, b"-pw-7f3a9c1e\r\n")], "terminal")
    assert got["pieces"] == ["esp32> ", "pw ", "********"]
    assert got["log"] == "esp32> pw ********\n"
    piped = simulate([(100.0, b"esp32> "), (100.5, b"pw canary"), (101.5, b"-pw-7f3a9c1e\r\n")])
    assert piped["pieces"] == ["esp32> pw ********"] and piped["writes"] == 3, "piped: one line, in three writes"


def test_a_secret_cut_short_by_the_end_of_the_stream_is_masked():
    redact.register(API_KEY)
    got = simulate([(100.0, f"I (1) app: key {API_KEY[:14]}".encode())])
    assert got["screen"] == "I (1) app: key ********" and got["log"] == "I (1) app: key ********\n"
    short = simulate([(100.0, b"I (1) app: key sk-ca\r\nI (2) app: s")])
    assert short["pieces"] == ["I (1) app: key sk-ca", "I (2) app: s"], "too short to be a key"


BOOTED = (b"I (310) rtflash: firmware 0.1.0 board sonatino\r\nI (3500) wifi_sta: got ip: 192.168.1.23\r\n"
          b"I (4100) rt_session: peer state: CONNECTED\r\nI (4300) rt_session: event: session.created\r\n"
          b"I (4400) rt_session: event: response.done\r\n")


@pytest.mark.parametrize("crash, after", [
    (b"Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\r\n", "device crashed"),
    (b"abort() was called at PC 0x42008a3b on core 0\r\n", "device crashed"),
    (b"Rebooting...\r\n", "device rebooting"),
    (b"ets Jun  8 2016 00:22:57\r\nrst:0xc (RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n",
     "device reset rst:0xc (RTC_SW_CPU_RST)"),
])
def test_a_crash_or_reset_starts_a_fresh_status(crash, after):
    got = status_rows([(100.0, BOOTED), (101.0, crash),
                       (102.0, b"I (4300) rt_session: event: session.created\r\n")])
    assert got[0]["summary"].startswith("wifi 192.168.1.23 | webrtc CONNECTED | event response.done (#2)")
    assert got[-2] == {"type": "status", "summary": after, "reset": after.removeprefix("device ")}
    assert got[-1]["summary"] == "event session.created (#1)", "nothing stale, the counter restarts"


def status_rows(schedule) -> list[dict]:
    out = io.StringIO()
    monitor = Monitor(MonitorOptions(url=FakeReader.path), FakeReader(), view=View(out, io.StringIO(), "json"))
    for at, data in schedule:
        monitor._event(("data", data, at))
        monitor._draw()
    monitor._drain_after_stop()
    return [row for row in map(json.loads, out.getvalue().splitlines()) if row["type"] == "status"][-3:]


PANIC = ("Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\r\n\r\n"
         "Core  0 register dump:\r\n"
         "PC      : 0x{pc:08x}  PS      : 0x00060030  A0      : 0x82008b2e  A1      : 0x3fc9a2f0\r\n"
         "A2      : 0x00000000  A3      : 0x3fc9a310  A4      : 0x00000001  A5      : 0x3fc9a2d0\r\n"
         "EXCVADDR: 0x00000000  LBEG    : 0x40056f5c  LEND    : 0x40056f72  LCOUNT  : 0xffffffff\r\n\r\n\r\n"
         "Backtrace: 0x{pc:08x}:0x3fc9a2f0 0x42008b2b:0x3fc9a310\r\n\r\n\r\n"
         "ELF file SHA256: 0011223344556677\r\n\r\nRebooting...\r\n")


@pytest.mark.parametrize("split", [False, True])
def test_no_addr2line_is_said_once_before_the_register_dump(crash_elf, monkeypatch, tmp_path, split):
    monkeypatch.setenv("PATH", str(tmp_path))  # no xtensa-esp32s3-elf-addr2line anywhere
    pc = crash_elf["symbols"]["crash_now"] + 4
    panic = PANIC.format(pc=pc).encode()
    log = io.StringIO()
    view = View(io.StringIO(), io.StringIO(), "plain", log=log)
    monitor = Monitor(MonitorOptions(url=FakeReader.path, elf=crash_elf["elf"], toolchain_prefix="xtensa-esp32s3-elf-"),
                      FakeReader(), view=view)
    chunks = [panic[i:i + 40] for i in range(0, len(panic), 40)] if split else [panic]
    for chunk in (b"I (1) app: running\r\n", *chunks, b"I (30) app: booted again\r\n"):
        monitor._event(("data", chunk, 100.0))
        monitor._draw()
    monitor._drain_after_stop()
    saved = log.getvalue().splitlines()
    notices = [i for i, text in enumerate(saved) if text.startswith("--- rtflash:")]
    assert len(notices) == 2, saved  # the missing toolchain, then the ELF that is not the running one
    assert "xtensa-esp32s3-elf-addr2line not found" in saved[notices[0]]
    assert saved[notices[0] + 1].startswith("Guru Meditation Error"), "before the block"
    assert "different firmware" in saved[notices[1]] and saved[notices[1] - 1].startswith("ELF file SHA256")
    assert saved[-2:] == ["Rebooting...", "I (30) app: booted again"]


def test_a_port_lost_without_reconnect_is_kept_for_the_cli_and_logged_once():
    out, err, log = _Recording(), io.StringIO(), io.StringIO()
    reader = FakeReader()
    monitor = Monitor(MonitorOptions(url=reader.path, reconnect=False), reader, view=View(out, err, "plain", log=log))
    for event in (("data", b"I (1) app: last words", 100.0), ("gone", "read failed: device reports readiness"),
                  ("end", "read failed: device reports readiness")):
        reader.events.put(event)
    assert monitor.run() == "port gone"
    assert monitor.lost == "read failed: device reports readiness"
    assert out.getvalue() == "I (1) app: last words\n" and err.getvalue() == ""
    assert log.getvalue() == ("I (1) app: last words\n"
                              "--- rtflash: port socket://device gone (read failed: device reports readiness)\n")


def test_a_port_that_comes_back_starts_a_fresh_status():
    """A USB-Serial-JTAG board drops off the bus on every reset: what the old run said is stale."""
    out, err = io.StringIO(), io.StringIO()
    monitor = Monitor(MonitorOptions(url=FakeReader.path), FakeReader(), view=View(out, err, "plain"))
    monitor._event(("data", BOOTED, 100.0))
    monitor._draw()
    monitor._event(("gone", "read failed: device disconnected"))
    monitor._event(("back", FakeReader.path, "reconnected"))
    said = err.getvalue().splitlines()
    assert said[0].startswith("--- status: wifi 192.168.1.23 | webrtc CONNECTED")
    assert said[1].startswith("--- reconnected on socket://device after")
    assert said[2:] == ["--- status: device reconnected"]
