"""Credential resolution order, validation, the secrets file and its permissions."""

from __future__ import annotations

import pytest

from rtflash import credentials, redact
from rtflash.credentials import Credential, resolve
from rtflash.errors import CredentialError

KEY = "sk-" + "test-abcdefghijklmnopqrstuvwx"


@pytest.fixture
def env(tmp_path):
    return {"RTFLASH_SECRETS_FILE": str(tmp_path / "secrets.toml")}


def test_option_beats_env_beats_dotenv_beats_file(project, env):
    credentials.store_secrets({"wifi_ssid": "FromFile", "wifi_password": "file-password",
                               "openai_api_key": KEY}, env)
    (project / ".env").write_text('# comment\nexport WIFI_SSID="FromDotenv"\nWIFI_PASSWORD=dotenv-password\n')
    env = {**env, "RTFLASH_WIFI_SSID": "FromEnv"}
    found = resolve({"wifi_ssid": None, "openai_api_key": KEY + "x"}, project, env=env)
    assert found["wifi_ssid"].value == "FromEnv" and found["wifi_ssid"].source == "environment RTFLASH_WIFI_SSID"
    assert found["wifi_password"].value == "dotenv-password"
    assert found["wifi_password"].source.endswith(".env:3 (WIFI_PASSWORD)")
    assert found["openai_api_key"].source == "--api-key"
    only_file = resolve({}, project / "elsewhere", env={"RTFLASH_SECRETS_FILE": env["RTFLASH_SECRETS_FILE"]})
    assert only_file["wifi_ssid"].value == "FromFile" and "secrets file" in only_file["wifi_ssid"].source


def test_rtflash_env_beats_sdk_env(project, env):
    found = resolve({}, project, names=("wifi_ssid",), env={**env, "WIFI_SSID": "sdk", "RTFLASH_WIFI_SSID": "ours"})
    assert found["wifi_ssid"].value == "ours"


def test_resolved_secrets_are_registered_for_redaction(project, env):
    resolve({}, project, env={**env, "WIFI_SSID": "net", "WIFI_PASSWORD": "canary-pw-123", "OPENAI_API_KEY": KEY})
    assert "canary-pw-123" not in redact.redact("pw canary-pw-123") and KEY not in redact.redact(KEY)


def test_prompt_used_last(project, env):
    asked = []
    found = resolve({}, project, names=("wifi_ssid",), env=env, prompt=lambda f: asked.append(f.name) or "Prompted")
    assert asked == ["wifi_ssid"] and found["wifi_ssid"].source == "prompt"


def test_missing_names_variable_and_option(project, env):
    with pytest.raises(CredentialError) as err:
        resolve({"openai_api_key": None}, project, names=("openai_api_key",), env=env)
    assert "RTFLASH_OPENAI_API_KEY" in str(err.value) and "pass --api-key" in str(err.value)


def test_missing_advises_an_option_only_where_the_command_has_it(project, env):
    """`rtflash exec` / `flash` have no --api-key: a resolve without that option must not advise it."""
    with pytest.raises(CredentialError) as err:
        resolve({}, project, names=("openai_api_key",), env=env)
    assert "pass --api-key" not in str(err.value) and "`rtflash secrets set --api-key ...`" in str(err.value)


def test_longest_valid_key_is_what_nvs_holds():
    from rtflash import nvs
    from rtflash.settings import Settings

    key = "sk-" + "a" * (credentials.MAX_KEY_BYTES - 3)
    credentials.validate(Credential("openai_api_key", key, "x"))  # raises if refused
    entries = nvs.entries({"openai_api_key": Credential("openai_api_key", key, "x")}, Settings())
    assert ("api_key", key) in entries  # provision takes it too


@pytest.mark.parametrize("name,value,words", [
    ("wifi_ssid", "", "1-32 bytes"),
    ("wifi_ssid", "é" * 17, "34 bytes"),
    ("wifi_password", "short", "8-63"),
    ("wifi_password", "x" * 64, "8-63"),
    ("wifi_password", "pässwörter1", "non-ASCII"),
    ("wifi_password", "tab\there-pw", "control"),
    ("openai_api_key", "not-a-key-at-all-xxxxxxxx", "does not look like"),
    ("openai_api_key", "sk-has space in it 1234567", "does not look like"),
    ("openai_api_key", "sk-" + "a" * 5020, "5023 bytes; the device's NVS holds at most 3967"),
    ("openai_api_key", "sk-abcdefghij\x1bklmnopqrst", "control characters"),
])
def test_validation_names_source_not_value(name, value, words):
    with pytest.raises(CredentialError) as err:
        credentials.validate(Credential(name, value, "environment TEST_VAR"))
    assert words in str(err.value) and "environment TEST_VAR" in str(err.value)
    if len(value) > 3:
        assert value not in str(err.value)


@pytest.mark.parametrize("name, value", [
    ("wifi_password", ""),  # open network
    ("wifi_password", "a" * 63),
    ("wifi_password", "0123456789abcdef" * 4),  # raw PSK
    ("wifi_ssid", "é" * 16),  # 32 bytes of UTF-8
])
def test_valid_edge_cases(name, value):
    try:
        credentials.validate(Credential(name, value, "x"))
    except CredentialError as exc:
        pytest.fail(f"{name} {value!r} refused: {exc}")


def test_secrets_file_mode_and_loose_permissions(project, env):
    path = credentials.store_secrets({"wifi_password": 'quote"and\\slash'}, env)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert credentials.read_secrets_file(path)["wifi_password"] == 'quote"and\\slash'
    path.chmod(0o644)
    with pytest.raises(CredentialError, match=rf"mode 0644\); run: chmod 600 {path}"):
        resolve({}, project, env=env)


def test_clear_secrets(env):
    credentials.store_secrets({"wifi_ssid": "Net", "wifi_password": "password1"}, env)
    path = credentials.clear_secrets(("wifi_password",), env)
    assert credentials.read_secrets_file(path) == {"wifi_ssid": "Net"}


def test_unreadable_dotenv(project, env):
    (project / ".env").write_bytes(b"WIFI_SSID=\xff\xfe\n")
    with pytest.raises(CredentialError, match=r"\.env: cannot read \.env file"):
        resolve({}, project, env=env)
