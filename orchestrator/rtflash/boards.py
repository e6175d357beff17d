"""Board catalog: load `boards/*.toml` (and a user's own directory) into frozen, validated `Board`s.

Validation happens on load so that every later stage can trust a Board: each problem is one
`BoardError` line naming the file, the key and the fix. Soft problems (strapping pins, UART0) of a
user's board become `Board.warnings`, shown by the CLI; on a shipped board they are the vendor's
wiring, already checked against its schematic, so they are `Board.notes` (shown by `boards show`
only: a warning nobody can act on would repeat on every command).
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rtflash.errors import BoardError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CHIPS = ("esp32s3", "linux")
FLASH_SIZES = ("2MB", "4MB", "8MB", "16MB", "32MB")
PSRAM_MODES = ("none", "quad", "octal")
CONSOLES = ("usb-serial-jtag", "uart")
AUDIO_MODES = ("i2s", "codec", "none")
SAMPLE_RATES = (16000, 24000)
DACS = ("es8311", "none")
ADCS = ("es8311", "es7210", "none")

# ESP32-S3 datasheet, "Pin overview": GPIO0-21 and GPIO26-48 exist; 26-32 drive the SPI flash (and
# quad PSRAM); octal PSRAM also takes 33-37; 0, 3, 45, 46 are strapping pins; 19/20 are USB D-/D+;
# 43/44 are UART0 TX/RX.
S3_GPIOS = frozenset(range(0, 22)) | frozenset(range(26, 49))
FLASH_PINS = frozenset(range(26, 33))
OCTAL_PSRAM_PINS = frozenset(range(33, 38))
STRAPPING_PINS = frozenset({0, 3, 45, 46})
USB_PINS = frozenset({19, 20})
UART0_PINS = frozenset({43, 44})

_TOP_KEYS: dict[str, Any] = {
    "description": str, "url": str, "chip": CHIPS, "flash_size": FLASH_SIZES, "psram": PSRAM_MODES,
    "console": CONSOLES, "pio_board": str, "usb_vid_pid": list, "audio": dict, "min_chip_revision": str,
}
_HW_KEYS = ("flash_size", "psram", "console", "pio_board")
_AUDIO_KEYS: dict[str, Any] = {
    "mode": AUDIO_MODES, "sample_rate": SAMPLE_RATES, "amp_enable": int, "amp_enable_level": (0, 1),
    "speaker": dict, "mic": dict, "codec": dict,
}
_SPEAKER_KEYS: dict[str, Any] = {"port": (0, 1), "mclk": int, "bclk": int, "ws": int, "dout": int}
_MIC_KEYS: dict[str, Any] = {"port": (0, 1), "mclk": int, "bclk": int, "ws": int, "din": int,
                             "slot": ("left", "right")}
_CODEC_KEYS: dict[str, Any] = {"dac": DACS, "adc": ADCS, "i2c_port": (0, 1), "i2c_sda": int,
                               "i2c_scl": int, "dac_address": int, "adc_address": int}
_SHARED_CLOCKS = ("mclk", "bclk", "ws")


@dataclass(frozen=True)
class I2sPins:
    """One I2S direction. `data` is DOUT for the speaker, DIN for the mic; -1 means unused."""

    port: int
    bclk: int
    ws: int
    data: int
    mclk: int = -1
    slot: str = "left"


@dataclass(frozen=True)
class Codec:
    dac: str
    adc: str
    i2c_port: int
    i2c_sda: int
    i2c_scl: int
    dac_address: int
    adc_address: int


@dataclass(frozen=True)
class Audio:
    mode: str = "none"
    sample_rate: int = 16000
    amp_enable: int = -1
    amp_enable_level: int = 1
    speaker: I2sPins | None = None
    mic: I2sPins | None = None
    codec: Codec | None = None

    @property
    def duplex(self) -> bool:
        """Speaker and mic share one I2S controller (and its clocks)."""
        return bool(self.speaker and self.mic and self.speaker.port == self.mic.port)

    def summary(self) -> str:
        if self.mode == "none":
            return "none"
        if self.mode == "codec" and self.codec:
            parts = [p for p in (self.codec.dac, self.codec.adc) if p != "none"]
            return "codec " + "+".join(dict.fromkeys(p.upper() for p in parts))
        return f"I2S {self.sample_rate // 1000} kHz"


@dataclass(frozen=True)
class Board:
    name: str
    path: Path
    chip: str
    description: str = ""
    url: str = ""
    flash_size: str = ""
    psram: str = "none"
    console: str = ""
    pio_board: str = ""
    usb_vid_pid: tuple[str, ...] = ()
    min_chip_revision: int = 0  # major * 100 + minor, as esptool's get_chip_revision(); 0: any
    audio: Audio = field(default_factory=Audio)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def is_linux(self) -> bool:
        return self.chip == "linux"

    @property
    def idf_target(self) -> str:
        return self.chip

    @property
    def flash_bytes(self) -> int:
        return int(self.flash_size.removesuffix("MB")) * 1024 * 1024 if self.flash_size else 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["usb_vid_pid"] = list(self.usb_vid_pid)
        data["audio"]["summary"] = self.audio.summary()
        return data


class CatalogError(BoardError):
    """Several board files are broken: one line each (`lines`), so fixing one does not hide the next."""

    def __init__(self, errors: list[BoardError]):
        self.lines = tuple(str(e) for e in errors)
        super().__init__("; ".join(self.lines))


class Catalog:
    """Board files by name; later directories override earlier ones. Files are parsed on demand.

    `shipped` is the directory of the boards rtflash ships (their soft findings are notes)."""

    def __init__(self, dirs: list[Path], shipped: Path | None = None):
        self.files: dict[str, Path] = {}
        for directory in dirs:
            for path in sorted(directory.glob("*.toml")):
                self.files[path.stem] = path
        self.shipped = shipped
        self._loaded: dict[str, Board] = {}

    def names(self) -> list[str]:
        return sorted(self.files)

    def get(self, name: str) -> Board:
        if name not in self.files:
            known = ", ".join(self.names())
            near = difflib.get_close_matches(name, self.files, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise BoardError(f"unknown board '{name}'{hint}; known boards: {known}")
        if name not in self._loaded:
            path = self.files[name]
            self._loaded[name] = load_board(path, shipped=self.shipped is not None and path.parent == self.shipped)
        return self._loaded[name]

    def load_all(self) -> tuple[list[Board], list[BoardError]]:
        """Every board that loads, and every board file that does not (all of them, not the first)."""
        good, bad = [], []
        for name in self.names():
            try:
                good.append(self.get(name))
            except BoardError as exc:
                bad.append(exc)
        return good, bad

    def all(self) -> list[Board]:
        """Every board; CatalogError naming each broken file when any is broken."""
        good, bad = self.load_all()
        if len(bad) == 1:
            raise bad[0]
        if bad:
            raise CatalogError(bad)
        return good


def load_catalog(extra_dir: Path | str | None = None) -> Catalog:
    """The shipped boards plus, if given, a user's directory of board files (which wins on a clash)."""
    from rtflash.resources import boards_dir

    dirs = [boards_dir()]
    shipped = dirs[0]
    if extra_dir:
        extra = Path(extra_dir)
        if not extra.is_dir():
            raise BoardError(f"boards directory {extra} does not exist; create it or fix --boards-dir / boards_dir")
        dirs.append(extra)
    return Catalog(dirs, shipped=shipped)


