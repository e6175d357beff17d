"""The ESP-IDF backend against the stand-in idf.py (and the real one when IDF_PATH is a real tree)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rtflash.boards import load_catalog
from rtflash.builder import build_board, choose
from rtflash.builder.progress import first_error, parse_step
from rtflash.errors import ConfigError, ToolFailed, ToolNotFound
from rtflash.settings import Settings


def board(name: str):
    return load_catalog().get(name)


def test_full_build_then_noop(project, fake_idf, monkeypatch):
    log = project / "argv.log"
    monkeypatch.setenv("FAKE_IDF_LOG", str(log))
    lines: list[str] = []
    artifacts = build_board(board("sonatino"), Settings(), project, "idf", lines.append)
    assert [r.name for r in artifacts.regions] == ["bootloader", "partition-table", "otadata", "app"]
    assert artifacts.app.offset == 0x20000 and artifacts.chip == "esp32s3" and artifacts.flash_size == "8MB"
    assert artifacts.elf.name == "rtflash_firmware.elf"
    assert "Executing action: all (aliases: build)" in lines and any(parse_step(x) for x in lines)
    argv = json.loads(log.read_text().splitlines()[0])
    build_dir = project / "build" / "sonatino"
    assert argv[argv.index("-B") + 1] == str(build_dir) and argv[-1] == "build"
    defaults = next(a for a in argv if a.startswith("-DSDKCONFIG_DEFAULTS="))
    assert defaults.endswith(f"firmware-src/sdkconfig.defaults;{build_dir}/config/sdkconfig.defaults")
    config_mtime = (build_dir / "config" / "sdkconfig.defaults").stat().st_mtime_ns
    app_mtime = artifacts.app.path.stat().st_mtime_ns
    again: list[str] = []
    build_board(board("sonatino"), Settings(), project, "idf", again.append)
    assert "ninja: no work to do." in again and not any("Running cmake" in x for x in again)
    assert (build_dir / "config" / "sdkconfig.defaults").stat().st_mtime_ns == config_mtime
    assert artifacts.app.path.stat().st_mtime_ns == app_mtime
    assert len(list((build_dir / "log").glob("build-*-idf.log"))) >= 1


def test_compile_error_names_file_line_and_log(project, fake_idf, monkeypatch):
    monkeypatch.setenv("FAKE_IDF_FAIL", "compile")
    with pytest.raises(ToolFailed) as err:
        build_board(board("freenove-s3"), Settings(), project, "idf")
    message = str(err.value)
    assert "main.c:12: 'undeclared_thing' undeclared" in message and "full log:" in message
    log = Path(message.rsplit("full log: ", 1)[1].rstrip(")"))
    assert "ninja: build stopped" in log.read_text()


def test_app_too_large(project, fake_idf, monkeypatch):
    monkeypatch.setenv("FAKE_IDF_FAIL", "too-large")
    with pytest.raises(ToolFailed, match="app partition is too small"):
        build_board(board("sonatino"), Settings(), project, "idf")


def test_target_mismatch_offers_clean(project, fake_idf):
    build_dir = project / "build" / "sonatino"
    build_dir.mkdir(parents=True)
    (build_dir / "sdkconfig").write_text('CONFIG_IDF_TARGET="esp32"\n')
    (build_dir / "log").mkdir()
    (build_dir / "log" / "old.log").write_text("keep me")
    (build_dir / "nvs.bin").write_bytes(b"credentials from an older rtflash")
    with pytest.raises(ConfigError, match="configured for esp32, board sonatino is esp32s3; rerun with --clean"):
        build_board(board("sonatino"), Settings(), project, "idf")
    build_board(board("sonatino"), Settings(), project, "idf", clean_first=True)
    assert (build_dir / "log" / "old.log").read_text() == "keep me"
    assert not (build_dir / "nvs.bin").exists(), "a clean build dir holds no credentials"


def test_linux_target(project, fake_idf):
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no host C compiler: the stand-in builds the linux ELF with it")
    artifacts = build_board(board("linux"), Settings(), project, "idf")
    assert artifacts.chip == "linux" and artifacts.regions == () and artifacts.elf.is_file()
    desc = json.loads((project / "build" / "linux" / "project_description.json").read_text())
    assert desc["build_type"] == "ram_app" and desc["target"] == "linux"
    assert not (project / "build" / "linux" / "flasher_args.json").exists()


def test_old_esp_idf_refused(project, tmp_path, monkeypatch):
    from tests.conftest import install_fake_idf

    for key, value in install_fake_idf(tmp_path / "old", "5.1.2").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ToolNotFound, match="ESP-IDF v5.1.2 is too old"):
        build_board(board("sonatino"), Settings(), project, "idf")


def test_no_tool_at_all(project, monkeypatch, tmp_path):
    monkeypatch.delenv("IDF_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    import rtflash.builder.pio as pio

    monkeypatch.setattr(pio, "pio_path", lambda: (_ for _ in ()).throw(ToolNotFound("pio not found")))
    with pytest.raises(ToolNotFound, match="no build tool usable: idf.py not found.*pio not found"):
        choose("auto", board("sonatino"))


def test_auto_prefers_idf(fake_idf):
    assert choose("auto", board("sonatino")).name == "idf"


def test_progress_parsing():
    assert parse_step("[12/345] Building C object x.obj").done == 12
    assert parse_step("Running ninja") is None
    lines = ["FAILED: x", "/p/main/a.c:7:3: error: expected ';'", "/p/b.c:9: error: later"]
    assert first_error(lines) == "/p/main/a.c:7: expected ';'"
    assert first_error(["Target settings are not consistent: 'a' vs 'b'"]).startswith("Target settings")
    assert first_error(["all fine"]) is None


@pytest.mark.skipif(not (os.environ.get("IDF_PATH") and Path(os.environ["IDF_PATH"], "tools", "idf.py").is_file()),
                    reason="needs a real ESP-IDF: set IDF_PATH (and run export.sh) to run the real idf.py")
def test_real_idf_py_builds_sonatino(tmp_path):
    artifacts = build_board(board("sonatino"), Settings(), tmp_path, "idf")
    assert artifacts.app.path.stat().st_size > 100_000
