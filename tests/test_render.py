"""Rendering per-board configuration: content, write-if-changed, strictness, bad output dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rtflash.boards import load_board, load_catalog
from rtflash.errors import ConfigError
from rtflash.partitions import read_csv
from rtflash.render import ensure_rendered, render_board
from rtflash.settings import Settings
from tests.test_boards import CODEC_BOARD, I2S_BOARD, board_file


def parse_defaults(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            assert key not in pairs, f"{key} assigned twice"
            pairs[key] = value
    return pairs


def test_codec_board_renders_every_symbol(tmp_path):
    board = load_board(board_file(tmp_path, CODEC_BOARD, "box"))
    result = render_board(board, Settings(), tmp_path / "out")
    assert {p.name for p in result.written} == {"sdkconfig.defaults", "partitions.csv", "platformio.ini",
                                                "CMakeLists.txt"}
    cfg = parse_defaults(tmp_path / "out" / "sdkconfig.defaults")
    assert cfg["CONFIG_IDF_TARGET"] == '"esp32s3"'
    assert cfg["CONFIG_ESPTOOLPY_FLASHSIZE_16MB"] == "y"
    assert cfg["CONFIG_SPIRAM_MODE_OCT"] == "y"
    assert cfg["CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG"] == "y"
    assert cfg["CONFIG_MBEDTLS_SSL_DTLS_SRTP"] == "y" and cfg["CONFIG_MBEDTLS_CERTIFICATE_BUNDLE"] == "y"
    assert cfg["CONFIG_RT_AUDIO_CODEC"] == "y" and cfg["CONFIG_RT_I2S_DUPLEX"] == "y"
    assert cfg["CONFIG_RT_SPK_MCLK_GPIO"] == "2" and cfg["CONFIG_RT_MIC_DIN_GPIO"] == "16"
    assert cfg["CONFIG_RT_CODEC_ADC_ES7210"] == "y" and cfg["CONFIG_RT_ES8311_ADDR"] == "0x18"
    assert cfg["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"] == f'"{(tmp_path / "out" / "partitions.csv").resolve()}"'
    assert not any("INSECURE" in k or "SKIP_SERVER_CERT" in k for k in cfg)


def test_i2s_board_without_psram_and_uart_console(tmp_path):
    text = I2S_BOARD.replace('psram = "octal"', 'psram = "none"').replace(
        'console = "usb-serial-jtag"', 'console = "uart"').replace('flash_size = "8MB"', 'flash_size = "4MB"')
    board = load_board(board_file(tmp_path, text))
    render_board(board, Settings(), tmp_path / "out")
    text = (tmp_path / "out" / "sdkconfig.defaults").read_text()
    cfg = parse_defaults(tmp_path / "out" / "sdkconfig.defaults")
    assert "CONFIG_SPIRAM" not in cfg and "# CONFIG_SPIRAM is not set" in text
    assert cfg["CONFIG_ESP_CONSOLE_UART_DEFAULT"] == "y"
    assert cfg["CONFIG_RT_AUDIO_I2S"] == "y" and cfg["CONFIG_RT_I2S_DUPLEX"] == "n"
    assert "CONFIG_RT_CODEC_ES8311" not in cfg
    layout = read_csv(tmp_path / "out" / "partitions.csv")
    assert [p.name for p in layout.partitions] == ["nvs", "phy_init", "factory"]
    assert layout.app.offset == 0x10000 and layout.partitions[-1].end <= 4 * 1024 * 1024


@pytest.mark.parametrize("name", ["atoms3r-echo", "esp32-s3-box-3", "freenove-s3", "sonatino", "linux"])
def test_every_shipped_board_renders(tmp_path, name):
    board = load_catalog().get(name)
    tmp_path = tmp_path / "config"
    render_board(board, Settings(), tmp_path)
    cfg = parse_defaults(tmp_path / "sdkconfig.defaults")
    assert cfg["CONFIG_RT_BOARD_NAME"] == f'"{name}"'
    if board.is_linux:
        assert cfg["CONFIG_IDF_TARGET"] == '"linux"' and not (tmp_path / "partitions.csv").exists()
        return
    layout = read_csv(tmp_path / "partitions.csv")
    assert layout.find("nvs") is not None
    assert layout.partitions[-1].end <= board.flash_bytes
    assert layout.app.size >= 0x180000, "room for the firmware (upstream app slot is 1.5 MB)"
    assert f"[env:{name}]" in (tmp_path.parent / "project" / "platformio.ini").read_text()


def test_unchanged_files_keep_mtime(tmp_path):
    board = load_board(board_file(tmp_path, CODEC_BOARD, "box"))
    out = tmp_path / "out"
    first = render_board(board, Settings(), out)
    past = 1_000_000_000
    for f in first.files:
        os.utime(f, ns=(past, past))
    again = render_board(board, Settings(), out)
    assert again.written == () and len(again.unchanged) == 4
    assert all(f.stat().st_mtime_ns == past for f in first.files)
    changed = load_board(board_file(tmp_path, CODEC_BOARD.replace("i2c_sda = 8", "i2c_sda = 9"), "box"))
    third = render_board(changed, Settings(), out)
    assert [p.name for p in third.written] == ["sdkconfig.defaults"]


def test_ensure_rendered_skips_when_up_to_date(tmp_path):
    board = load_board(board_file(tmp_path, CODEC_BOARD, "box"))
    first = ensure_rendered(board, Settings(), tmp_path)
    assert len(first.written) == 4
    second = ensure_rendered(board, Settings(), tmp_path)
    assert second.written == () and second.seconds == 0.0


def test_template_missing_variable_names_template_and_line(tmp_path):
    templates = tmp_path / "tpl"
    templates.mkdir()
    (templates / "sdkconfig.defaults.j2").write_text("# ok\nCONFIG_X={{ board.nope }}\n")
    board = load_catalog().get("linux")
    with pytest.raises(ConfigError) as err:
        render_board(board, Settings(), tmp_path / "out", templates=templates)
    assert "sdkconfig.defaults.j2:2" in str(err.value) and "nope" in str(err.value)
    assert not (tmp_path / "out" / "sdkconfig.defaults").exists()


def test_template_syntax_error(tmp_path):
    templates = tmp_path / "tpl"
    templates.mkdir()
    (templates / "sdkconfig.defaults.j2").write_text("line\n{% if %}\n")
    with pytest.raises(ConfigError, match=r"template sdkconfig.defaults.j2:2"):
        render_board(load_catalog().get("linux"), Settings(), tmp_path / "out", templates=templates)


def test_unwritable_output_dir_leaves_nothing(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("not a dir")
        out = blocker / "sub"
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    with pytest.raises(ConfigError, match="cannot write"):
        render_board(load_catalog().get("linux"), Settings(), out)


def test_project_folder_beside_config(tmp_path):
    """build/<board>/project/CMakeLists.txt: the ESP-IDF project rtflash builds, pointing at firmware-src
    (absolute) through cmake/rt_project.cmake, so nothing is ever written into firmware-src."""
    from rtflash.render import project_dir_of
    from rtflash.resources import firmware_dir

    for name in ("linux", "sonatino"):
        result = ensure_rendered(load_catalog().get(name), Settings(), tmp_path)
        project = tmp_path / "build" / name / "project"
        assert project_dir_of(result.out_dir) == project and project / "CMakeLists.txt" in result.files
        text = (project / "CMakeLists.txt").read_text()
        assert f'set(RT_FIRMWARE_DIR "{firmware_dir()}")' in text and firmware_dir().is_absolute()
        assert 'include("${RT_FIRMWARE_DIR}/cmake/rt_project.cmake")' in text
        assert "project(rtflash_firmware)" in text and (firmware_dir() / "cmake" / "rt_project.cmake").is_file()


def test_project_folder_rerendered_when_firmware_moves(tmp_path, monkeypatch):
    """A reinstall puts firmware-src elsewhere: the project file must follow, whatever the mtimes say."""
    from rtflash import resources

    board = load_catalog().get("linux")
    ensure_rendered(board, Settings(), tmp_path)
    assert ensure_rendered(board, Settings(), tmp_path).written == ()
    moved = tmp_path / "site-packages" / "firmware"
    monkeypatch.setattr(resources, "firmware_dir", lambda: moved)
    again = ensure_rendered(board, Settings(), tmp_path)
    assert [p.name for p in again.written] == ["CMakeLists.txt"]
    assert f'set(RT_FIRMWARE_DIR "{moved}")' in (tmp_path / "build" / "linux" / "project" / "CMakeLists.txt").read_text()
