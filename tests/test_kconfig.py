"""kconfgen run for real: on a small Kconfig tree of our own, on firmware-src, and on ESP-IDF if present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtflash import kconfig

DATA = Path(__file__).parent / "data" / "kconfig"


def small_tree() -> kconfig.Tree:
    return kconfig.Tree(None, (DATA / "components/net/Kconfig", DATA / "components/audio/Kconfig"),
                        (DATA / "main/Kconfig.projbuild",), (DATA / "components/net/sdkconfig.rename",))


def defaults(tmp_path: Path, text: str, name: str = "sdkconfig.defaults") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_clean_config_passes(tmp_path):
    layer = defaults(tmp_path, 'CONFIG_NET_DTLS=y\nCONFIG_NET_DTLS_SRTP=y\nCONFIG_AUDIO_RATE_24K=y\n'
                               'CONFIG_AUDIO_NAME="box"\nCONFIG_APP_ADDR=0x40\n')
    report = kconfig.check([layer], small_tree(), "esp32s3")
    assert report.ok, [str(p) for p in report.problems]
    assert report.checked == 5


def test_each_problem_reported_with_file_and_line(tmp_path):
    layer = defaults(tmp_path, "CONFIG_NET_TLS=y\nCONFIG_NET_TYPO=y\nCONFIG_NET_OLD_STACK_SIZE=8192\n"
                               "CONFIG_NET_DTLS_SRTP=y\nCONFIG_AUDIO_RATE_24K=y\nCONFIG_NET_STACK=99\n")
    report = kconfig.check([layer], small_tree(), "esp32s3")
    found = {(p.kind, p.assignment.symbol, p.assignment.line) for p in report.problems}
    assert ("unknown", "NET_TYPO", 2) in found
    assert ("renamed", "NET_OLD_STACK_SIZE", 3) in {(w.kind, w.assignment.symbol, w.assignment.line)
                                                    for w in report.warnings}
    assert ("dropped", "NET_DTLS_SRTP", 4) in found          # depends on NET_DTLS, not set
    assert ("dropped", "AUDIO_RATE_24K", 5) in found        # choice lost: depends on NET_DTLS
    assert ("range", "NET_STACK", 6) in found
    assert all(str(layer) in str(p) for p in report.problems)


def test_later_layer_wins(tmp_path):
    base = defaults(tmp_path, "CONFIG_NET_TYPO=y\n", "base.defaults")
    board = defaults(tmp_path, "CONFIG_APP_ADDR=0x20\n", "board.defaults")
    report = kconfig.check([base, board], small_tree(), "esp32s3")
    assert [p.assignment.file for p in report.problems] == [base]


def test_firmware_tree_checks_only_rt_symbols(tmp_path):
    from rtflash.resources import firmware_dir

    layer = defaults(tmp_path, 'CONFIG_RT_BOARD_NAME="x"\nCONFIG_RT_AUDIO_I2S=y\nCONFIG_RT_SPK_BCLK_GPIO=99\n'
                               "CONFIG_RT_NOPE=y\nCONFIG_SPIRAM=y\n")
    report = kconfig.check([layer], kconfig.firmware_tree(firmware_dir()), "esp32s3")
    kinds = {p.assignment.symbol: p.kind for p in report.problems}
    assert kinds == {"RT_SPK_BCLK_GPIO": "range", "RT_NOPE": "unknown"}
    assert [a.symbol for a in report.unchecked] == ["SPIRAM"]


@pytest.mark.parametrize("board", ["sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3", "linux"])
def test_check_command_passes_for_shipped_boards(invoke, board, monkeypatch):
    monkeypatch.delenv("IDF_PATH", raising=False)
    result = invoke("check", "--board", board, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] and data["checked"] >= 3 and "no IDF_PATH" in data["against"]


def test_check_command_refuses_a_tree_that_is_not_esp_idf(invoke, project, monkeypatch):
    """IDF_PATH at something Kconfig-shaped but not ESP-IDF v5: one line naming IDF_PATH and the fix."""
    import shutil

    idf = project / "idf"
    shutil.copytree(DATA / "components", idf / "components")
    (idf / "Kconfig").write_text('mainmenu "mini idf"\n')
    monkeypatch.setenv("IDF_PATH", str(idf))
    result = invoke("check", "--board", "sonatino")
    assert result.exit_code != 0
    assert f"IDF_PATH={idf} is not an ESP-IDF v5.x tree" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("board", ["sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3", "linux"])
def test_check_against_real_esp_idf(invoke, real_idf, board):
    """Every shipped board's rendered defaults survive the real ESP-IDF v5.5 Kconfig: no problem, no
    warning (a rename would be one), nothing unchecked."""
    result = invoke("check", "--board", board, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0, data
    assert data["unchecked"] == [] and data["ok"] and data["warnings"] == [], data
    assert data["checked"] >= 10


@pytest.mark.parametrize("board", ["sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3"])
def test_check_hmac_nvs_encryption_against_real_esp_idf(invoke, real_idf, project, board):
    """[security] nvs_encryption = "hmac": CONFIG_NVS_ENCRYPTION, the HMAC key protection scheme and the
    eFuse key id all survive the real Kconfig (0 dropped assignments) for every ESP32-S3 board."""
    (project / "rtflash.toml").write_text(f'[security.boards.{board}]\nnvs_encryption = "hmac"\n'
                                          'nvs_hmac_key_block = 4\n')
    result = invoke("check", "--board", board, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0, data
    assert data["unchecked"] == [] and data["ok"] and data["warnings"] == [], data
    defaults = (project / "build" / board / "config" / "sdkconfig.defaults").read_text().splitlines()
    for line in ("CONFIG_NVS_ENCRYPTION=y", "CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC=y",
                 "CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID=4"):
        assert line in defaults


def test_real_rename_is_a_warning_not_an_error(real_idf, tmp_path):
    """ESP-IDF applies sdkconfig.rename: the old name is a warning, its value checked under the new name."""
    from rtflash.resources import firmware_dir

    idf = Path(real_idf["IDF_PATH"])
    tree = kconfig.idf_tree(idf, firmware_dir(), "esp32s3")
    layer = defaults(tmp_path, "CONFIG_SPIRAM=y\nCONFIG_SPIRAM_ALLOW_STACK_EXTERNAL_MEMORY=y\n")
    report = kconfig.check([layer], tree, "esp32s3")
    assert report.ok, [str(p) for p in report.problems]
    assert [(w.kind, w.assignment.symbol) for w in report.warnings] == [("renamed", "SPIRAM_ALLOW_STACK_EXTERNAL_MEMORY")]
    assert "CONFIG_FREERTOS_TASK_CREATE_ALLOW_EXT_MEM" in str(report.warnings[0])


def test_real_target_component_set(real_idf):
    """linux sources only the components that register for linux (bt returns early there, and its
    Kconfig sources a per-target file linux lacks); esp32s3 sources bt and esp_wifi."""
    from rtflash.resources import firmware_dir

    idf = Path(real_idf["IDF_PATH"])
    linux = kconfig.idf_tree(idf, firmware_dir(), "linux")
    s3 = kconfig.idf_tree(idf, firmware_dir(), "esp32s3")
    linux_names = {p.parent.name for p in linux.kconfigs + linux.projbuilds}
    s3_names = {p.parent.name for p in s3.kconfigs + s3.projbuilds}
    assert "bt" not in linux_names and "esp_wifi" not in linux_names
    assert {"bt", "esp_wifi", "esp_psram"} <= s3_names
    assert {"freertos", "mbedtls", "main"} <= linux_names
    assert linux.components == s3.components == "expanded"
    assert len(linux_names) < len(s3_names)
    assert "esp_http_server" not in linux_names  # not required by main: trimmed as ESP-IDF trims it


def test_linux_component_roots_match_the_firmware_project():
    from rtflash.resources import firmware_dir

    text = (firmware_dir() / "cmake" / "rt_project.cmake").read_text()
    assert f"set(COMPONENTS {' '.join(kconfig.LINUX_COMPONENTS)})" in text


def test_configured_build_dir_gives_the_exact_set(tmp_path):
    """After a configure, ESP-IDF's own project_description.json decides the set."""
    from rtflash import components

    (tmp_path / "project_description.json").write_text(json.dumps(
        {"build_component_paths": ["/idf/components/log", "/fw/main"]}))
    found = components.from_project_description(tmp_path)
    assert found.source == "configured" and [p.name for p in found.dirs] == ["log", "main"]
    assert components.from_project_description(tmp_path / "nope") is None