def load_board(path: Path, shipped: bool = False) -> Board:
    """Parse and validate one board file; `shipped` turns its warnings into notes (see the module doc)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BoardError(f"{path}: cannot read board file: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"{path}: invalid TOML: {exc}; fix the syntax at that line") from None
    board = parse_board(path.stem, path, raw)
    if shipped and board.warnings:
        return Board(**{**board.__dict__, "warnings": (), "notes": board.warnings})
    return board


def parse_board(name: str, path: Path, raw: dict[str, Any]) -> Board:
    """Validate a parsed board table; raise BoardError on the first problem."""
    v = _Validator(path)
    v.keys(raw, _TOP_KEYS, "")
    chip = v.require(raw, "chip", "")
    if chip == "linux":
        for key in _HW_KEYS:
            if key in raw:
                v.fail(key, "does not apply to chip = \"linux\"; remove it")
    else:
        for key in _HW_KEYS:
            v.require(raw, key, "")
    usb = tuple(raw.get("usb_vid_pid", ()))
    for i, item in enumerate(usb):
        if not (isinstance(item, str) and len(item) == 9 and item[4] == ":"):
            v.fail(f"usb_vid_pid[{i}]", "must look like \"303a:1001\" (hex VID:PID)")
    revision = raw.get("min_chip_revision", "")
    match = re.fullmatch(r"v?(\d+)\.(\d+)", revision) if revision else None
    if revision and not match:
        v.fail("min_chip_revision", "must look like \"v0.2\" (major.minor, as esptool prints it)")
    board = Board(
        name=name, path=path, chip=chip, description=raw.get("description", ""), url=raw.get("url", ""),
        flash_size=raw.get("flash_size", ""), psram=raw.get("psram", "none"),
        console=raw.get("console", ""), pio_board=raw.get("pio_board", ""), usb_vid_pid=usb,
        min_chip_revision=int(match[1]) * 100 + int(match[2]) if match else 0,
        audio=_parse_audio(v, raw.get("audio", {}), chip),
    )
    _check_pins(v, board)
    return Board(**{**board.__dict__, "warnings": tuple(v.warnings)})


def _parse_audio(v: _Validator, raw: dict[str, Any], chip: str) -> Audio:
    v.keys(raw, _AUDIO_KEYS, "audio.")
    mode = raw.get("mode", "none")
    if chip == "linux" and mode != "none":
        v.fail("audio.mode", "must be \"none\" for chip = \"linux\" (the linux firmware uses WAV files)")
    parts = {"speaker": _SPEAKER_KEYS, "mic": _MIC_KEYS, "codec": _CODEC_KEYS}
    for part, schema in parts.items():
        if part in raw:
            v.keys(raw[part], schema, f"audio.{part}.")
    if mode == "none":
        for part in parts:
            if part in raw:
                v.fail(f"audio.{part}", "is set but audio.mode is \"none\"; set mode or remove the table")
        return Audio(mode="none", sample_rate=raw.get("sample_rate", 16000))
    for part in ("speaker", "mic"):
        if part not in raw:
            v.fail(f"audio.{part}", f"is required when audio.mode = \"{mode}\"; add a [audio.{part}] table")
    if mode == "codec" and "codec" not in raw:
        v.fail("audio.codec", "is required when audio.mode = \"codec\"; add a [audio.codec] table")
    if mode == "i2s" and "codec" in raw:
        v.fail("audio.codec", "only applies to audio.mode = \"codec\"; remove it or change the mode")
    spk, mic = raw["speaker"], raw["mic"]
    for key in ("port", "bclk", "ws", "dout"):
        v.require(spk, key, "audio.speaker.")
    for key in ("port", "bclk", "ws", "din"):
        v.require(mic, key, "audio.mic.")
    speaker = I2sPins(spk["port"], spk["bclk"], spk["ws"], spk["dout"], spk.get("mclk", -1))
    microphone = I2sPins(mic["port"], mic["bclk"], mic["ws"], mic["din"], mic.get("mclk", -1),
                         mic.get("slot", "left"))
    codec = None
    if mode == "codec":
        c = raw["codec"]
        for key in _CODEC_KEYS:
            v.require(c, key, "audio.codec.")
        if c["dac"] == "none" and c["adc"] == "none":
            v.fail("audio.codec", "has neither dac nor adc; use audio.mode = \"i2s\" for plain I2S parts")
        for key in ("dac_address", "adc_address"):
            if not 0x08 <= c[key] <= 0x77:
                v.fail(f"audio.codec.{key}", f"{c[key]:#x} is not a 7-bit I2C address (0x08-0x77)")
        codec = Codec(**{k: c[k] for k in _CODEC_KEYS})
    return Audio(mode=mode, sample_rate=raw.get("sample_rate", 16000), amp_enable=raw.get("amp_enable", -1),
                 amp_enable_level=raw.get("amp_enable_level", 1), speaker=speaker, mic=microphone, codec=codec)


def board_pins(board: Board) -> list[tuple[str, int]]:
    """Every (key, gpio) the board's audio uses, -1 (unused) left out."""
    a = board.audio
    pins: list[tuple[str, int]] = []
    if a.speaker:
        pins += [("audio.speaker.mclk", a.speaker.mclk), ("audio.speaker.bclk", a.speaker.bclk),
                 ("audio.speaker.ws", a.speaker.ws), ("audio.speaker.dout", a.speaker.data)]
    if a.mic:
        pins += [("audio.mic.mclk", a.mic.mclk), ("audio.mic.bclk", a.mic.bclk),
                 ("audio.mic.ws", a.mic.ws), ("audio.mic.din", a.mic.data)]
    if a.codec:
        pins += [("audio.codec.i2c_sda", a.codec.i2c_sda), ("audio.codec.i2c_scl", a.codec.i2c_scl)]
    pins.append(("audio.amp_enable", a.amp_enable))
    return [(k, p) for k, p in pins if p != -1]


