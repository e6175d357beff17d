"""Panic decoding: addresses in `Backtrace:` lines and register dumps -> function and file:line.

Espressif's esp-idf-panic-decoder does the work: `PcAddressMatcher` keeps only addresses inside the
ELF's executable sections (so stack pointers and data are never looked up) and
`PcAddressDecoder.parse_addr2line_output` reads `addr2line -fiaC`, inlined frames included. We only
swap how addr2line is started, so it goes through `rtflash.proc` like every other program.
Problems (no toolchain, no ELF, an ELF that is not the running firmware) are said once, not per line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from esp_idf_panic_decoder import PcAddressDecoder

from rtflash import proc
from rtflash.errors import ConfigError, RtflashError
from rtflash.monitor.parser import LogLine

TOOLCHAIN_PREFIX = {"esp32s3": "xtensa-esp32s3-elf-", "esp32": "xtensa-esp32-elf-", "linux": ""}
ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{8}")
ECHOED_ADDRESS_RE = re.compile(r"0x0{0,8}([0-9a-fA-F]{8})")
SHA_RE = re.compile(r"ELF file SHA256:\s+([0-9a-fA-F]{8,64})")
PANIC_START = ("Guru Meditation Error", "register dump:", "abort() was called", "***ERROR***",
               "Stack smashing protect failure", "assert failed:")
PANIC_END = ("ELF file SHA256", "Rebooting...", "CPU halted.")
DECODE_ALWAYS = ("Backtrace:", "Saved PC:")  # decoded even outside a panic block (ROM prints Saved PC at boot)


def toolchain_prefix(chip: str) -> str:
    """The cross toolchain's program prefix; the linux board uses the host's binutils."""
    return TOOLCHAIN_PREFIX.get(chip, "riscv32-esp-elf-")


def find_elf(build_dir: Path) -> Path | None:
    """The app ELF of the last build in build/<board>: ESP-IDF's or PlatformIO's, the newer if both."""
    from rtflash.artifacts import find_elf as idf_elf

    found = [idf_elf(build_dir), build_dir / "pio" / build_dir.name / "firmware.elf"]
    existing = [p for p in found if p is not None and p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def check_elf(path: Path) -> Path:
    """An --elf given by the user must be an ELF file: one clear error otherwise."""
    try:
        with Path(path).open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ConfigError(f"--elf {path}: cannot read ({exc.strerror}); pass the app ELF of your build") from None
    if magic != b"\x7fELF":
        raise ConfigError(f"--elf {path} is not an ELF file; pass build/<board>/<app>.elf (not the .bin)")
    return Path(path)


class ProcAddressDecoder(PcAddressDecoder):
    """esp-idf-panic-decoder's decoder, with addr2line run through rtflash.proc."""

    def perform_addr2line(self, addresses: list[str], elf_file: str, is_rom: bool = False) -> dict:
        argv = [f"{self.toolchain_prefix}addr2line", "-fiaC", "-e", elf_file, *addresses]
        try:
            result = proc.run(argv, check=False, timeout=30)
        except RtflashError:
            return {}
        if result.returncode != 0:
            return {}
        name = Path(argv[0]).name
        lines = [_address_form(ln) for ln in result.output.splitlines() if not ln.startswith(f"{name}:")]
        return PcAddressDecoder.parse_addr2line_output("\n".join(lines) + "\n", is_rom=is_rom)


@dataclass
class PanicDecoder:
    """Turns panic output into extra `decoded` lines; `notices` collects the said-once messages."""

    elf: Path | None
    prefix: str
    elf_hint: str = "build first (rtflash build) or pass --elf FILE"
    notices: list[str] = field(default_factory=list)
    in_panic: bool = False
    _decoder: ProcAddressDecoder | None = None
    _ready: bool | None = None
    _sha: str | None = None
    _sha_said: bool = False

    def feed(self, line: LogLine) -> list[LogLine]:
        """Lines to show under `line`: decoded frames (and, once, why decoding is off)."""
        text = line.text
        if "SHA256" in text:
            self._check_sha(text)
        if line.level:  # an ESP-IDF log line: the app runs again, any panic block is over
            self.in_panic = False
            return []
        if any(s in text for s in PANIC_START):
            if not self.in_panic:
                self._usable()  # a reason not to decode is said before the block, not in the middle of it
            self.in_panic = True
        elif any(s in text for s in PANIC_END):
            if self.in_panic:
                line.kind = "panic"
            self.in_panic = False
            return []
        if not (self.in_panic or any(s in text for s in DECODE_ALWAYS)):
            return []
        line.kind = "panic"
        return self._decode(text, line.host_time) if "0x" in text else []

    def _decode(self, text: str, host_time: float) -> list[LogLine]:
        if not ADDRESS_RE.search(text) or not self._usable():
            return []
        out = []
        for address, trace in self._decoder.translate_addresses(text):
            first, *inlined = trace
            out.append(LogLine(f"  {address}: {_where(first)}", host_time, kind="decoded"))
            out += [LogLine(f"      (inlined by) {_where(t)}", host_time, kind="decoded") for t in inlined]
        return out

    def _usable(self) -> bool:
        """Check the toolchain and ELF once; on failure say why once."""
        if self._ready is None:
            self._ready = False
            program = f"{self.prefix}addr2line"
            if self.elf is None or not Path(self.elf).is_file():
                self.notices.append(f"no ELF to decode backtraces with: {self.elf_hint}")
                return False
            try:
                proc.require(program, hint=_toolchain_hint(self.prefix))
            except RtflashError as exc:
                self.notices.append(f"{exc}; backtraces are shown undecoded")
                return False
            self._decoder = ProcAddressDecoder(self.prefix, str(self.elf))
            self._ready = True
        return self._ready

    def _check_sha(self, text: str) -> None:
        """ESP-IDF prints the running app's ELF SHA256 prefix at boot and after a panic: compare once."""
        m = SHA_RE.search(text)
        if not m or self._sha_said or self.elf is None or not Path(self.elf).is_file():
            return
        if self._sha is None:
            self._sha = hashlib.sha256(Path(self.elf).read_bytes()).hexdigest()
        if not self._sha.startswith(m[1].lower()):
            self._sha_said = True
            self.notices.append(f"the device runs a different firmware than {self.elf} (ELF SHA256 {m[1]} vs "
                                f"{self._sha[:len(m[1])]}): decoded backtraces may be wrong; flash this build "
                                "or pass the matching --elf")


def _address_form(line: str) -> str:
    """A 64-bit host addr2line echoes 0x0000000042001139; the decoder keys on the 8-digit form it asked for."""
    m = ECHOED_ADDRESS_RE.fullmatch(line.strip())
    return f"0x{int(m[1], 16):08x}" if m else line


def _where(loc) -> str:
    if loc.path == "ROM":
        return f"{loc.func} in ROM"
    return f"{loc.func} at {loc.path}" + (f":{loc.line}" if loc.line and loc.line != "?" else "")


def _toolchain_hint(prefix: str) -> str:
    if not prefix:
        return "apt-get install binutils"
    return "install the ESP-IDF toolchain ($IDF_PATH/install.sh esp32s3) and run `. $IDF_PATH/export.sh`"
