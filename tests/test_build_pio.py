"""The PlatformIO backend: rendered platformio.ini validated by PlatformIO's own parser, and the real
`pio` reporting the missing platform, failing in seconds offline instead of retrying for a minute."""

from __future__ import annotations

import time

import pytest

from rtflash.boards import load_catalog
from rtflash.builder.pio import PioBackend, installed_platforms, pio_path
from rtflash.errors import ToolFailed
from rtflash.render import render_board
from rtflash.settings import Settings


@pytest.mark.parametrize("name", ["sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3"])
def test_rendered_ini_parses_with_platformio(tmp_path, name):
    from platformio.project.config import ProjectConfig

    board = load_catalog().get(name)
    out = tmp_path / "build" / name / "config"
    render_board(board, Settings(), out)
    config = ProjectConfig(str(out / "platformio.ini"))
    config.validate(envs=[name], silent=True)
    section = f"env:{name}"
    assert config.get(section, "platform") == "espressif32"
    assert config.get(section, "framework") == ["espidf"]
    assert config.get(section, "board") == board.pio_board
    assert config.get(section, "board_build.partitions") == str(out / "partitions.csv")
    assert config.get("platformio", "build_dir") == str(tmp_path / "build" / name / "pio")
    extra = config.get(section, "board_build.cmake_extra_args")
    assert "-DSDKCONFIG_DEFAULTS=" in (extra if isinstance(extra, str) else " ".join(extra))


def test_real_pio_reports_no_platform_and_build_fails_fast(project, tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "pio-core"))
    import rtflash.builder.pio as pio

    assert installed_platforms(pio_path()) == []  # the real pio, asked locally
    monkeypatch.setattr(pio, "REGISTRY", ("127.0.0.1", 9))  # no network here either way; be explicit
    board = load_catalog().get("sonatino")
    out = project / "build" / "sonatino" / "config"
    render_board(board, Settings(), out)
    start = time.perf_counter()
    with pytest.raises(ToolFailed, match="espressif32 platform is not installed and the PlatformIO registry is "
                                         "unreachable"):
        PioBackend().build(board, project, out, lambda line: None)
    assert time.perf_counter() - start < 15


def test_pio_refuses_linux():
    assert "cannot build the linux target" in PioBackend().unavailable(load_catalog().get("linux"))