def _check_pins(v: _Validator, board: Board) -> None:
    a = board.audio
    if a.duplex:
        for clk in _SHARED_CLOCKS:
            s, m = getattr(a.speaker, clk), getattr(a.mic, clk)
            if m != -1 and s != m:
                v.fail(f"audio.mic.{clk}", f"is GPIO{m} but the speaker on the same I2S port {a.mic.port} "
                       f"uses GPIO{s}; one port has one clock: use the same pin or another port")
    seen: dict[int, str] = {}
    for key, pin in board_pins(board):
        if pin < 0 or pin not in S3_GPIOS:
            v.fail(key, f"GPIO{pin} does not exist on the ESP32-S3 (valid: 0-21, 26-48)")
        if pin in FLASH_PINS:
            v.fail(key, f"GPIO{pin} is wired to the SPI flash (GPIO26-32); pick another pin")
        if board.psram == "octal" and pin in OCTAL_PSRAM_PINS:
            v.fail(key, f"GPIO{pin} is taken by octal PSRAM (GPIO33-37); pick another pin or set psram")
        if board.console == "usb-serial-jtag" and pin in USB_PINS:
            v.fail(key, f"GPIO{pin} is a USB data line and console = \"usb-serial-jtag\"; pick another pin")
        if pin in seen:
            shared_clock = (a.duplex and key.rsplit(".", 1)[1] in _SHARED_CLOCKS
                            and seen[pin].rsplit(".", 1)[1] == key.rsplit(".", 1)[1])
            if not shared_clock:
                v.fail(key, f"GPIO{pin} is already used by {seen[pin]}; each pin can have one job")
            continue
        seen[pin] = key
        if pin in STRAPPING_PINS:
            v.warn(key, f"GPIO{pin} is a strapping pin; make sure the circuit leaves boot mode alone")
        if board.console == "uart" and pin in UART0_PINS:
            v.warn(key, f"GPIO{pin} is UART0 (the console); console output may disturb it")


