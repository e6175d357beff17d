"""Partition layouts rtflash renders, and the CSV reader the flash and NVS stages rely on."""

from __future__ import annotations

import pytest

from rtflash.errors import ConfigError
from rtflash.partitions import NVS_OFFSET, layout_for, parse_csv

MB = 1024 * 1024


@pytest.mark.parametrize("flash", [4 * MB, 8 * MB, 16 * MB, 32 * MB])
def test_layouts_fit_and_do_not_overlap(flash):
    layout = layout_for(flash)
    parts = layout.partitions
    assert parts[0].name == "nvs" and parts[0].offset == NVS_OFFSET
    for a, b in zip(parts, parts[1:]):
        assert a.end <= b.offset
    assert parts[-1].end <= flash
    for p in parts:
        assert p.offset % (0x10000 if p.type == "app" else 0x1000) == 0
    assert layout.app.offset in (0x10000, 0x20000)


def test_ota_from_8mb():
    assert [p.name for p in layout_for(8 * MB).partitions] == ["nvs", "otadata", "phy_init", "ota_0", "ota_1"]
    assert layout_for(8 * MB).app.name == "ota_0"
    assert layout_for(4 * MB).app.name == "factory"


def test_parse_csv_explicit_and_implicit_offsets():
    text = """# Name, Type, SubType, Offset, Size, Flags
nvs,      data, nvs,     0x9000,  0x6000,
phy_init, data, phy,     ,        4K,
factory,  app,  factory, ,        1M,
"""
    layout = parse_csv(text)
    assert [(p.name, p.offset, p.size) for p in layout.partitions] == [
        ("nvs", 0x9000, 0x6000), ("phy_init", 0xF000, 0x1000), ("factory", 0x10000, MB)]


def test_parse_csv_errors_name_line():
    with pytest.raises(ConfigError, match=r"p.csv:2: 'zz' is not a number"):
        parse_csv("nvs,data,nvs,0x9000,0x6000\napp,app,factory,0x10000,zz\n", "p.csv")
    with pytest.raises(ConfigError, match=r"p.csv:2: b at 0x9000 overlaps"):
        parse_csv("a,data,nvs,0x9000,0x6000\nb,app,factory,0x9000,1M\n", "p.csv")
    with pytest.raises(ConfigError, match="no app partition"):
        parse_csv("a,data,nvs,0x9000,0x6000\n", "p.csv")


# --- the binary table (parse_binary): checked against ESP-IDF's own gen_esp32part.py ------------------

def _gen_esp32part(csv_text: str, tmp_path, flash: int = 8 * MB) -> bytes:
    """ESP-IDF's gen_esp32part.py (../shared) turns the CSV into the binary table the build writes."""
    import subprocess
    import sys

    from tests.conftest import NO_SHARED, SHARED_IDF

    tool = SHARED_IDF / "components" / "partition_table" / "gen_esp32part.py"
    if not tool.is_file():
        pytest.skip(NO_SHARED)
    src, out = tmp_path / "p.csv", tmp_path / "p.bin"
    src.write_text(csv_text)
    subprocess.run([sys.executable, str(tool), "--flash-size", f"{flash // MB}MB", str(src), str(out)], check=True,
                   capture_output=True, timeout=60)
    return out.read_bytes()


def _csv(layout) -> str:
    return "".join(f"{p.name},{p.type},{p.subtype},{p.offset:#x},{p.size:#x},\n" for p in layout.partitions)


@pytest.mark.parametrize("flash", [4 * MB, 8 * MB, 16 * MB])
def test_parse_binary_reads_esp_idf_tables_as_the_csv_says(flash, tmp_path):
    from rtflash.partitions import check_inside, parse_binary

    layout = layout_for(flash)
    table = parse_binary(_gen_esp32part(_csv(layout), tmp_path, flash))
    assert [(p.name, p.type, p.subtype, p.offset, p.size) for p in table.partitions] == \
        [(p.name, p.type, p.subtype, p.offset, p.size) for p in layout.partitions]
    assert table.app.name == layout.app.name
    assert check_inside(table, flash) is None
    assert "past the end of a 2 MB flash" in (check_inside(table, 2 * MB) or "")


def _row(name: str, ptype: int, subtype: int, offset: int, size: int) -> bytes:
    import struct

    return struct.pack("<2sBBLL16sL", b"\xaa\x50", ptype, subtype, offset, size, name.encode(), 0)


def _table(rows: list[bytes], md5: bool = True) -> bytes:
    import hashlib

    body = b"".join(rows)
    if md5:
        body += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(body).digest()
    return body + b"\xff" * (0xC00 - len(body))


GOOD_ROWS = [_row("nvs", 1, 2, 0x9000, 0x6000), _row("phy_init", 1, 1, 0xF000, 0x1000),
             _row("factory", 0, 0, 0x10000, 0x100000)]


@pytest.mark.parametrize("data, words", [
    (_table(GOOD_ROWS)[:0x40] + b"\x00" * 0xBC0, "row 2 has magic 0x0000"),
    (b"\xff" * 0xC00, "is empty"),
    (_table(GOOD_ROWS, md5=False), "no MD5 row"),
    (_table(GOOD_ROWS)[:0x60] + b"\xeb\xeb" + b"\xff" * 14 + b"\x00" * 16 + b"\xff" * 0xB80, "does not match"),
    (b"".join(GOOD_ROWS) * 40, "no end-of-table marker"),
    (_table([GOOD_ROWS[0], _row("factory", 0, 0, 0x18000, 0x100000)]), "not aligned to 0x10000"),
    (_table([GOOD_ROWS[0], _row("factory", 0, 0, 0x10000, 0x100800)]), "not a multiple of 0x1000"),
    (_table([_row("nvs", 1, 2, 0x9000, 0x8000), GOOD_ROWS[2]]), "'factory' at 0x10000 overlaps 'nvs'"),
    (_table([_row("nvs", 1, 2, 0x4000, 0x2000), GOOD_ROWS[2]]), "below 0x9000"),
    (_table(GOOD_ROWS[:2]), "no app partition"),
    (_table(GOOD_ROWS) + b"\xff" * 0x1000, "more than its 4 KB sector"),
])
def test_parse_binary_refuses_what_the_bootloader_refuses(data, words):
    from rtflash.partitions import TableError, parse_binary

    with pytest.raises(TableError, match=None) as err:
        parse_binary(data)
    assert words in str(err.value)


def test_parse_binary_accepts_a_well_formed_table():
    from rtflash.partitions import parse_binary

    layout = parse_binary(_table(GOOD_ROWS))
    assert [p.name for p in layout.partitions] == ["nvs", "phy_init", "factory"]
    assert layout.app.subtype == "factory" and layout.app.size == 0x100000
