"""Panic decoding against a real ELF (gcc -g, code at 0x42000000) with the host's addr2line."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from rtflash.errors import ConfigError
from rtflash.monitor.decoder import (
    PanicDecoder,
    check_elf,
    find_elf,
    toolchain_prefix,
)
from rtflash.monitor.parser import LineSplitter, parse


def source_line(source: Path, needle: str) -> int:
    return next(i for i, text in enumerate(source.read_text().splitlines(), 1) if needle in text)


def feed_all(decoder: PanicDecoder, text: str) -> list:
    out = []
    for line in LineSplitter().feed(text.encode()):
        out.append(line)
        out += decoder.feed(line)
    return out


def test_backtrace_frames_decode_to_function_and_file_line(crash_elf):
    sym, src = crash_elf["symbols"], crash_elf["source"]
    pc_crash, pc_app, pc_main = sym["crash_now"] + 4, sym["app_main"] + 4, sym["main"] + 4
    decoder = PanicDecoder(crash_elf["elf"], toolchain_prefix("linux"))
    text = f"Backtrace: 0x{pc_crash:08x}:0x3fc9a2f0 0x{pc_app:08x}:0x3fc9a310 0x{pc_main:08x}:0x3fc9a330\r\n"
    out = feed_all(decoder, text)
    assert out[0].kind == "panic"
    decoded = [ln.text for ln in out[1:]]
    assert all(ln.kind == "decoded" for ln in out[1:])
    assert decoded == [
        f"  0x{pc_crash:08x}: crash_now at {src}:{source_line(src, 'sink = depth;')}",
        f"  0x{pc_app:08x}: inlined_step at {src}:{source_line(src, 'sink += n;')}",
        f"      (inlined by) app_main at {src}:{source_line(src, 'inlined_step(3);')}",
        f"  0x{pc_main:08x}: main at {src}:{source_line(src, 'app_main();')}",
    ]
    assert decoder.notices == []


GURU = """\
Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.

Core  0 register dump:
PC      : 0x{pc:08x}  PS      : 0x00060930  A0      : 0x82008c0e  A1      : 0x3fc9a2f0
A2      : 0x00000000  A3      : 0x3fc9a330  A4      : 0x00000001  A5      : 0x3fc93ab4
EXCVADDR: 0x00000000  LBEG    : 0x40056f5c  LEND    : 0x40056f72  LCOUNT  : 0xffffffff


Backtrace: 0x{pc:08x}:0x3fc9a2f0 0x{main:08x}:0x3fc9a310

ELF file SHA256: {sha}

