"""The bad-input corpus: one table of things a user gets wrong, each run as the user runs it.

Every case asserts the same contract: exactly one error line, naming the thing (file, key, port,
option) and the fix; the exit code; no traceback; no canary secret in the output or in any file the
command wrote; no half-written file (no temp file left, nothing created that must not be, nothing
changed that must stay); and every `--option` the line advises exists on the command that printed it.
Cases run in-process through main() (the `invoke` fixture); a few also through the installed script.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.test_boards import CODEC_BOARD, I2S_BOARD
from tests.test_cli import options_of

PASSWORD = "canary-pw-D2-5e1b7c"
API_KEY = "sk-" + "canary-D2-5e1b7c9a0f2d4e6b"
SSID = "CanaryNet-D2"
CREDS = {"RTFLASH_WIFI_SSID": SSID, "RTFLASH_WIFI_PASSWORD": PASSWORD, "RTFLASH_OPENAI_API_KEY": API_KEY}
CANARIES = (PASSWORD, API_KEY, PASSWORD[7:], API_KEY[10:])


@dataclass
class Case:
    id: str
    argv: list[str]
    words: tuple[str, ...]           # all in the one error line: the thing named and the fix
    code: int = 1
    files: dict[str, str | bytes] = field(default_factory=dict)  # written into the project first
    env: dict[str, str] = field(default_factory=dict)
    creds: bool = True               # canary credentials in the environment
    setup: Callable[[Path], None] | None = None
    absent: tuple[str, ...] = ()     # must not exist afterwards (nothing half-written)
    keep: tuple[str, ...] = ()       # must be byte-identical afterwards
    device: dict | None = None       # an emulated chip (testkit/esp_rom_emulator.py) at the argv's EMU:
    #                                  its flash must be byte-identical afterwards, no write begun
    warns: tuple[str, ...] = ()      # words of the one warning line allowed beside the error


def _board(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _mine(text: str | bytes, name: str = "mine/custom.toml") -> dict:
    return {name: text}


BUILT: dict[str, Path] = {}


def _copy_build(board: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        shutil.copytree(BUILT[board] / "build" / board, project / "build" / board, symlinks=True)
    return setup


def _then(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        for step in steps:
            step(project)
    return setup


def _grow_app(project: Path) -> None:
    """A well-formed ESP32-S3 app of 4 MB: bigger than sonatino's ota_0 (0x3f0000)."""
    from tests.test_images import esp_image

    (project / "build/sonatino/rtflash_firmware.bin").write_bytes(esp_image(size=0x400000))


def _drop_app(project: Path) -> None:
    (project / "build/sonatino/rtflash_firmware.bin").unlink()


def _break_flasher_args(project: Path) -> None:
    (project / "build/sonatino/flasher_args.json").write_text("{broken")


def _loose_secrets(project: Path) -> None:
    (project / "secrets.toml").chmod(0o644)


def _private(project: Path) -> None:
    (project / "secrets.toml").chmod(0o600)


def _linux_build(project: Path) -> None:
    folder = project / "build" / "linux"
    folder.mkdir(parents=True)
    (folder / "project_description.json").write_text(json.dumps({"app_elf": "rtflash_firmware.elf"}))
    elf = folder / "rtflash_firmware.elf"
    elf.write_text("#!/bin/sh\nexit 0\n")
    elf.chmod(0o755)


