"""A canary secret, set in every credential source in turn, never shows up anywhere but the device.

Every command that exists is run with the installed `rtflash` script, also with --verbose and with a
forced traceback; stdout, stderr and every file under build/ and dist/ are searched (the one file
that must hold it, the `provision --out` image, is outside them).
New commands join by adding one argv line to COMMANDS.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PASSWORD = "canary-pw-7f3a9c1e"
API_KEY = "sk-" + "canary-7f3a9c1e5b2d4a6f8e0c"
SSID = "CanaryNet"

COMMANDS = [
    ["render", "--board", "sonatino"],
    ["provision", "--board", "sonatino", "--out", "private/nvs.bin"],
    ["--verbose", "provision", "--board", "atoms3r-echo", "--out", "private/atoms3r-echo.bin"],
    ["secrets", "show"],
    ["secrets", "show", "--json"],
    ["nvs", "show", "private/nvs.bin"],
    ["check", "--board", "sonatino"],
    ["ci", "--boards", "all", "--matrix"],
    ["build", "--board", "sonatino"],
    ["--verbose", "build", "--board", "esp32-s3-box-3", "--json"],
    ["ci", "--boards", "sonatino,linux", "--out", "dist"],
    ["doctor"],
    ["flash", "--board", "sonatino", "--port", "socket://127.0.0.1:9"],
    ["--verbose", "run", "--board", "sonatino", "--port", "socket://127.0.0.1:9"],
    ["--verbose", "flash", "--board", "atoms3r-echo", "--port", "socket://127.0.0.1:9", "--json"],
    ["--verbose", "doctor", "--json"],
    ["deps", "--json"],
    ["--verbose", "monitor", "--board", "sonatino", "--port", "socket://127.0.0.1:9", "--no-reconnect"],
]


def write_sources(project: Path, source: str) -> tuple[list[str], dict[str, str]]:
    """Put the canary in one source; return (extra CLI options, extra environment)."""
    env = {"RTFLASH_SECRETS_FILE": str(project / "secrets.toml")}
    if source == "options":
        return ["--wifi-ssid", SSID, "--wifi-password", PASSWORD, "--api-key", API_KEY], env
    if source == "rtflash-env":
        return [], {**env, "RTFLASH_WIFI_SSID": SSID, "RTFLASH_WIFI_PASSWORD": PASSWORD,
                    "RTFLASH_OPENAI_API_KEY": API_KEY}
    if source == "sdk-env":
        return [], {**env, "WIFI_SSID": SSID, "WIFI_PASSWORD": PASSWORD, "OPENAI_API_KEY": API_KEY}
    if source == "dotenv":
        (project / ".env").write_text(f"WIFI_SSID={SSID}\nWIFI_PASSWORD='{PASSWORD}'\nOPENAI_API_KEY={API_KEY}\n")
        return [], env
    if source == "secrets-file":
        path = project / "secrets.toml"
        path.write_text(f'wifi_ssid = "{SSID}"\nwifi_password = "{PASSWORD}"\nopenai_api_key = "{API_KEY}"\n')
        path.chmod(0o600)
        return [], env
    raise AssertionError(source)


def run(exe: str, argv: list[str], project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "WIFI_", "OPENAI_"))}
    return subprocess.run([exe, *argv], cwd=project, env={**clean, **env, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120)


def assert_no_canary(text: str, where: str) -> None:
    assert PASSWORD not in text, f"Wi-Fi password leaked in {where}"
    assert API_KEY not in text, f"API key leaked in {where}"
    assert API_KEY[10:] not in text, f"part of the API key leaked in {where}"


def scan_tree(project: Path) -> int:
    scanned = 0
    for folder in ("build", "dist"):
        for path in (project / folder).rglob("*") if (project / folder).exists() else ():
            if path.is_file():
                data = path.read_bytes()
                assert PASSWORD.encode() not in data and API_KEY.encode() not in data, f"leak in {path}"
                scanned += 1
    return scanned


@pytest.mark.parametrize("source", ["options", "rtflash-env", "sdk-env", "dotenv", "secrets-file"])
def test_canary_never_leaks(rtflash_exe, project, fake_idf, source):
    options, env = write_sources(project, source)
    for argv in COMMANDS:
        if "provision" in argv:
            argv = argv + options
        result = run(rtflash_exe, argv, project, env)
        assert_no_canary(result.stdout + result.stderr, f"`rtflash {' '.join(argv[:3])}` output ({source})")
        if "provision" in argv:
            assert result.returncode == 0, result.stderr
    nvs_bin = project / "private" / "nvs.bin"
    assert PASSWORD.encode() in nvs_bin.read_bytes(), "the canary must reach nvs.bin, or the test proves nothing"
    assert (project / "dist" / "sonatino" / "manifest.json").is_file(), "ci must have run, or dist proves nothing"
    assert scan_tree(project) >= 20


def test_canary_not_in_forced_traceback(rtflash_exe, project):
    """A failure after the secrets are resolved, with --verbose and RTFLASH_TRACEBACK: still redacted."""
    options, env = write_sources(project, "rtflash-env")
    (project / "rtflash.toml").write_text(f'instructions = "{"x" * 5000}"\n')
    result = run(rtflash_exe, ["--verbose", "provision", "--board", "sonatino", "--wifi-password", PASSWORD],
                 project, {**env, "RTFLASH_TRACEBACK": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "NVS strings hold at most" in result.stderr
    assert_no_canary(result.stdout + result.stderr, "forced traceback")