Rebooting...
I (27) boot: ESP-IDF v5.4 2nd stage bootloader
"""


def test_register_dump_decodes_only_code_addresses(crash_elf):
    sym = crash_elf["symbols"]
    sha = hashlib.sha256(crash_elf["elf"].read_bytes()).hexdigest()[:16]
    decoder = PanicDecoder(crash_elf["elf"], "")
    out = feed_all(decoder, GURU.format(pc=sym["crash_now"] + 4, main=sym["main"] + 4, sha=sha))
    texts = [ln.text for ln in out]
    pc_line = texts.index(next(t for t in texts if t.startswith("PC      :")))
    assert texts[pc_line + 1] == f"  0x{sym['crash_now'] + 4:08x}: crash_now at {crash_elf['source']}:9"
    assert not texts[pc_line + 2].startswith("  0x"), "A2.. are data, not code: nothing to decode"
    assert sum(1 for t in texts if "crash_now at" in t) == 2  # PC and the first backtrace frame
    assert [ln.kind for ln in out if ln.text.startswith(("Guru", "Backtrace"))] == ["panic", "panic"]
    boot = out[-1]
    assert boot.level == "I" and boot.kind == "log" and not decoder.in_panic
    assert decoder.notices == [], "the SHA matches: nothing to warn about"


def test_an_elf_that_is_not_the_running_firmware_is_said_once(crash_elf):
    decoder = PanicDecoder(crash_elf["elf"], "")
    feed_all(decoder, "I (35) app_init: ELF file SHA256:  0123456789abcdef...\n" * 2 +
             "ELF file SHA256: 0123456789abcdef\n")
    assert len(decoder.notices) == 1
    assert "different firmware" in decoder.notices[0] and "0123456789abcdef" in decoder.notices[0]
    assert str(crash_elf["elf"]) in decoder.notices[0]


def test_missing_xtensa_toolchain_is_said_once_not_per_line(crash_elf, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no xtensa-esp32s3-elf-addr2line anywhere
    decoder = PanicDecoder(crash_elf["elf"], toolchain_prefix("esp32s3"))
    pc = crash_elf["symbols"]["crash_now"] + 4
    out = feed_all(decoder, f"Guru Meditation Error: Core  0 panic'ed\nPC      : 0x{pc:08x}\n"
                   + f"Backtrace: 0x{pc:08x}:0x3fc9a2f0\n" * 3)
    assert [ln.kind for ln in out] == ["panic"] * 5, "shown, undecoded"
    assert decoder.notices == [("xtensa-esp32s3-elf-addr2line not found on PATH; install the ESP-IDF toolchain "
                                "($IDF_PATH/install.sh esp32s3) and run `. $IDF_PATH/export.sh`; "
                                "backtraces are shown undecoded")]


def test_missing_elf_is_said_once(tmp_path):
    decoder = PanicDecoder(tmp_path / "nope.elf", "", elf_hint="build first (rtflash build --board sonatino)")
    out = feed_all(decoder, "Backtrace: 0x42001234:0x3fc9a2f0\n" * 2)
    assert len(out) == 2
    assert decoder.notices == ["no ELF to decode backtraces with: build first (rtflash build --board sonatino)"]


def test_ordinary_lines_with_addresses_are_not_looked_up(crash_elf, monkeypatch):
    from rtflash import proc

    calls = []
    monkeypatch.setattr(proc, "run", lambda *a, **k: calls.append(a))
    decoder = PanicDecoder(crash_elf["elf"], "")
    pc = crash_elf["symbols"]["crash_now"] + 4
    out = feed_all(decoder, f"I (5) esp_image: segment 1: vaddr=0x{pc:08x}\nrst:0x1 (POWERON),boot:0x8\n")
    assert [ln.kind for ln in out] == ["log", "log"] and calls == []


def test_toolchain_prefixes():
    assert toolchain_prefix("esp32s3") == "xtensa-esp32s3-elf-"
    assert toolchain_prefix("linux") == ""
    assert toolchain_prefix("esp32c3") == "riscv32-esp-elf-"


def test_find_elf_prefers_the_newest_build(tmp_path):
    build = tmp_path / "build" / "sonatino"
    assert find_elf(build) is None
    build.mkdir(parents=True)
    (build / "project_description.json").write_text(json.dumps({"app_elf": "rtflash.elf"}))
    assert find_elf(build) is None, "named but not built"
    (build / "rtflash.elf").write_bytes(b"\x7fELF")
    assert find_elf(build) == build / "rtflash.elf"
    pio = build / "pio" / "sonatino" / "firmware.elf"
    pio.parent.mkdir(parents=True)
    pio.write_bytes(b"\x7fELF")
    os.utime(pio, (2_000_000_000, 2_000_000_000))
    assert find_elf(build) == pio


def test_check_elf_rejects_a_bin(tmp_path):
    bin_file = tmp_path / "app.bin"
    bin_file.write_bytes(b"\xe9\x03\x02\x20")
    with pytest.raises(ConfigError, match=r"--elf .*app.bin is not an ELF file"):
        check_elf(bin_file)
    with pytest.raises(ConfigError, match="cannot read"):
        check_elf(tmp_path / "missing.elf")


def test_addr2line_noise_on_stderr_does_not_break_parsing(crash_elf, tmp_path, monkeypatch):
    """A real addr2line warns on stderr for odd ELFs; proc merges stderr, the decoder drops those lines."""
    wrapper = tmp_path / "addr2line"
    wrapper.write_text("#!/bin/sh\necho 'addr2line: DWARF error: something odd' >&2\nexec /usr/bin/addr2line \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    decoder = PanicDecoder(crash_elf["elf"], "")
    pc = crash_elf["symbols"]["crash_now"] + 4
    out = feed_all(decoder, f"Backtrace: 0x{pc:08x}:0x3fc9a2f0\n")
    assert [ln.text.split(" at ")[0] for ln in out[1:]] == [f"  0x{pc:08x}: crash_now"]


def test_parse_marks_panic_lines_for_the_view():
    decoder = PanicDecoder(None, "")
    line = parse("abort() was called at PC 0x42001234 on core 0")
    decoder.feed(line)
    assert line.kind == "panic" and decoder.in_panic