class _Validator:
    """Collects warnings and raises the first error with the file and key named."""

    def __init__(self, path: Path):
        self.path = path
        self.warnings: list[str] = []

    def fail(self, key: str, message: str) -> None:
        raise BoardError(f"{self.path}: {key}: {message}")

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.path.name}: {key}: {message}")

    def require(self, table: dict[str, Any], key: str, prefix: str) -> Any:
        if key not in table:
            self.fail(prefix + key, "is required; add it")
        return table[key]

    def keys(self, table: Any, schema: dict[str, Any], prefix: str) -> None:
        if not isinstance(table, dict):
            self.fail(prefix.rstrip(".") or "(top)", "must be a table")
        for key, value in table.items():
            if key not in schema:
                near = difflib.get_close_matches(key, schema, n=1)
                hint = f"did you mean '{prefix}{near[0]}'?" if near else f"allowed: {', '.join(schema)}"
                self.fail(prefix + key, f"unknown key; {hint}")
            self._type(prefix + key, value, schema[key])

    def _type(self, key: str, value: Any, expected: Any) -> None:
        if isinstance(expected, tuple):
            if value not in expected or isinstance(value, bool):
                options = ", ".join(repr(o).replace("'", '"') for o in expected)
                self.fail(key, f"{value!r} is not allowed; use one of {options}")
        elif expected is int:
            if not isinstance(value, int) or isinstance(value, bool):
                self.fail(key, f"must be a whole number (a GPIO or address), not {type(value).__name__}")
        elif not isinstance(value, expected):
            kind = {dict: "table", list: "list", str: "string"}.get(expected, expected.__name__)
            self.fail(key, f"must be a {kind}, not {type(value).__name__}")
