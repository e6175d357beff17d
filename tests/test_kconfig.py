"""kconfgen run for real: on a small Kconfig tree of our own, on firmware-src, and on ESP-IDF if present."""

from __future__ import annotations

import json
import os
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
    assert ("renamed", "NET_OLD_STACK_SIZE", 3) in found
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


def test_check_command_against_an_idf_shaped_tree_reports_and_fails(invoke, project, monkeypatch):
    """IDF_PATH pointing at a (tiny) ESP-IDF-shaped tree: the rendered ESP-IDF symbols it lacks are reported."""
    import shutil

    idf = project / "idf"
    shutil.copytree(DATA / "components", idf / "components")
    (idf / "Kconfig").write_text('mainmenu "mini idf"\nconfig IDF_TARGET\n    string\n    default "$IDF_TARGET"\n'
                                 'source "$COMPONENT_KCONFIGS_SOURCE_FILE"\n'
                                 'source "$COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE"\n')
    monkeypatch.setenv("IDF_PATH", str(idf))
    result = invoke("check", "--board", "sonatino")
    assert result.exit_code == 1
    assert "CONFIG_SPIRAM: unknown symbol" in result.stderr
    assert "sdkconfig.defaults:" in result.stderr and "CONFIG_IDF_TARGET" not in result.stderr
    rt_errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:") and "CONFIG_RT_" in ln]
    assert rt_errors == []  # the firmware's own symbols are still known


@pytest.mark.skipif(not os.environ.get("IDF_PATH"), reason="needs a real ESP-IDF tree: set IDF_PATH to run")
@pytest.mark.parametrize("board", ["sonatino", "esp32-s3-box-3"])
def test_check_against_real_esp_idf(invoke, board):
    result = invoke("check", "--board", board, "--json")
    data = json.loads(result.stdout)
    assert data["unchecked"] == [] and data["ok"], data["problems"]