def _server(behaviour: str) -> str:
    """A socket:// device on 127.0.0.1 that is silent, or talks noise (not a ROM bootloader); bounded."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn, listener:
            conn.settimeout(0.01)
            noise = random.Random(3).randbytes(4096)
            end = time.monotonic() + 15
            while time.monotonic() < end:
                try:
                    if behaviour == "noise":
                        conn.sendall(noise)
                    if conn.recv(4096) == b"" and behaviour == "noise":
                        return
                except TimeoutError:
                    pass
                except OSError:
                    return
                time.sleep(0.01)

    threading.Thread(target=serve, daemon=True).start()
    return f"socket://127.0.0.1:{listener.getsockname()[1]}"


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"socket://127.0.0.1:{s.getsockname()[1]}"


APP = "build/sonatino/rtflash_firmware.bin"
BOOT = "build/sonatino/bootloader/bootloader.bin"
TABLE = "build/sonatino/partition_table/partition-table.bin"
SLOT = 0x3F0000  # sonatino (8 MB): two OTA slots of this size from 0x20000
SONATINO_ROWS = [(("nvs", 1, 2, 0x9000, 0x6000)), ("otadata", 1, 0, 0xF000, 0x2000), ("phy_init", 1, 1, 0x11000, 0x1000),
                 ("ota_0", 0, 0x10, 0x20000, SLOT), ("ota_1", 0, 0x11, 0x20000 + SLOT, SLOT)]


def _edit(rel: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """Change one file of the copied build (after _copy_build)."""
    def setup(project: Path) -> None:
        path = project / rel
        path.write_bytes(change(path.read_bytes()))
    return setup


def _broken(rel: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return _then(_copy_build("sonatino"), _edit(rel, change))


def _flip(at: int) -> Callable[[bytes], bytes]:
    return lambda d: d[:at] + bytes([d[at] ^ 0x5A]) + d[at + 1:]


def _table_of(rows) -> Callable[[bytes], bytes]:
    """A well-formed binary table (MD5 right) holding `rows`: only its layout is wrong."""
    from tests.test_partitions import _row, _table

    return lambda _old: _table([_row(*r) for r in rows])


def _app_for(chip: str) -> Callable[[bytes], bytes]:
    from tests.test_images import esp_image

    return lambda _old: esp_image(chip, size=64 * 1024)


def _stale_flash_id(project: Path) -> None:
    """The device cache says this MAC's flash is 8 MB (an earlier device); the chip now has 4 MB."""
    folder = Path(os.environ["RTFLASH_CACHE_DIR"]) / "7cdfa1e0c0de"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flash-id").write_text("1740c8\n")  # GD25Q64: manufacturer 0xC8, capacity 0x17 = 8 MB


KEY_5023 = "sk-" + "a" * 5020
SECRETS_OK = f'wifi_ssid = "{SSID}"\nwifi_password = "{PASSWORD}"\n'
NOISE = random.Random(14).randbytes(0x6000)

