"""firmware-src as configured per board: Kconfig symbols, rendered config checks, log-line contract,
TLS and watchdog settings, and cmake/rt_deps.cmake fetching a pinned dependency for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FW = REPO / "firmware-src"
BOARDS = ["sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3", "linux"]


def c_sources() -> list[Path]:
    return sorted(p for p in FW.rglob("*.[ch]") if "host-tests" not in p.parts)


def kconfig_symbols() -> set[str]:
    text = (FW / "main" / "Kconfig.projbuild").read_text()
    return set(re.findall(r"^\s*(?:config|choice)\s+(RT_[A-Z0-9_]+)", text, re.MULTILINE))


def test_every_rt_symbol_the_c_uses_is_defined_in_kconfig():
    defined = kconfig_symbols()
    used = set()
    for path in c_sources():
        used |= set(re.findall(r"CONFIG_(RT_[A-Z0-9_]+)", path.read_text()))
    assert used, "the firmware reads no CONFIG_RT_* symbol?"
    assert used - defined == set(), f"used but not in Kconfig.projbuild: {sorted(used - defined)}"


def test_template_symbols_are_still_defined():
    """templates/sdkconfig.defaults.j2 renders these per board; the firmware must keep them."""
    rendered = set(re.findall(r"CONFIG_(RT_[A-Z0-9_]+)", (REPO / "templates" / "sdkconfig.defaults.j2").read_text()))
    choices = {"RT_AUDIO_", "RT_CODEC_ADC_"}   # rendered as a prefix + the board's value
    missing = {s for s in rendered - kconfig_symbols() if s not in choices}
    assert missing == set()


@pytest.mark.parametrize("board", BOARDS)
def test_rendered_config_plus_firmware_defaults_pass_check(invoke, board, monkeypatch):
    monkeypatch.delenv("IDF_PATH", raising=False)
    result = invoke("check", "--board", board, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] and data["problems"] == []
    assert data["checked"] >= (3 if board == "linux" else 15)
    # the firmware's own defaults are a layer: their symbols are among those seen
    assert "CONFIG_ESP_TASK_WDT_EN" in data["unchecked"]


def test_tls_verified_and_watchdog_on():
    defaults = (FW / "sdkconfig.defaults").read_text()
    template = (REPO / "templates" / "sdkconfig.defaults.j2").read_text()
    for text in (defaults, template):
        assert "ESP_TLS_INSECURE" not in text and "SKIP_SERVER_CERT_VERIFY" not in text
    assert "CONFIG_ESP_TASK_WDT_EN=y" in defaults and "CONFIG_ESP_TASK_WDT_INIT=y" in defaults
    assert "CONFIG_MBEDTLS_CERTIFICATE_BUNDLE=y" in template
    sources = "".join(p.read_text() for p in c_sources())
    assert "ESP_TLS_INSECURE" not in sources and "skip_cert_common_name_check" not in sources
    assert ".crt_bundle_attach = esp_crt_bundle_attach" in (FW / "components/rt_session/src/rt_signal_esp.c").read_text()
    assert "esp_restart" not in sources, "reconnect with back-off, never reboot"


@pytest.mark.parametrize("path, tag, lines", [
    ("main/wifi_sta.c", "wifi_sta", ['"connected to %.*s"', '"got ip: " IPSTR', '"disconnected (reason %d), retry in %u ms"']),
    ("components/rt_session/src/rt_session.c", "rt_session",
     ['"peer state: %s"', '"datachannel open: " CHANNEL_LABEL', '"event: %s"']),
    ("main/main.c", "rtflash", ['"firmware %s board %s"']),
])
def test_log_lines_the_monitor_parses(path, tag, lines):
    text = (FW / path).read_text()
    assert f'static const char *TAG = "{tag}";' in text
    for line in lines:
        assert line in text, f"{path} lost the log line {line}"
    assert '#define CHANNEL_LABEL "oai-events"' in (FW / "components/rt_session/src/rt_session.c").read_text()


def test_secrets_are_logged_as_presence_and_length_only():
    text = (FW / "main" / "app_config.c").read_text()
    assert '"%s: %s (%u characters)"' in text and "k->secret" in text
    assert not re.search(r"ESP_LOG.*(api_key|wifi_pass)\b[^\"]*\)", text.replace("k->key", ""))


def test_nvs_keys_match_what_rtflash_provisions():
    from rtflash import nvs

    header = (FW / "components/rt_core/src/rt_config.c").read_text()
    keys = re.findall(r'\{"([a-z_]+)", FIELD', header)
    assert keys == [*nvs.CREDENTIAL_KEYS, *nvs.SETTING_KEYS, *nvs.RELAY_KEYS]
    secret = {key for key, flag in re.findall(r'\{"([a-z_]+)", FIELD\(\w+\), \w+, (\w+)\}', header) if flag == "true"}
    assert secret == nvs.SECRET_KEYS, "the firmware logs only presence and length of what rtflash treats as secret"
    assert '#define RT_NVS_NAMESPACE "rtflash"' in (FW / "components/rt_core/include/rt_config.h").read_text()
    assert nvs.NAMESPACE == "rtflash"


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c",
                           "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("git")), reason="needs cmake and git")
def test_rt_deps_cmake_fetches_the_pin_and_refuses_a_wrong_checkout(tmp_path):
    repo = tmp_path / "libfoo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "a.txt").write_text("one\n")
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "one", cwd=repo)
    first = _git("rev-parse", "HEAD", cwd=repo)
    (repo / "a.txt").write_text("two\n")
    _git("commit", "-q", "-am", "two", cwd=repo)
    manifest = tmp_path / "deps.toml"
    manifest.write_text(f'[git.libfoo]\nurl = "{repo.as_uri()}"\ncommit = "{first}"\ntargets = ["linux"]\n'
                        f'[git.espthing]\nurl = "{(tmp_path / "none").as_uri()}"\ncommit = "{"c" * 40}"\n'
                        'targets = ["esp32s3"]\n')
    script = tmp_path / "resolve.cmake"
    script.write_text(f'cmake_minimum_required(VERSION 3.16)\ninclude("{FW / "cmake" / "rt_deps.cmake"}")\nrt_deps_resolve("linux" "{manifest}")\n'
                      'message(STATUS "RT_DEPS_DIR=${RT_DEPS_DIR}")\n')
    cache = tmp_path / "cache"
    env = {**os.environ, "RTFLASH_DEPS_CACHE": str(cache)}
    env.pop("RTFLASH_DEPS_DIR", None)
    done = subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"RT_DEPS_DIR={cache}" in done.stdout + done.stderr
    assert (cache / "libfoo" / "a.txt").read_text() == "one\n"      # the pin, not HEAD
    assert not (cache / "espthing").exists()                       # not a linux dependency
    _git("checkout", "-q", "main", cwd=cache / "libfoo")
    wrong = subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert wrong.returncode != 0 and "deps.toml pins" in " ".join(wrong.stderr.split())
    offline = subprocess.run(["cmake", f"-DRT_DEPS_DIR={tmp_path / 'empty'}", "-P", str(script)],
                             capture_output=True, text=True, env=env, timeout=120)
    assert offline.returncode != 0 and "has no libfoo/" in " ".join(offline.stderr.split())
