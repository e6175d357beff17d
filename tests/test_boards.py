"""Board loading and validation: every rule has a failing case that names file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtflash.boards import load_board, load_catalog
from rtflash.errors import BoardError

SHIPPED = ("atoms3r-echo", "esp32-s3-box-3", "freenove-s3", "linux", "sonatino")

I2S_BOARD = """
description = "test board"
chip = "esp32s3"
flash_size = "8MB"
psram = "octal"
console = "usb-serial-jtag"
pio_board = "esp32-s3-devkitc-1"

[audio]
mode = "i2s"
sample_rate = 16000
amp_enable = 21

[audio.speaker]
port = 0
bclk = 15
ws = 16
dout = 7

[audio.mic]
port = 1
bclk = 5
ws = 4
din = 6
"""

CODEC_BOARD = """
chip = "esp32s3"
flash_size = "16MB"
psram = "octal"
console = "usb-serial-jtag"
pio_board = "esp32s3box"

[audio]
mode = "codec"

[audio.speaker]
port = 0
mclk = 2
bclk = 17
ws = 45
dout = 15

[audio.mic]
port = 0
mclk = 2
bclk = 17
ws = 45
din = 16

[audio.codec]
dac = "es8311"
adc = "es7210"
i2c_port = 0
i2c_sda = 8
i2c_scl = 18
dac_address = 0x18
adc_address = 0x40
"""


def board_file(tmp_path: Path, text: str, name: str = "test") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_shipped_boards_all_load():
    catalog = load_catalog()
    assert set(SHIPPED) <= set(catalog.names())
    for board in catalog.all():
        assert board.chip in ("esp32s3", "linux")
        if not board.is_linux:
            assert board.flash_bytes >= 4 * 1024 * 1024
            assert board.pio_board and board.console


def test_shipped_linux_board_has_no_hardware():
    board = load_catalog().get("linux")
    assert board.is_linux and board.audio.mode == "none" and board.flash_size == ""


def test_valid_i2s_board(tmp_path):
    board = load_board(board_file(tmp_path, I2S_BOARD))
    assert board.name == "test"
    assert board.audio.speaker.data == 7 and board.audio.mic.data == 6
    assert not board.audio.duplex
    assert board.warnings == ()
    assert board.audio.summary() == "I2S 16 kHz"


def test_valid_codec_board_shares_clocks_and_warns_on_strapping(tmp_path):
    board = load_board(board_file(tmp_path, CODEC_BOARD))
    assert board.audio.duplex
    assert board.audio.summary() == "codec ES8311+ES7210"
    assert len(board.warnings) == 1 and "GPIO45 is a strapping pin" in board.warnings[0]


@pytest.mark.parametrize("old,new,key,words", [
    ('pio_board = "esp32-s3-devkitc-1"', 'pio_board = "x"\ncolour = "red"', "colour", "unknown key"),
    ("mode = \"i2s\"", "mode = \"i2s\"\nsampel_rate = 1", "audio.sampel_rate", "did you mean 'audio.sample_rate'"),
    ("sample_rate = 16000", "sample_rate = \"16000\"", "audio.sample_rate", "not allowed"),
    ("sample_rate = 16000", "sample_rate = 44100", "audio.sample_rate", "16000, 24000"),
    ("dout = 7", "dout = \"7\"", "audio.speaker.dout", "whole number"),
    ("dout = 7", "dout = true", "audio.speaker.dout", "whole number"),
    ("port = 0", "port = 2", "audio.speaker.port", "not allowed"),
    ('psram = "octal"', 'psram = "hex"', "psram", '"none", "quad", "octal"'),
    ('chip = "esp32s3"', 'chip = "esp8266"', "chip", "not allowed"),
    ('flash_size = "8MB"', 'flash_size = "3MB"', "flash_size", "not allowed"),
    ('console = "usb-serial-jtag"', 'console = "jtag"', "console", "not allowed"),
    ('flash_size = "8MB"\n', "", "flash_size", "is required"),
    ("din = 6", "din = 7", "audio.mic.din", "already used by audio.speaker.dout"),
    ("din = 6", "din = 22", "audio.mic.din", "does not exist on the ESP32-S3"),
    ("din = 6", "din = 49", "audio.mic.din", "does not exist"),
    ("din = 6", "din = -3", "audio.mic.din", "does not exist"),
    ("din = 6", "din = 30", "audio.mic.din", "SPI flash"),
    ("din = 6", "din = 35", "audio.mic.din", "octal PSRAM"),
    ("din = 6", "din = 19", "audio.mic.din", "USB data line"),
    ("[audio.mic]\nport = 1", "[audio.mic]\nport = 0", "audio.mic.bclk", "same I2S port"),
])
def test_invalid_board_names_file_key_and_fix(tmp_path, old, new, key, words):
    path = board_file(tmp_path, edit(I2S_BOARD, old, new))
    with pytest.raises(BoardError) as err:
        load_board(path)
    message = str(err.value)
    assert str(path) in message
    assert f"{key}:" in message or f": {key}" in message
    assert words in message
    assert "\n" not in message


def test_non_table_section_refused(tmp_path):
    from rtflash.boards import parse_board

    with pytest.raises(BoardError, match="audio: must be a table, not int"):
        parse_board("t", tmp_path / "t.toml", {"chip": "linux", "audio": 3})
    with pytest.raises(BoardError, match="description: must be a string, not int"):
        parse_board("t", tmp_path / "t.toml", {"chip": "linux", "description": 3})


def test_quad_psram_frees_gpio_33_to_37(tmp_path):
    text = edit(edit(I2S_BOARD, 'psram = "octal"', 'psram = "quad"'), "din = 6", "din = 35")
    assert load_board(board_file(tmp_path, text)).audio.mic.data == 35


def test_missing_speaker_table(tmp_path):
    text = I2S_BOARD.split("[audio.speaker]")[0] + "[audio.mic]" + I2S_BOARD.split("[audio.mic]")[1]
    with pytest.raises(BoardError, match=r"audio.speaker: is required when audio.mode = \"i2s\""):
        load_board(board_file(tmp_path, text))


@pytest.mark.parametrize("text,pattern", [
    (CODEC_BOARD.split("[audio.codec]")[0], "audio.codec: is required"),
    (edit(CODEC_BOARD, 'mode = "codec"', 'mode = "i2s"'), "audio.codec: only applies"),
    (edit(CODEC_BOARD, "dac_address = 0x18", "dac_address = 0x90"),
     r"audio.codec.dac_address: 0x90 is not a 7-bit I2C address"),
    (edit(edit(CODEC_BOARD, 'dac = "es8311"', 'dac = "none"'), 'adc = "es7210"', 'adc = "none"'),
     "has neither dac nor adc"),
    (edit(CODEC_BOARD, "i2c_sda = 8", "i2c_sda = 16"), "audio.codec.i2c_sda: GPIO16 is already used by audio.mic.din"),
])
def test_invalid_codec_board(tmp_path, text, pattern):
    with pytest.raises(BoardError, match=pattern):
        load_board(board_file(tmp_path, text))


def test_linux_board_rules(tmp_path):
    ok = load_board(board_file(tmp_path, 'chip = "linux"\n[audio]\nmode = "none"\n', "host"))
    assert ok.is_linux
    with pytest.raises(BoardError, match=r'psram: does not apply to chip = "linux"'):
        load_board(board_file(tmp_path, 'chip = "linux"\npsram = "octal"\n', "host"))
    with pytest.raises(BoardError, match="audio.mode: must be \"none\" for chip = \"linux\""):
        load_board(board_file(tmp_path, 'chip = "linux"\n[audio]\nmode = "i2s"\n', "host"))


def test_none_mode_with_pins_refused(tmp_path):
    text = edit(I2S_BOARD, 'mode = "i2s"', 'mode = "none"')
    with pytest.raises(BoardError, match='is set but audio.mode is "none"'):
        load_board(board_file(tmp_path, text))


def test_uart_console_warns_on_uart0_pins(tmp_path):
    text = edit(edit(I2S_BOARD, 'console = "usb-serial-jtag"', 'console = "uart"'), "din = 6", "din = 43")
    board = load_board(board_file(tmp_path, text))
    assert any("GPIO43 is UART0" in w for w in board.warnings)


def test_usb_vid_pid_shape(tmp_path):
    text = edit(I2S_BOARD, 'pio_board = "esp32-s3-devkitc-1"', 'pio_board = "x"\nusb_vid_pid = ["303a1001"]')
    with pytest.raises(BoardError, match=r"usb_vid_pid\[0\]: must look like"):
        load_board(board_file(tmp_path, text))


def test_malformed_toml_names_line(tmp_path):
    path = board_file(tmp_path, 'chip = "esp32s3"\nflash_size = \n')
    with pytest.raises(BoardError) as err:
        load_board(path)
    assert str(path) in str(err.value) and "line 2" in str(err.value)


def test_unknown_board_suggests_nearest():
    with pytest.raises(BoardError) as err:
        load_catalog().get("sonatno")
    assert "did you mean 'sonatino'" in str(err.value)
    assert all(name in str(err.value) for name in SHIPPED)


def test_user_boards_dir_adds_and_overrides(tmp_path):
    board_file(tmp_path, I2S_BOARD, "my-board")
    board_file(tmp_path, I2S_BOARD, "sonatino")
    catalog = load_catalog(tmp_path)
    assert "my-board" in catalog.names()
    assert catalog.get("sonatino").path == tmp_path / "sonatino.toml"


def test_missing_user_boards_dir(tmp_path):
    with pytest.raises(BoardError, match="does not exist"):
        load_catalog(tmp_path / "nope")


def test_to_dict_is_json_ready(tmp_path):
    import json

    data = load_board(board_file(tmp_path, CODEC_BOARD)).to_dict()
    assert json.loads(json.dumps(data))["audio"]["codec"]["adc"] == "es7210"


def test_min_chip_revision_parsed_and_checked(tmp_path):
    from rtflash.boards import load_catalog as load
    from rtflash.errors import BoardError

    src = (Path(__file__).parents[1] / "boards" / "sonatino.toml").read_text()
    (tmp_path / "newchip.toml").write_text('min_chip_revision = "v0.2"\n' + src)
    assert load(tmp_path).get("newchip").min_chip_revision == 2
    (tmp_path / "bad.toml").write_text('min_chip_revision = "0.2.1"\n' + src)
    with pytest.raises(BoardError, match=r"bad.toml: min_chip_revision: must look like \"v0.2\""):
        load(tmp_path).get("bad")


def test_shipped_boards_have_notes_not_warnings():
    """The vendor's strapping-pin wiring is no warning on every command: a note shown by `boards show`."""
    catalog = load_catalog()
    assert all(b.warnings == () for b in catalog.all())
    notes = catalog.get("esp32-s3-box-3").notes
    assert len(notes) == 2 and all("strapping pin" in n for n in notes)
    assert any("GPIO0 is a strapping pin" in n for n in catalog.get("sonatino").notes)


def test_a_user_copy_of_a_shipped_board_warns(tmp_path):
    from rtflash.resources import boards_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sonatino.toml").write_text((boards_dir() / "sonatino.toml").read_text())
    board = load_catalog(mine).get("sonatino")
    assert board.notes == () and any("GPIO0 is a strapping pin" in w for w in board.warnings)


def test_every_broken_board_file_is_reported(tmp_path):
    from rtflash.boards import CatalogError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.toml").write_text(edit(I2S_BOARD, "din = 6", "din = 35"))
    (mine / "b.toml").write_text("chip = \n")
    (mine / "c.toml").write_text(I2S_BOARD)
    catalog = load_catalog(mine)
    good, bad = catalog.load_all()
    assert "c" in [b.name for b in good] and len(bad) == 2
    with pytest.raises(CatalogError) as err:
        catalog.all()
    assert len(err.value.lines) == 2
    assert "a.toml: audio.mic.din" in err.value.lines[0] and "b.toml: invalid TOML" in err.value.lines[1]
