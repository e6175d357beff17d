"""`rtflash secrets`, `rtflash nvs show` and `rtflash provision` as users run them."""

from __future__ import annotations

import json

import pytest

KEY = "sk-" + "test-abcdefghijklmnopqrstuvwx"


@pytest.fixture
def secrets_env(project, monkeypatch):
    monkeypatch.setenv("RTFLASH_SECRETS_FILE", str(project / "secrets.toml"))
    return project / "secrets.toml"


def test_set_show_clear(invoke, secrets_env):
    result = invoke("secrets", "set", "--wifi-ssid", "Home", "--wifi-password", "canary-pw-42", "--api-key", KEY)
    assert result.exit_code == 0 and "mode 0600" in result.stderr
    assert (secrets_env.stat().st_mode & 0o777) == 0o600
    shown = json.loads(invoke("secrets", "show", "--json").stdout)
    assert shown[0] == {"name": "wifi_ssid", "value": "Home", "source": f"secrets file {secrets_env}"}
    assert shown[1]["value"] == "********" and shown[2]["value"] == "sk-********"
    assert invoke("secrets", "clear", "wifi_password").exit_code == 0
    shown = json.loads(invoke("secrets", "show", "--json").stdout)
    assert shown[1]["source"] == "missing"


def test_set_refuses_bad_value_and_writes_nothing(invoke, secrets_env):
    result = invoke("secrets", "set", "--wifi-password", "short")
    assert result.exit_code == 1 and "8-63" in result.stderr and not secrets_env.exists()


def test_set_needs_something_without_tty(invoke, secrets_env):
    assert invoke("secrets", "set").exit_code == 2


def test_provision_out_saves_the_image_and_says_how_to_flash(invoke, secrets_env, monkeypatch):
    monkeypatch.setenv("WIFI_SSID", "Home")
    monkeypatch.setenv("WIFI_PASSWORD", "canary-pw-42")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    nvs_bin = secrets_env.parent / "keep" / "box3-nvs.bin"
    result = invoke("provision", "--board", "esp32-s3-box-3", "--out", str(nvs_bin))
    assert result.exit_code == 0, result.stderr
    assert (nvs_bin.stat().st_mode & 0o777) == 0o600
    assert "write-flash 0x9000" in result.stderr
    listed = invoke("nvs", "show", str(nvs_bin))
    assert "rtflash:wifi_pass" in listed.stdout and "canary-pw-42" not in listed.output
    revealed = json.loads(invoke("nvs", "show", str(nvs_bin), "--reveal", "--json").stdout)
    values = {i["key"]: i["value"] for i in revealed["items"]}
    assert values["wifi_pass"] == "canary-pw-42" and values["api_key"] == KEY


def test_provision_out_refuses_build_and_dist(invoke, secrets_env, monkeypatch):
    monkeypatch.setenv("WIFI_SSID", "Home")
    monkeypatch.setenv("WIFI_PASSWORD", "canary-pw-42")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for where in ("build/sonatino/nvs.bin", "dist/nvs.bin"):
        result = invoke("provision", "--board", "sonatino", "--out", where)
        assert result.exit_code == 1 and "credentials stay out of" in result.stderr
        assert not (secrets_env.parent / where).exists()


def test_provision_missing_credential(invoke, secrets_env):
    result = invoke("provision", "--board", "sonatino")
    assert result.exit_code == 1 and "export RTFLASH_WIFI_SSID" in result.stderr
    assert not (secrets_env.parent / "build" / "sonatino" / "nvs.bin").exists()


def test_provision_linux_writes_nothing(invoke, secrets_env):
    result = invoke("provision", "--board", "linux")
    assert result.exit_code == 0 and "`rtflash exec` passes it the API key (from the environment" in result.stderr
    assert not (secrets_env.parent / "build" / "linux" / "nvs.bin").exists()


def test_nvs_show_corrupt_file(invoke, project):
    (project / "bad.bin").write_bytes(b"\x00" * 4096)
    result = invoke("nvs", "show", str(project / "bad.bin"))
    assert result.exit_code == 1 and "not an NVS image: the header CRC" in result.stderr
