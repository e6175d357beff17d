"""An emulated ESP32-S3 serial (ROM) bootloader that a real esptool talks to, for tests and benches.

It speaks the documented serial protocol (SLIP frames; `<BBHI` request/response headers; the
command set in esptool's `ESPLoader.ESP_CMDS`): SYNC, READ_REG/WRITE_REG (the ESP32-S3 eFuse
controller that espefuse reads and burns, in esp_efuse.py: MAC, revision, key blocks, purposes,
protection; and the SPI peripheral's user-command sequence that esptool uses to read the flash ID),
GET_SECURITY_INFO (chip id), SPI_ATTACH, SPI_SET_PARAMS, FLASH_BEGIN/DATA/END,
FLASH_DEFL_BEGIN/DATA/END, SPI_FLASH_MD5, MEM_BEGIN/DATA/END (after which it acts as the flasher
stub and greets with `OHAI`), READ_FLASH, ERASE_FLASH, ERASE_REGION and CHANGE_BAUDRATE. Status is
4 bytes in ROM mode and 2 in stub mode, as on the chip. The flash is a bytearray that tests compare
with what they wrote.

Endpoints: `SocketEmulator` (pyserial `socket://127.0.0.1:PORT`; each new connection is a chip
reset into the ROM, flash kept) and `PtyEmulator` (a pty slave path, for read-heavy tests:
pyserial's socket transport reads one byte per call for large reads).

Run it by hand: `python testkit/esp_rom_emulator.py [--chip esp32s3] [--flash 8MB] [--baud N]`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field

try:
    from testkit.esp_efuse import Efuses
except ImportError:  # run as a script: python testkit/esp_rom_emulator.py
    from esp_efuse import Efuses

SECTOR = 0x1000


@dataclass(frozen=True)
class ChipDef:
    """What tells chips apart on the wire: the security-info chip id and a few register addresses."""

    name: str
    chip_id: int
    efuse_base: int
    spi_base: int

    @property
    def mac_reg(self) -> int:
        return self.efuse_base + 0x44


CHIPS = {
    "esp32s3": ChipDef("esp32s3", 9, 0x60007000, 0x60002000),
    "esp32c3": ChipDef("esp32c3", 5, 0x60008800, 0x60002000),
    "esp32c6": ChipDef("esp32c6", 13, 0x600B0800, 0x60003000),
}
FLASH_ID_CAPACITY = {2: 0x15, 4: 0x16, 8: 0x17, 16: 0x18, 32: 0x19}

OPS = {
    "FLASH_BEGIN": 0x02, "FLASH_DATA": 0x03, "FLASH_END": 0x04, "MEM_BEGIN": 0x05, "MEM_END": 0x06,
    "MEM_DATA": 0x07, "SYNC": 0x08, "WRITE_REG": 0x09, "READ_REG": 0x0A, "SPI_SET_PARAMS": 0x0B,
    "SPI_ATTACH": 0x0D, "CHANGE_BAUDRATE": 0x0F, "FLASH_DEFL_BEGIN": 0x10, "FLASH_DEFL_DATA": 0x11,
    "FLASH_DEFL_END": 0x12, "SPI_FLASH_MD5": 0x13, "GET_SECURITY_INFO": 0x14, "ERASE_FLASH": 0xD0,
    "ERASE_REGION": 0xD1, "READ_FLASH": 0xD2, "RUN_USER_CODE": 0xD3,
}
STUB_ONLY = {OPS["ERASE_FLASH"], OPS["ERASE_REGION"], OPS["READ_FLASH"], OPS["RUN_USER_CODE"]}
SPI_CMD_USR = 1 << 18
RTC_CNTL_OPTION1_REG = 0x6000812C  # esptool clears FORCE_DOWNLOAD_BOOT here right before a hard reset
APP_BOOT_SECONDS = 0.3  # reset to first log line on a real ESP32-S3 is about this long
APP_LOG = (
    b"ESP-ROM:esp32s3-20210327\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n"
    b"\x1b[0;32mI (25) boot: ESP-IDF v5.5.1 2nd stage bootloader\x1b[0m\r\n"
    b"\x1b[0;32mI (312) rtflash: firmware 0.1.0 board sonatino\x1b[0m\r\n"
    b"\x1b[0;32mI (1520) wifi_sta: connected to CanaryNet\x1b[0m\r\n"
    b"\x1b[0;32mI (2210) wifi_sta: got ip: 192.168.1.23\x1b[0m\r\n"
    b"\x1b[0;32mI (3105) rt_session: peer state: CONNECTED\x1b[0m\r\n"
    b"\x1b[0;32mI (3190) rt_session: datachannel open: oai-events\x1b[0m\r\n"
    b"\x1b[0;32mI (3402) rt_session: event: session.created\x1b[0m\r\n"
)
INVALID_COMMAND, BAD_CHECKSUM, BAD_DATA_LEN = 0x05, 0x07, 0x0C


class LinkDropped(Exception):
    """The emulator was told to cut the link here (a cable pulled mid-write)."""


def slip_encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class SlipDecoder:
    """Turns a byte stream into SLIP frames (bytes outside frames are ignored, as the ROM does)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self._escape = False

    def feed(self, data: bytes) -> list[bytes]:
        frames = []
        for b in data:
            if b == 0xC0:
                if self._in_frame and self._buf:
                    frames.append(bytes(self._buf))
                    self._buf.clear()
                self._in_frame = True
                self._escape = False
            elif not self._in_frame:
                continue
            elif self._escape:
                self._buf.append({0xDC: 0xC0, 0xDD: 0xDB}.get(b, b))
                self._escape = False
            elif b == 0xDB:
                self._escape = True
            else:
                self._buf.append(b)
        return frames


