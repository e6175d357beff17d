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