CASES = [
    # --- board files (a user's --boards-dir) -------------------------------------------------------
    Case("board-unknown-key", ["--boards-dir", "mine", "render", "-b", "custom"], ("custom.toml", "colour", "unknown key"),
         files=_mine(_board(I2S_BOARD, 'pio_board = "esp32-s3-devkitc-1"', 'pio_board = "x"\ncolour = "red"')),
         absent=("build/custom",)),
    Case("board-bad-toml", ["--boards-dir", "mine", "render", "-b", "custom"], ("custom.toml", "invalid TOML", "fix the syntax"),
         files=_mine("chip = \n"), absent=("build/custom",)),
    Case("board-flash-pin", ["--boards-dir", "mine", "render", "-b", "custom"],
         ("custom.toml", "audio.speaker.dout", "GPIO27", "SPI flash", "pick another pin"),
         files=_mine(_board(I2S_BOARD, "dout = 7", "dout = 27")), absent=("build/custom",)),
    Case("board-octal-psram-pin", ["--boards-dir", "mine", "build", "-b", "custom"],
         ("custom.toml", "audio.mic.din", "GPIO35", "octal PSRAM"),
         files=_mine(_board(I2S_BOARD, "din = 6", "din = 35")), absent=("build/custom",)),
    Case("board-no-such-gpio", ["--boards-dir", "mine", "render", "-b", "custom"],
         ("custom.toml", "audio.speaker.bclk", "GPIO22 does not exist", "valid: 0-21, 26-48"),
         files=_mine(_board(I2S_BOARD, "bclk = 15", "bclk = 22"))),
    Case("board-pin-twice", ["--boards-dir", "mine", "render", "-b", "custom"],
         ("custom.toml", "audio.mic.bclk", "already used by audio.speaker.ws", "one job"),
         files=_mine(_board(I2S_BOARD, "bclk = 5", "bclk = 16"))),
    Case("board-missing-chip", ["--boards-dir", "mine", "boards", "show", "custom"], ("custom.toml", "chip", "is required; add it"),
         files=_mine(_board(I2S_BOARD, 'chip = "esp32s3"\n', ""))),
    Case("board-rate-type", ["--boards-dir", "mine", "render", "-b", "custom"],
         ("custom.toml", "audio.sample_rate", "16000, 24000"),
         files=_mine(_board(I2S_BOARD, "sample_rate = 16000", 'sample_rate = "16k"'))),
    Case("board-i2c-address", ["--boards-dir", "mine", "render", "-b", "custom"],
         ("custom.toml", "audio.codec.dac_address", "0x7", "7-bit I2C address"),
         files=_mine(_board(CODEC_BOARD, "dac_address = 0x18", "dac_address = 0x07"))),
    Case("board-not-utf8", ["--boards-dir", "mine", "render", "-b", "custom"], ("custom.toml", "cannot read board file"),
         files=_mine(b"chip = \"esp32s3\"\n\xff\xfe\n")),
    Case("boards-dir-missing", ["--boards-dir", "nowhere", "boards"], ("nowhere", "does not exist", "--boards-dir")),
    Case("board-unknown-name", ["render", "--board", "sonatno"], ("unknown board 'sonatno'", "did you mean 'sonatino'")),
    Case("board-linux-exec-hardware", ["exec", "--board", "sonatino"], ("board sonatino is esp32s3", "rtflash flash")),
    # --- rtflash.toml ----------------------------------------------------------------------------
    Case("toml-syntax", ["render"], ("rtflash.toml", "invalid TOML", "fix the syntax"), files={"rtflash.toml": "board = \n"}),
    Case("toml-unknown-key", ["render"], ("rtflash.toml", "bord", "did you mean 'board'"),
         files={"rtflash.toml": 'bord = "sonatino"\n'}, absent=("build",)),
    Case("toml-secret", ["render", "-b", "linux"], ("rtflash.toml", "api_key", "secrets do not belong", "rtflash secrets set"),
         files={"rtflash.toml": f'api_key = "{API_KEY}"\n'}),
    Case("toml-backend", ["build", "-b", "linux"], ("rtflash.toml", "backend", "'gcc'", "auto, idf, pio"),
         files={"rtflash.toml": 'backend = "gcc"\n'}),
    Case("toml-baud-range", ["render", "-b", "linux"], ("rtflash.toml", "baud", "9600-5000000"), files={"rtflash.toml": "baud = 12\n"}),
    Case("toml-baud-type", ["render", "-b", "linux"], ("rtflash.toml", "baud", "whole number"),
         files={"rtflash.toml": 'baud = "fast"\n'}),
    Case("toml-default-board", ["render"], ("unknown board 'sonatinoo'", "did you mean 'sonatino'"),
         files={"rtflash.toml": 'board = "sonatinoo"\n'}, absent=("build",)),
    Case("toml-boards-dir", ["boards"], ("does not exist", "boards_dir"), files={"rtflash.toml": 'boards_dir = "gone"\n'}),
    Case("no-board-at-all", ["build"], ("no board given", "--board NAME", "rtflash.toml")),
    # --- secrets -----------------------------------------------------------------------------------
    Case("secrets-file-loose", ["secrets", "show"], ("secrets.toml", "readable by others", "chmod 600"),
         files={"secrets.toml": SECRETS_OK}, setup=_loose_secrets, creds=False, keep=("secrets.toml",)),
    Case("secrets-file-unknown-key", ["secrets", "show"], ("secrets.toml", "unknown key 'api'", "allowed:"),
         files={"secrets.toml": f'api = "{API_KEY}"\n'}, setup=_private, creds=False, keep=("secrets.toml",)),
    Case("secrets-file-garbled", ["provision", "-b", "sonatino", "--out", "private/nvs.bin"],
         ("secrets.toml", "unreadable secrets file", "fix or delete it"),
         files={"secrets.toml": f'wifi_password = "{PASSWORD}\n'}, setup=_private, creds=False,
         absent=("private/nvs.bin",)),
    Case("secrets-set-short-password", ["secrets", "set", "--wifi-password", "short"],
         ("Wi-Fi password from --wifi-password", "8-63"), files={"secrets.toml": SECRETS_OK}, setup=_private,
         keep=("secrets.toml",)),
    Case("secrets-set-huge-key", ["secrets", "set", "--api-key", KEY_5023],
         ("OpenAI API key from --api-key", "5023 bytes", "at most 3967"), absent=("secrets.toml",)),
    Case("secrets-set-not-a-key", ["secrets", "set", "--api-key", "pk-live-abcdefghijklmnopqrstuvw"],
         ("OpenAI API key from --api-key", "does not look like an OpenAI key", "copy it again"), absent=("secrets.toml",)),
    Case("secrets-set-unwritable", ["secrets", "set", "--wifi-ssid", "Home"], ("cannot write", "/proc/nope"),
         env={"RTFLASH_SECRETS_FILE": "/proc/nope/secrets.toml"}),
    Case("secrets-ssid-too-long", ["provision", "-b", "sonatino", "--out", "private/nvs.bin", "--wifi-ssid", "x" * 40],
         ("Wi-Fi SSID from --wifi-ssid", "40 bytes", "1-32 bytes"), absent=("private/nvs.bin",)),
    Case("secrets-dotenv-bad", ["provision", "-b", "sonatino", "--out", "private/nvs.bin"],
         (".env:2 (WIFI_PASSWORD)", "8-63"), files={".env": f"WIFI_SSID={SSID}\nWIFI_PASSWORD=short\n"}, creds=False,
         absent=("private/nvs.bin",)),
    Case("secrets-missing-provision", ["provision", "-b", "sonatino", "--out", "private/nvs.bin"],
         ("Wi-Fi SSID is not set", "RTFLASH_WIFI_SSID", "--wifi-ssid", "rtflash secrets set"), creds=False,
         absent=("private/nvs.bin",)),
    Case("secrets-missing-exec", ["exec"], ("OpenAI API key is not set", "OPENAI_API_KEY", "rtflash secrets set"),
         creds=False, setup=_linux_build),
    Case("secrets-out-in-build", ["provision", "-b", "sonatino", "--out", "build/sonatino/nvs.bin"],
         ("credentials stay out of build/", "~/nvs-sonatino.bin"), absent=("build/sonatino/nvs.bin",)),
    # --- NVS images ----------------------------------------------------------------------------------
    Case("nvs-missing", ["nvs", "show", "nope.bin"], ("nope.bin", "cannot read NVS image", "check the path")),
    Case("nvs-odd-size", ["nvs", "show", "odd.bin"], ("odd.bin", "not a multiple of 4096", "whole nvs partition"),
         files={"odd.bin": b"\xff" * 5000}),
    Case("nvs-empty", ["nvs", "show", "empty.bin"], ("empty.bin", "size 0", "whole nvs partition"), files={"empty.bin": b""}),
    Case("nvs-random", ["nvs", "show", "noise.bin"], ("noise.bin", "not an NVS image", "header CRC", "provision --out"),
         files={"noise.bin": NOISE}),
    Case("nvs-random-json", ["nvs", "show", "noise.bin", "--json"], ("noise.bin", "not an NVS image"),
         files={"noise.bin": NOISE}),
    # --- ports -----------------------------------------------------------------------------------------
    Case("port-missing-monitor", ["monitor", "--port", "/dev/rtflash-nope", "--no-reconnect"],
         ("/dev/rtflash-nope", "not found", "rtflash ports")),
    Case("port-refused-monitor", ["monitor", "--port", "CLOSED", "--no-reconnect"], ("nothing is listening", "127.0.0.1")),
    Case("port-missing-flash", ["flash", "-b", "sonatino", "--port", "/dev/rtflash-nope", "--no-credentials"],
         ("/dev/rtflash-nope", "not found", "rtflash ports"), setup=_copy_build("sonatino")),
    # --- images ------------------------------------------------------------------------------------------
    Case("image-no-build", ["flash", "-b", "sonatino", "--port", "/dev/rtflash-nope"], ("no build of board sonatino", "rtflash build")),
    Case("image-too-big", ["flash", "-b", "sonatino", "--port", "/dev/rtflash-nope", "--no-credentials"],
         ("rtflash_firmware.bin", "partition 'ota_0' holds", "shrink the app"),
         setup=_then(_copy_build("sonatino"), _grow_app)),
    Case("image-missing-bin", ["flash", "-b", "sonatino", "--port", "/dev/rtflash-nope", "--no-credentials"],
         ("rtflash_firmware.bin is missing", "rtflash build --board sonatino"), setup=_then(_copy_build("sonatino"), _drop_app)),
    Case("image-broken-flasher-args", ["flash", "-b", "sonatino", "--port", "/dev/rtflash-nope", "--no-credentials"],
         ("flasher_args.json", "unreadable", "rtflash build"), setup=_then(_copy_build("sonatino"), _break_flasher_args)),
    # --- images checked before any byte is written (emulator's flash unchanged) ------------------------------
    Case("image-app-truncated", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "End of file reading segment", "rtflash build --board sonatino"),
         setup=_broken(APP, lambda d: d[:len(d) // 2]), device={}),
    Case("image-app-random", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "not an ESP image", "want 0xe9", "rtflash build"),
         setup=_broken(APP, lambda d: random.Random(5).randbytes(len(d))), device={}),
    Case("image-app-random-e9", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "esptool cannot read it", "rtflash build"),
         setup=_broken(APP, lambda d: b"\xe9\x03" + random.Random(6).randbytes(len(d) - 2)), device={}),
    Case("image-app-flipped-byte", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "SHA-256 digest", "does not match", "rtflash build"),
         setup=_broken(APP, _flip(0x3000)), device={}),
    Case("image-app-digest-cut", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "ends before its SHA-256 digest"), setup=_broken(APP, lambda d: d[:-16]), device={}),
    Case("image-app-other-chip", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "chip id 5 (ESP32-C3), not ESP32-S3"), setup=_broken(APP, _app_for("esp32c3")),
         device={}),
    Case("image-app-empty", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "is 0 bytes"), setup=_broken(APP, lambda d: b""), device={}),
    Case("image-bootloader-random", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("bootloader.bin", "not an ESP image", "rtflash build --board sonatino"),
         setup=_broken(BOOT, lambda d: random.Random(7).randbytes(len(d))), device={}),
    Case("image-bootloader-flipped-byte", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("bootloader.bin", "SHA-256 digest", "does not match"), setup=_broken(BOOT, _flip(0x800)), device={}),
    Case("image-table-random", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("partition-table.bin", "row 0 has magic", "0x50AA", "rtflash build"),
         setup=_broken(TABLE, lambda d: random.Random(8).randbytes(len(d))), device={}),
    Case("image-table-md5", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("partition-table.bin", "MD5 row 5 does not match", "corrupted"), setup=_broken(TABLE, _flip(0x6C)), device={}),
    Case("image-table-no-end", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("partition-table.bin", "row 6 has magic 0x0000"),
         setup=_broken(TABLE, lambda d: d[:0xC0] + b"\x00" * (len(d) - 0xC0)), device={}),
    Case("image-table-overlap", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("partition-table.bin", "'ota_1' at 0x400000 overlaps 'ota_0'"),
         setup=_broken(TABLE, _table_of([*SONATINO_ROWS[:3], ("ota_0", 0, 0x10, 0x20000, 0x400000),
                                         ("ota_1", 0, 0x11, 0x400000, 0x300000)])), device={}),
    Case("image-table-app-unaligned", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("partition-table.bin", "'ota_1' at 0x418000 is not aligned to 0x10000"),
         setup=_broken(TABLE, _table_of([*SONATINO_ROWS[:4], ("ota_1", 0, 0x11, 0x418000, 0x3D0000)])), device={}),
    Case("image-table-app-moved", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "app goes to 0x20000", "no partition starting there"),
         setup=_broken(TABLE, _table_of([*SONATINO_ROWS[:3], ("ota_0", 0, 0x10, 0x30000, SLOT - 0x10000),
                                         SONATINO_ROWS[4]])), device={}),
    Case("image-table-slot-small", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("rtflash_firmware.bin", "partition 'ota_0' holds 0x10000", "shrink the app", "--force"),
         setup=_broken(TABLE, _table_of([*SONATINO_ROWS[:3], ("ota_0", 0, 0x10, 0x20000, 0x10000),
                                         ("ota_1", 0, 0x11, 0x30000, SLOT)])), device={}),
    Case("image-table-past-flash", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("flash is 8MB but the build spans 0xc00000 bytes", "--force"),
         setup=_broken(TABLE, _table_of([*SONATINO_ROWS[:4], ("ota_1", 0, 0x11, 0x410000, 0x7F0000)])), device={}),
    # --- the device itself: asked at every connect, the cache never trusted for the fit check ---------------
    Case("device-flash-small", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("EMU", "flash is 4MB but board sonatino needs 8MB", "--force"), setup=_copy_build("sonatino"),
         device={"flash_mb": 4}),
    Case("device-flash-small-stale-cache", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("EMU", "flash is 4MB but board sonatino needs 8MB", "--force"), setup=_then(_copy_build("sonatino"), _stale_flash_id),
         device={"flash_mb": 4}, warns=("flash id 1640c8 differs from 1740c8 cached", "replaced")),
    Case("device-other-chip", ["flash", "-b", "sonatino", "--port", "EMU", "--no-credentials"],
         ("EMU", "found ESP32-C3 but board sonatino is esp32s3", "--board"), setup=_copy_build("sonatino"),
         device={"chip": "esp32c3"}),
    # --- a newcomer's set-up: each message names the thing and the fix ---------------------------------------
    Case("cli-boards-dir-after-command", ["render", "--boards-dir", "mine", "-b", "custom"],
         ("--boards-dir is an option of rtflash itself", "put it before the command", "rtflash --boards-dir DIR render"),
         code=2, files=_mine(I2S_BOARD), absent=("build",)),
    Case("cli-project-dir-missing", ["-C", "nowhere", "boards"], ("-C nowhere: does not exist", "project folder")),
    Case("cli-project-dir-file", ["-C", "afile", "render", "-b", "linux"], ("'-C' / '--project'", "'afile' is a file"),
         code=2, files={"afile": "x"}),
    Case("port-socket-not-a-number", ["monitor", "--port", "socket://localhost:notaport", "--no-reconnect"],
         ("socket://localhost:notaport", "port number 1-65535", "socket://127.0.0.1:3333")),
    Case("port-regular-file-monitor", ["monitor", "--port", "afile", "--no-reconnect"],
         ("afile is a regular file, not a serial port", "rtflash ports"), files={"afile": "x"}, keep=("afile",)),
    Case("port-regular-file-flash", ["flash", "-b", "sonatino", "--port", "afile", "--no-credentials"],
         ("afile is a regular file, not a serial port", "rtflash ports"),
         setup=_then(_copy_build("sonatino"), lambda p: (p / "afile").write_text("x")), keep=("afile",)),
    Case("idf-path-not-esp-idf", ["build", "-b", "sonatino", "--backend", "idf"],
         ("IDF_PATH=notidf is not an ESP-IDF tree", "no tools/idf.py", "--backend pio"),
         files={"notidf/README.md": "my notes\n"}, env={"IDF_PATH": "notidf"}, absent=("build/sonatino/log",)),
    Case("idf-no-xtensa-toolchain", ["build", "-b", "sonatino", "--backend", "idf"],
         ("xtensa-esp32s3-elf-gcc is not on PATH", "install.sh esp32s3", "idf_tools.py install", "--backend pio"),
         files={"esp-idf/tools/idf.py": "# ESP-IDF's idf.py\n", "esp-idf/tools/cmake/version.cmake":
                "set(IDF_VERSION_MAJOR 5)\nset(IDF_VERSION_MINOR 5)\nset(IDF_VERSION_PATCH 1)\n"},
         env={"IDF_PATH": "esp-idf"}, absent=("build/sonatino/log",)),
    Case("secrets-dotenv-garbled", ["provision", "-b", "sonatino", "--out", "private/nvs.bin"],
         (".env:2", "not a KEY=VALUE line", "comment it out"), files={".env": f"WIFI_SSID={SSID}\nmy wifi is {PASSWORD}\n"},
         creds=False, absent=("private/nvs.bin",)),
    Case("secrets-dotenv-open-quote", ["provision", "-b", "sonatino", "--out", "private/nvs.bin"],
         (".env:2 (WIFI_PASSWORD)", "quote \" is never closed"),
         files={".env": f'WIFI_SSID={SSID}\nWIFI_PASSWORD="{PASSWORD}\n'}, creds=False, absent=("private/nvs.bin",)),
    Case("secrets-set-64-not-hex", ["secrets", "set", "--wifi-password", "z" * 64],
         ("Wi-Fi password from --wifi-password", "64 characters", "exactly 64 hex digits (the raw PSK)"),
         absent=("secrets.toml",)),
    Case("deps-from-dir-without-pin", ["deps", "--fetch", "--from", "usb"],
         ("cannot fetch libpeer", "usb/libpeer holds no git checkout", "drop --from"),
         files={"usb/README.md": "an empty stick\n"}, absent=("deps-cache/libpeer",)),
    # --- serial streams ------------------------------------------------------------------------------------
    Case("stream-silent", ["flash", "-b", "sonatino", "--port", "SILENT", "--no-credentials"],
         ("no ESP32 bootloader answered", "hold BOOT, tap RESET"), setup=_copy_build("sonatino")),
    Case("stream-noise", ["flash", "-b", "sonatino", "--port", "NOISE", "--no-credentials"],
         ("no ESP32 bootloader answered", "hold BOOT, tap RESET"), setup=_copy_build("sonatino")),
    Case("stream-elf-missing", ["monitor", "--port", "CLOSED", "--elf", "nope.elf"], ("--elf", "nope.elf", "cannot read")),
    # --- CLI values --------------------------------------------------------------------------------------------
    Case("cli-backend-choice", ["build", "--backend", "gcc"], ("'--backend'", "'gcc' is not one of"), code=2),
    Case("cli-baud-range", ["flash", "-b", "sonatino", "--baud", "12"], ("'--baud'", "9600<=x<=5000000"), code=2),
    Case("cli-unknown-option", ["ports", "--bogus"], ("No such option", "--bogus"), code=2),
    Case("cli-unknown-command", ["rendr"], ("no such command 'rendr'", "did you mean `render`"), code=2),
    Case("cli-filter", ["monitor", "--port", "CLOSED", "--filter", "wifi:Q"], ("--filter 'wifi:Q'", "TAG:LEVEL")),
    Case("cli-nvs-dir", ["nvs", "show", "."], ("'FILE'", "is a directory"), code=2),
    Case("cli-secrets-clear-choice", ["secrets", "clear", "wifi"], ("'wifi' is not one of",), code=2),
    Case("cli-render-out-file", ["render", "-b", "linux", "--out", "afile/sub"], ("cannot write", "afile"),
         files={"afile": "x"}),
]