@dataclass
class Chip:
    """The emulated device's lasting state: flash, eFuses and counters tests look at."""

    chip: str = "esp32s3"
    flash_mb: int = 8
    mac: bytes = bytes.fromhex("7cdfa1e0c0de")
    minor_revision: int = 2
    flash: bytearray = field(default_factory=bytearray)
    bytes_in: int = 0
    bytes_out: int = 0
    blocks: int = 0
    data_bytes: int = 0  # payload bytes of FLASH_DATA / FLASH_DEFL_DATA blocks (what a write really costs)
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    app_log: bytes = APP_LOG  # what the "application" prints after a hard reset
    app_started: int = 0
    drop_at_block: int | None = None
    efuse: Efuses | None = None  # ESP32-S3: the eFuse controller espefuse reads and burns (esp_efuse.py)

    def __post_init__(self) -> None:
        if not self.flash:
            self.flash = bytearray(b"\xff" * (self.flash_mb * 1024 * 1024))
        if self.efuse is None and self.chip == "esp32s3":
            self.efuse = Efuses()
            mac = self.mac
            self.efuse.blocks[1][0] = int.from_bytes(mac[2:], "big")
            self.efuse.blocks[1][1] = int.from_bytes(mac[:2], "big")
            self.efuse.blocks[1][3] = (self.minor_revision & 0x7) << 18   # WAFER_VERSION_MINOR_LO
            self.efuse.blocks[2][4] = 1                                    # BLK_VERSION_MAJOR = 1

    @property
    def chipdef(self) -> ChipDef:
        return CHIPS[self.chip]

    def erase(self, offset: int, size: int) -> None:
        start = offset - offset % SECTOR
        end = min(len(self.flash), -(-(offset + size) // SECTOR) * SECTOR)
        self.flash[start:end] = b"\xff" * (end - start)

    def registers(self) -> dict[int, int]:
        """Registers as the ROM shows them after reset: MAC and revision eFuses, SPI idle."""
        d = self.chipdef
        mac = self.mac
        block1 = d.efuse_base + 0x44
        return {
            d.mac_reg: int.from_bytes(mac[2:], "big"),
            d.mac_reg + 4: int.from_bytes(mac[:2], "big"),
            block1 + 12: (self.minor_revision & 0x7) << 18,  # WAFER_VERSION_MINOR_LO
            d.efuse_base + 0x5C + 16: 1,                     # BLK_VERSION_MAJOR = 1
        }


class Session:
    """One connection's protocol state machine (ROM until the stub is loaded; then the stub)."""

    def __init__(self, chip: Chip, send, *, baud: int | None = None, on_app_start=None) -> None:
        self.chip = chip
        self.on_app_start = on_app_start
        self.send_raw = send
        self.regs = chip.registers()
        self.stub = False
        self.baud = baud  # simulated wire speed (None: as fast as the host goes)
        self.write_at = 0
        self.block_size = 0x400
        self.inflate = None
        self.pending_read: tuple[int, int, int] | None = None
        self.acks: list[int] = []

    # -- wire ---------------------------------------------------------------------------
    def pace(self, nbytes: int) -> None:
        if self.baud:
            time.sleep(nbytes * 10 / self.baud)

    def send(self, packet: bytes) -> None:
        frame = slip_encode(packet)
        self.pace(len(frame))
        self.chip.bytes_out += len(frame)
        self.send_raw(frame)

    def reply(self, op: int, val: int = 0, data: bytes = b"", status: int = 0, error: int = 0) -> None:
        tail = bytes([status, error]) + (b"" if self.stub else b"\x00\x00")
        body = data + tail
        self.send(struct.pack("<BBHI", 1, op, len(body), val) + body)

    # -- dispatch -----------------------------------------------------------------------
    def handle(self, frame: bytes) -> None:
        if self.pending_read is not None:  # READ_FLASH acks are bare 4-byte frames
            self.read_flash_ack(frame)
            return
        if len(frame) < 8 or frame[0] != 0:
            return
        _, op, size, chk = struct.unpack("<BBHI", frame[:8])
        data = frame[8:8 + size]
        name = next((k for k, v in OPS.items() if v == op), f"0x{op:02x}")
        self.chip.commands.append(name)
        handler = getattr(self, f"op_{name.lower()}", None)
        if handler is None or (op in STUB_ONLY and not self.stub):
            self.reply(op, status=1, error=INVALID_COMMAND)
            return
        handler(op, data, chk)

    def op_sync(self, op, data, chk):
        if data != b"\x07\x07\x12\x20" + 32 * b"\x55":
            return
        val = 0 if self.stub else 0x20120707
        for _ in range(8):  # the ROM answers a SYNC eight times
            self.reply(op, val)

    def op_read_reg(self, op, data, chk):
        (addr,) = struct.unpack("<I", data[:4])
        efuse = self.chip.efuse
        self.reply(op, efuse.read(addr) if efuse and efuse.owns(addr) else self.regs.get(addr, 0))

    def op_write_reg(self, op, data, chk):
        efuse = self.chip.efuse
        for i in range(0, len(data) - 15, 16):
            addr, value, mask, _delay = struct.unpack("<IIII", data[i:i + 16])
            if efuse and efuse.owns(addr):
                efuse.write(addr, (efuse.regs.get(addr, 0) & ~mask) | (value & mask))
                continue
            self.regs[addr] = (self.regs.get(addr, 0) & ~mask) | (value & mask)
            if addr == self.chip.chipdef.spi_base and value & SPI_CMD_USR:
                self.spi_user_command()
        self.reply(op)
        if self.chip.chip == "esp32s3" and struct.unpack("<I", data[:4])[0] == RTC_CNTL_OPTION1_REG:
            self.chip.app_started += 1  # esptool's hard reset: the flashed app boots and logs
            if self.on_app_start:
                self.on_app_start()

    def spi_user_command(self) -> None:
        """Run the SPI user command esptool set up (RDID answers the JEDEC id; others read 0)."""
        base = self.chip.chipdef.spi_base
        command = self.regs.get(base + 0x20, 0) & 0xFF
        result = 0
        if command == 0x9F:  # RDID: manufacturer, memory type, capacity
            result = 0xC8 | (0x40 << 8) | (FLASH_ID_CAPACITY[self.chip.flash_mb] << 16)
        self.regs[base + 0x58] = result
        self.regs[base] = 0  # command done

    def op_get_security_info(self, op, data, chk):
        info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.chipdef.chip_id, 0)
        self.reply(op, data=info)

    def op_spi_attach(self, op, data, chk):
        self.reply(op)

    def op_spi_set_params(self, op, data, chk):
        self.reply(op)

    def op_change_baudrate(self, op, data, chk):
        new, _old = struct.unpack("<II", data[:8])
        self.reply(op)
        if self.baud:
            self.baud = new

    def op_mem_begin(self, op, data, chk):
        self.reply(op)

    def op_mem_data(self, op, data, chk):
        size = struct.unpack("<I", data[:4])[0]
        payload = data[16:16 + size]
        ok = checksum(payload) == chk
        self.reply(op, status=0 if ok else 1, error=0 if ok else BAD_CHECKSUM)

    def op_mem_end(self, op, data, chk):
        _no_entry, entry = struct.unpack("<II", data[:8])
        self.reply(op)
        if entry:  # the flasher stub starts and says hello
            self.stub = True
            self.send(b"OHAI")

    def op_flash_begin(self, op, data, chk):
        erase_size, _blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        self.chip.erase(offset, erase_size)
        self.write_at, self.block_size, self.inflate = offset, block_size, None
        self.reply(op)

    def op_flash_defl_begin(self, op, data, chk):
        size, _blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        self.chip.erase(offset, size)
        self.write_at, self.block_size, self.inflate = offset, block_size, zlib.decompressobj()
        self.reply(op)

    def _write_block(self, op, data, chk, inflate: bool) -> None:
        size, _seq = struct.unpack("<II", data[:8])
        payload = data[16:16 + size]
        if len(payload) != size:
            self.reply(op, status=1, error=BAD_DATA_LEN)
            return
        if checksum(payload) != chk:
            self.reply(op, status=1, error=BAD_CHECKSUM)
            return
        self.chip.blocks += 1
        self.chip.data_bytes += size
        if self.chip.drop_at_block is not None and self.chip.blocks >= self.chip.drop_at_block:
            self.chip.drop_at_block = None  # once: the cable is back for the next connection
            raise LinkDropped
        out = self.inflate.decompress(payload) if inflate else payload
        end = self.write_at + len(out)
        old = int.from_bytes(self.chip.flash[self.write_at:end], "little")
        self.chip.flash[self.write_at:end] = (old & int.from_bytes(out, "little")).to_bytes(len(out), "little")
        self.write_at = end
        self.reply(op)

    def op_flash_data(self, op, data, chk):
        self._write_block(op, data, chk, inflate=False)

    def op_flash_defl_data(self, op, data, chk):
        self._write_block(op, data, chk, inflate=True)

    def op_flash_end(self, op, data, chk):
        self.reply(op)

    def op_flash_defl_end(self, op, data, chk):
        self.reply(op)

    def op_spi_flash_md5(self, op, data, chk):
        addr, size = struct.unpack("<II", data[:8])
        digest = hashlib.md5(self.chip.flash[addr:addr + size])
        self.reply(op, data=digest.digest() if self.stub else digest.hexdigest().encode())

    def op_erase_flash(self, op, data, chk):
        self.chip.erase(0, len(self.chip.flash))
        self.reply(op)

    def op_erase_region(self, op, data, chk):
        offset, size = struct.unpack("<II", data[:8])
        if offset % SECTOR or size % SECTOR:
            self.reply(op, status=1, error=0x32)
            return
        self.chip.erase(offset, size)
        self.reply(op)

    def op_run_user_code(self, op, data, chk):
        pass  # the chip leaves the loader: no reply

    def op_read_flash(self, op, data, chk):
        offset, length, block, _in_flight = struct.unpack("<IIII", data[:16])
        self.reply(op)
        self.pending_read = (offset, length, block)
        self.acks = []
        self._send_read_block(0)

    def _send_read_block(self, sent: int) -> None:
        offset, length, block = self.pending_read
        if sent >= length:
            self.send(hashlib.md5(self.chip.flash[offset:offset + length]).digest())
            self.pending_read = None
            return
        self.send(bytes(self.chip.flash[offset + sent:offset + min(length, sent + block)]))

    def read_flash_ack(self, frame: bytes) -> None:
        (got,) = struct.unpack("<I", frame[:4])
        self._send_read_block(got)


def build_images(seed: int = 1, app_kb: int = 900) -> list[tuple[str, int, bytes]]:
    """(name, offset, bytes) shaped like an ESP-IDF build: code-like (compressible, not trivially)
    bootloader, partition table and app, so compressed transfers cost what they would for real."""
    import random

    rng = random.Random(seed)
    words = [rng.randbytes(4) for _ in range(512)]

    def blob(n: int) -> bytes:
        return b"".join(rng.choice(words) for _ in range(n // 4))

    return [("bootloader", 0x0, b"\xe9" + blob(20 * 1024)[1:]),
            ("partition-table", 0x8000, blob(0xC00)),
            ("app", 0x20000, b"\xe9" + blob(app_kb * 1024)[1:])]


def checksum(data: bytes, state: int = 0xEF) -> int:
    for b in data:
        state ^= b
    return state


class _Endpoint:
    """Common thread plumbing: serve sessions until closed."""

    def __init__(self, device: Chip | None = None, *, drop_after_blocks: int | None = None,
                 baud: int | None = None, **chip_kw) -> None:
        self.chip = device or Chip(**chip_kw)
        self.chip.drop_at_block = drop_after_blocks
        self.baud = baud
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="esp-rom-emulator")

    def start(self):
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def new_session(self, send, on_app_start=None) -> Session:
        self.chip.connections += 1
        return Session(self.chip, send, baud=self.baud, on_app_start=on_app_start)

    def pump(self, session: Session, decoder: SlipDecoder, data: bytes) -> None:
        session.pace(len(data))
        self.chip.bytes_in += len(data)
        for frame in decoder.feed(data):
            session.handle(frame)


class SocketEmulator(_Endpoint):
    """The emulated chip behind `socket://127.0.0.1:PORT`; a new connection is a chip reset."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    _app_pending = False

    def _app_started(self) -> None:
        self._app_pending = True

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._serve_conn(conn)

    def _serve_conn(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(0.1)
        if self._app_pending:  # the app boots (as long as a real one takes) and the next reader sees its log
            self._app_pending = False
            time.sleep(APP_BOOT_SECONDS)
            conn.sendall(self.chip.app_log)
        session, decoder = self.new_session(conn.sendall, self._app_started), SlipDecoder()
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                self.pump(session, decoder, data)
        except (LinkDropped, OSError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


class PtyEmulator(_Endpoint):
    """The emulated chip behind a pty; `url` is the slave path any serial program can open."""

    def __init__(self, *args, **kw) -> None:
        import tty

        super().__init__(*args, **kw)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.url = os.ttyname(self.slave)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def _write_quietly(self, data: bytes) -> None:
        try:
            self._write(data)
        except OSError:
            pass  # closed meanwhile

    def _serve(self) -> None:
        import select

        def start_app() -> None:  # the app boots a moment after the reset; the pty keeps what it prints
            threading.Timer(APP_BOOT_SECONDS, self._write_quietly, (self.chip.app_log,)).start()

        session, decoder = self.new_session(self._write, start_app), SlipDecoder()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            try:
                self.pump(session, decoder, data)
            except LinkDropped:
                session, decoder = self.new_session(self._write, start_app), SlipDecoder()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chip", default="esp32s3", choices=sorted(CHIPS))
    ap.add_argument("--flash", default="8MB", help="flash size: 2MB 4MB 8MB 16MB 32MB")
    ap.add_argument("--baud", type=int, default=None, help="simulate this wire speed")
    ap.add_argument("--pty", action="store_true", help="serve on a pty instead of a TCP socket")
    args = ap.parse_args()
    kind = PtyEmulator if args.pty else SocketEmulator
    with kind(chip=args.chip, flash_mb=int(args.flash.removesuffix("MB")), baud=args.baud) as emu:
        print(emu.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
