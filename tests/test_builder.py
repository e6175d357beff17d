"""rtflash.builder: a changed defaults layer reaches an existing build dir (ESP-IDF alone would keep the
old sdkconfig values: it reads sdkconfig.defaults only for symbols the sdkconfig lacks)."""

from __future__ import annotations

from pathlib import Path

from rtflash.boards import load_catalog
from rtflash.builder import build_board, forget_stale_sdkconfig
from rtflash.settings import Settings


def test_sdkconfig_forgotten_only_when_a_layer_changes(tmp_path):
    build, config = tmp_path / "build", tmp_path / "build" / "config"
    config.mkdir(parents=True)
    (config / "sdkconfig.defaults").write_text("CONFIG_RT_BOARD_NAME=\"a\"\n")
    (build / "sdkconfig").write_text("old\n")
    (build / "sdkconfig.pio").write_text("old\n")
    assert forget_stale_sdkconfig(build, config) is True        # no stamp yet: made by someone else
    assert not (build / "sdkconfig").exists() and not (build / "sdkconfig.pio").exists()
    (build / "sdkconfig").write_text("regenerated\n")
    assert forget_stale_sdkconfig(build, config) is False       # same layers: kept
    assert (build / "sdkconfig").read_text() == "regenerated\n"
    (config / "sdkconfig.defaults").write_text("CONFIG_RT_BOARD_NAME=\"b\"\n")
    assert forget_stale_sdkconfig(build, config) is True
    assert not (build / "sdkconfig").exists()


def _sdkconfig_value(path: Path, symbol: str) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith(f"CONFIG_{symbol}="):
            return line.split("=", 1)[1]
    return None


def test_real_changed_board_config_reaches_the_sdkconfig(real_idf, shared_deps, project):
    """With the real ESP-IDF: configure, change a rendered value, configure again: the new value is in
    the sdkconfig (without rtflash forgetting it, ESP-IDF keeps the old one)."""
    board = load_catalog().get("linux")
    build_dir = project / "build" / "linux"
    build_board(board, Settings(), project, "idf", deps_dir=shared_deps, action="reconfigure")
    assert _sdkconfig_value(build_dir / "sdkconfig", "RT_BOARD_NAME") == '"linux"'
    defaults = build_dir / "config" / "sdkconfig.defaults"
    defaults.write_text(defaults.read_text().replace('CONFIG_RT_BOARD_NAME="linux"', 'CONFIG_RT_BOARD_NAME="renamed"'))
    build_board(board, Settings(), project, "idf", deps_dir=shared_deps, action="reconfigure")
    assert _sdkconfig_value(build_dir / "sdkconfig", "RT_BOARD_NAME") == '"renamed"'
