"""`rtflash provision --encrypt` against the emulated ESP32-S3: espefuse (really) burns the device's HMAC
key into an empty eFuse key block with purpose HMAC_UP, a used block is refused, a second provision
burns nothing; the NVS read back from the emulator holds no 8-byte window of any secret and decrypts,
with the device's key, through esp-idf-nvs-partition-gen's own `decrypt` back to exactly the values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtflash import efuse, nvs
from tests.test_canary import API_KEY, PASSWORD, SSID, assert_no_canary

CREDS = {"RTFLASH_WIFI_SSID": SSID, "RTFLASH_WIFI_PASSWORD": PASSWORD, "RTFLASH_OPENAI_API_KEY": API_KEY}
NVS = slice(0x9000, 0xF000)


@pytest.fixture
def keyed_env(monkeypatch, tmp_path):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RTFLASH_KEYS_DIR", str(tmp_path / "keys"))
    return tmp_path / "keys"


def windows(secret: str, n: int = 8) -> list[bytes]:
    raw = secret.encode()
    return [raw[i:i + n] for i in range(max(1, len(raw) - n + 1))]


def decrypt(image: bytes, hmac_key: bytes, work: Path) -> bytes:
    """esp-idf-nvs-partition-gen derives the XTS keys from the HMAC key, then decrypts the partition."""
    work.mkdir()
    (work / "hmac.bin").write_bytes(hmac_key)
    (work / "enc.bin").write_bytes(image)
    tool = [sys.executable, "-m", "esp_idf_nvs_partition_gen"]
    subprocess.run([*tool, "generate-key", "--key_protect_hmac", "--kp_hmac_inputkey", str(work / "hmac.bin"),
                    "--keyfile", "xts.bin", "--outdir", str(work)], check=True, capture_output=True, cwd=work)
    subprocess.run([*tool, "decrypt", str(work / "enc.bin"), str(work / "keys" / "xts.bin"), "dec.bin",
                    "--outdir", str(work)], check=True, capture_output=True, cwd=work)
    return (work / "dec.bin").read_bytes()


def test_encrypt_burns_once_and_the_partition_decrypts_with_the_device_key(invoke, project, emulators, keyed_env,
                                                                           tmp_path):
    emu = emulators()
    result = invoke("provision", "--board", "sonatino", "--port", emu.url, "--encrypt", "--yes")
    assert result.exit_code == 0, result.output
    fuses = emu.chip.efuse
    assert fuses.key_purpose(0) == 8, "BLOCK_KEY0 has purpose HMAC_UP"
    assert fuses.rd_dis() & 1 and fuses.wr_dis() >> 23 & 1 and fuses.wr_dis() >> 8 & 1, "read/write protected"
    assert "BLOCK_KEY0" in result.output and "burned" in result.output
    mac = ":".join(f"{b:02x}" for b in emu.chip.mac)
    path = efuse.key_path(mac)
    assert path.parent == keyed_env and (path.stat().st_mode & 0o777) == 0o600
    key = path.read_bytes()
    assert fuses.key_bytes(0) == key and len(key) == 32
    assert_no_canary(result.output, "provision --encrypt output")
    assert key.hex() not in result.output
    # the flash holds none of the secrets, not even 8 bytes of one
    image = bytes(emu.chip.flash[NVS])
    for secret in (SSID, PASSWORD, API_KEY):
        assert not [w for w in windows(secret) if w in image], f"part of {secret[:3]}... in the encrypted NVS"
    assert not nvs.read_image(image).items or nvs.read_image(image).get("rtflash", "wifi_pass") is None
    plain = nvs.read_image(decrypt(image, key, tmp_path / "dec"))
    assert plain.get("rtflash", "wifi_ssid") == SSID
    assert plain.get("rtflash", "wifi_pass") == PASSWORD
    assert plain.get("rtflash", "api_key") == API_KEY
    # again: the key is found by MAC and reused, nothing burned
    burns = list(fuses.burns)
    again = invoke("provision", "--board", "sonatino", "--port", emu.url, "--encrypt")
    assert again.exit_code == 0, again.output
    assert fuses.burns == burns and "nothing burned" in again.output
    assert nvs.read_image(decrypt(bytes(emu.chip.flash[NVS]), key, tmp_path / "dec2")).get("rtflash", "api_key") \
        == API_KEY


def test_a_used_block_is_refused_and_nothing_is_burned_or_written(invoke, project, emulators, keyed_env):
    emu = emulators()
    emu.chip.efuse.set_key(0, bytes(range(32)), purpose=9)   # SECURE_BOOT_DIGEST0 already there
    result = invoke("provision", "--board", "sonatino", "--port", emu.url, "--encrypt", "--yes")
    assert result.exit_code != 0
    assert "BLOCK_KEY0 has purpose SECURE_BOOT_DIGEST0" in result.output and "nothing burned" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert emu.chip.efuse.burns == [] and set(emu.chip.flash[NVS]) == {0xFF}


def test_a_device_keyed_elsewhere_is_refused(invoke, project, emulators, keyed_env):
    emu = emulators()
    emu.chip.efuse.set_key(0, bytes(range(32)), purpose=8)   # an HMAC key this machine never had
    result = invoke("provision", "--board", "sonatino", "--port", emu.url, "--encrypt", "--yes")
    assert result.exit_code != 0 and "already holds an HMAC key that this machine does not have" in result.output
    assert emu.chip.efuse.burns == [] and set(emu.chip.flash[NVS]) == {0xFF}


def test_without_yes_and_no_terminal_nothing_is_burned(invoke, project, emulators, keyed_env):
    emu = emulators()
    result = invoke("provision", "--board", "sonatino", "--port", emu.url, "--encrypt")
    assert result.exit_code != 0 and "pass --yes to confirm" in result.output and "BLOCK_KEY0" in result.output
    assert emu.chip.efuse.burns == [] and set(emu.chip.flash[NVS]) == {0xFF}


def test_security_table_picks_the_block_per_board(invoke, project, emulators, keyed_env):
    (project / "rtflash.toml").write_text('[security.boards.sonatino]\nnvs_encryption = "hmac"\n'
                                          'nvs_hmac_key_block = 3\n')
    emu = emulators()
    result = invoke("provision", "--board", "sonatino", "--port", emu.url, "--yes")
    assert result.exit_code == 0, result.output
    assert emu.chip.efuse.key_purpose(3) == 8 and emu.chip.efuse.key_purpose(0) == 0


def test_emulated_burns_only_set_bits_and_honour_write_protection():
    from testkit.esp_efuse import CMD, CONF, PGM_CHECK, PGM_DATA, WRITE_OP, Efuses, rs_check

    fuses = Efuses()

    def burn(block: int, data: bytes, check: bytes | None = None) -> None:
        for i in range(8):
            fuses.write(PGM_DATA + 4 * i, int.from_bytes(data[4 * i:4 * i + 4], "little"))
        check = rs_check(data) if check is None else check
        for i in range(3):
            fuses.write(PGM_CHECK + 4 * i, int.from_bytes(check[4 * i:4 * i + 4], "little"))
        fuses.write(CONF, WRITE_OP)
        fuses.write(CMD, 0x2 | block << 2)

    burn(5, b"\x0f" * 32)
    burn(5, b"\xf0" * 32)          # OR, never clears
    assert fuses.key_bytes(1) == b"\xff" * 32
    burn(6, b"\x01" * 32, check=b"\0" * 12)    # bad RS check bytes: refused, error flagged
    assert fuses.key_bytes(2) == bytes(32) and fuses.read(0x600071C0) >> 23 & 1
    fuses.set_key(3, b"\x11" * 32, purpose=8)
    assert fuses.read(0x60007000 + 0x09C + 3 * 0x20) == 0, "read-protected block reads as zeros"
    burn(7, b"\xff" * 32)          # write-protected: unchanged
    assert fuses.key_bytes(3) == b"\x11" * 32


def test_relay_token_encrypted_too_and_verbose_output_shows_no_key(invoke, project, emulators, keyed_env,
                                                                   monkeypatch, tmp_path):
    """Relay mode: the device token is a secret like the password; espefuse's own lines (--verbose)
    show the key as ?? and never its bytes."""
    from rtflash.relay.sqlstore import open_store

    monkeypatch.setenv("RTFLASH_RELAY_STORE", str(project / "cfg" / "relay-devices.json"))
    monkeypatch.delenv("RTFLASH_OPENAI_API_KEY")
    token = open_store(project / "elsewhere.db").enroll("kitchen")
    monkeypatch.setenv("RTFLASH_RELAY_TOKEN", token)
    emu = emulators()
    result = invoke("--verbose", "provision", "--board", "sonatino", "--port", emu.url, "--encrypt", "--yes",
                    "--relay", "https://relay.example/v1/realtime/calls", "--device", "kitchen")
    assert result.exit_code == 0, result.output
    key = efuse.key_path(":".join(f"{b:02x}" for b in emu.chip.mac)).read_bytes()
    assert "BURN BLOCK" in result.output, "espefuse's lines are shown with --verbose"
    assert key.hex() not in result.output and key.hex(" ") not in result.output
    assert token not in result.output and token[8:] not in result.output
    image = bytes(emu.chip.flash[NVS])
    for secret in (SSID, PASSWORD, token):
        assert not [w for w in windows(secret) if w in image]
    plain = nvs.read_image(decrypt(image, key, tmp_path / "dec"))
    assert plain.get("rtflash", "relay_token") == token and plain.get("rtflash", "wifi_pass") == PASSWORD
    assert plain.get("rtflash", "api_key") is None


def test_installed_script_burns_once_then_reuses(rtflash_exe, project, emulators, tmp_path):
    import os

    emu = emulators()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_WIFI", "RTFLASH_OPENAI"))},
           **CREDS, "RTFLASH_KEYS_DIR": str(tmp_path / "k")}
    argv = [rtflash_exe, "provision", "--board", "sonatino", "--port", emu.url, "--encrypt"]
    first = subprocess.run([*argv, "--yes"], cwd=project, env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
                            stdin=subprocess.DEVNULL)
    assert second.returncode == 0, second.stderr
    assert "burned into eFuse BLOCK_KEY0" in first.stderr and "nothing burned" in second.stderr
    assert emu.chip.efuse.burns.count(4) == 1   # BLOCK_KEY0 is eFuse block 4: burned once
    for out in (first, second):
        assert_no_canary(out.stdout + out.stderr, "installed provision --encrypt")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o700