PLACEHOLDERS = {"CLOSED": _closed_port, "SILENT": lambda: _server("silent"), "NOISE": lambda: _server("noise")}


@pytest.fixture(scope="module", autouse=True)
def built_boards(tmp_path_factory):
    """One real build of sonatino with the stand-in idf.py (testkit/fake_tools), copied into cases that flash."""
    import sys

    from testkit.shared import install_fake_idf

    root = tmp_path_factory.mktemp("bad-inputs-build")
    env = {**os.environ, **install_fake_idf(root / "tools"), "RTFLASH_NO_CCACHE": "1"}
    exe = Path(sys.executable).parent / "rtflash"
    done = subprocess.run([str(exe), "build", "--board", "sonatino"], cwd=root, env=env, capture_output=True, check=False,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    BUILT["sonatino"] = root
    yield


def test_the_corpus_is_big_and_wide():
    groups = {c.id.split("-")[0] for c in CASES}
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert groups >= {"board", "toml", "secrets", "nvs", "port", "image", "stream", "cli"}


def _snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _advised_options(line: str) -> set[str]:
    """`--options` the line advises for this command (those inside `rtflash OTHER ...` are checked statically)."""
    plain = re.sub(r"`rtflash [^`]*`", "", line)
    plain = re.sub(r"'--[a-z-]+'", "", plain)  # click quoting the option that was given
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", plain))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, invoke, project, monkeypatch, emulators):
    monkeypatch.setenv("RTFLASH_SECRETS_FILE", str(project / "secrets.toml"))
    monkeypatch.setenv("RTFLASH_DEPS_CACHE", str(project / "deps-cache"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no ESP-IDF, no pio on PATH: nothing slow starts
    if case.creds:
        for key, value in CREDS.items():
            monkeypatch.setenv(key, value)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    _lay_out(case, project)
    kept = {rel: (project / rel).read_bytes() for rel in case.keep}
    before = _snapshot(project)
    argv = [PLACEHOLDERS[a]() if a in PLACEHOLDERS else a for a in case.argv]
    emu = emulators(**case.device) if case.device is not None else None
    if emu is not None:
        argv = [emu.url if a == "EMU" else a for a in argv]
        flash_before = bytes(emu.chip.flash)

    result = invoke(*argv)

    out, err = result.stdout, result.stderr
    assert result.exit_code == case.code, f"exit {result.exit_code}\n{err}"
    assert "Traceback" not in out + err
    errors = [ln for ln in err.splitlines() if ln.startswith(("error:", "Error:"))]
    assert len(errors) == 1, f"want one error line, got:\n{err}"
    line = errors[0]
    for word in case.words:
        word = emu.url if word == "EMU" and emu else word
        assert word in line, f"{word!r} not in: {line}"
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == (1 if case.warns else 0), err
    for word in case.warns:
        assert word in warnings[0], f"{word!r} not in: {warnings[0]}"
    if case.code == 1:
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 + len(warnings), f"more than the one line:\n{err}"
    if emu is not None:
        assert bytes(emu.chip.flash) == flash_before, "a refused flash changed the device's flash"
        assert not {"FLASH_BEGIN", "FLASH_DEFL_BEGIN", "ERASE_FLASH", "ERASE_REGION"} & set(emu.chip.commands)
    if "--json" in argv:
        assert json.loads(out)["ok"] is False
    commands = [w for w in argv if not w.startswith("-")]
    allowed = options_of(*argv)
    assert _advised_options(line) <= allowed, f"advises an option `rtflash {' '.join(commands[:2])}` lacks: {line}"
    for canary in CANARIES:
        assert canary not in out + err
    for path in _snapshot(project) - before:  # every file the command left behind
        assert not path.name.endswith(".tmp"), f"half-written: {path}"
        if path.is_file():
            data = path.read_bytes()
            assert all(c.encode() not in data for c in CANARIES), f"secret in {path}"
    for rel in case.absent:
        assert not (project / rel).exists(), f"{rel} must not exist"
    for rel, data in kept.items():
        assert (project / rel).read_bytes() == data, f"{rel} changed"


def _lay_out(case, project: Path) -> None:
    """Write the case's files into the project and run its setup."""
    for rel, content in case.files.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    if case.setup:
        case.setup(project)


@pytest.mark.parametrize("case_id", ["board-octal-psram-pin", "toml-secret", "secrets-set-huge-key", "nvs-random",
                                     "image-missing-bin", "cli-backend-choice"])
def test_bad_input_with_the_installed_script(case_id, rtflash_exe, project):
    """The same contract end to end (real process, real exit code, real stderr)."""
    case = next(c for c in CASES if c.id == case_id)
    _lay_out(case, project)
    env = {**os.environ, **(CREDS if case.creds else {}), **case.env, "PATH": "/usr/bin:/bin",
           "RTFLASH_SECRETS_FILE": str(project / "secrets.toml")}
    done = subprocess.run([rtflash_exe, *case.argv], cwd=project, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == case.code and "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith(("error:", "Error:"))]
    assert len(errors) == 1 and all(w in errors[0] for w in case.words), done.stderr
    assert all(c not in done.stdout + done.stderr for c in CANARIES)


def test_deps_fetch_unreachable_advises_an_option_deps_has(tmp_path):
    """`rtflash deps --fetch` with the source unreachable (here a file:// URL that is not there, so no
    network is touched) advises `--from DIR`, which `rtflash deps` has (it once said --deps-dir)."""
    from rtflash import deps
    from rtflash.errors import ToolFailed

    dep = deps.GitDep("libpeer", f"file://{tmp_path}/gone.git", "0" * 40, ("linux",))
    with pytest.raises(ToolFailed) as err:
        deps.fetch(dep, tmp_path / "cache")
    line = str(err.value)
    assert "cannot fetch libpeer" in line and "`rtflash deps --fetch --from DIR` (DIR/libpeer)" in line
    assert "--from" in options_of("deps") and not (tmp_path / "cache" / "libpeer").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".libpeer-")], "temp clone left"
