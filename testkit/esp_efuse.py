"""The ESP32-S3 eFuse controller as the ROM loader emulator shows it to espefuse (over READ_REG/WRITE_REG).

What a real chip does (ESP32-S3 TRM, eFuse Controller chapter; addresses as espefuse's
efuse/esp32s3/mem_definition.py names them): programming data goes into EFUSE_PGM_DATA0..7 (+0x000)
and, for BLOCK1..10, their Reed-Solomon check bytes into EFUSE_PGM_CHECK_VALUE0..2 (+0x020); with
EFUSE_CONF = 0x5A5A, EFUSE_CMD = PGM | block << 2 burns them; EFUSE_CONF = 0x5AA5, EFUSE_CMD = READ
reloads the read registers (BLOCK0 at +0x02C, BLOCK1 at +0x044, BLOCK2..10 every 0x20 from +0x05C).

Burn semantics kept here: bits only go 0 -> 1 (a burn ORs into what is there); a block whose WR_DIS
bit is set (BLOCK1..10: bits 20..29; BLOCK0 fields: the WR_DIS bit each field names, e.g. 8 + n for
KEY_PURPOSE_n) is not changed by a burn; a key block whose RD_DIS bit (BLOCK4..10: bits 0..6) is set
reads as zeros; a BLOCK1..10 burn whose check bytes do not match its data sets that block's
EFUSE_RD_RS_ERR fail bit, as the chip reports an uncorrectable block. The block-0 field table
(which WR_DIS bit guards which bits) is read from espefuse's own eFuse definitions (esp32s3.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

BASE = 0x60007000
PGM_DATA, PGM_CHECK = BASE, BASE + 0x020
RS_ERR0, RS_ERR1 = BASE + 0x1C0, BASE + 0x1C4
CONF, CMD = BASE + 0x1CC, BASE + 0x1D4
WRITE_OP, READ_OP = 0x5A5A, 0x5AA5
CMD_READ, CMD_PGM = 0x1, 0x2
WORDS = {0: 6, 1: 6}          # BLOCK0 and BLOCK1 (MAC_SPI_8M_0) have 6 words; the others 8
KEY_BLOCKS = range(4, 11)     # BLOCK_KEY0..5 and BLOCK_SYS_DATA2: read-protectable
HMAC_UP = 8                   # key purpose number (espefuse esp32s3/fields.py KEY_PURPOSES)


def rd_addr(block: int) -> int:
    return {0: BASE + 0x02C, 1: BASE + 0x044}.get(block, BASE + 0x05C + (block - 2) * 0x20)


@lru_cache(maxsize=1)
def block0_guards() -> dict[int, list[int]]:
    """WR_DIS bit -> per-word masks of the BLOCK0 bits it protects (from espefuse's esp32s3.yaml)."""
    from pathlib import Path

    import espefuse
    import yaml

    table = yaml.safe_load((Path(espefuse.__file__).parent / "efuse_defs" / "esp32s3.yaml").read_text())
    guards: dict[int, list[int]] = {}
    for spec in table["EFUSES"].values():
        if spec["blk"] != 0 or spec.get("wr_dis") is None:
            continue
        masks = guards.setdefault(int(spec["wr_dis"]), [0] * 6)
        start, length = spec["word"] * 32 + spec["pos"], spec["len"]
        for bit in range(start, start + length):
            masks[bit // 32] |= 1 << (bit % 32)
    return guards


def rs_check(data: bytes) -> bytes:
    """The 12 Reed-Solomon check bytes the chip expects after a block's 32 data bytes."""
    import reedsolo

    return bytes(reedsolo.RSCodec(12).encode(data)[32:])


@dataclass
class Efuses:
    """Lasting eFuse state (kept across connections, as on a chip) and the controller's registers."""

    blocks: dict[int, list[int]] = field(default_factory=lambda: {b: [0] * WORDS.get(b, 8) for b in range(11)})
    regs: dict[int, int] = field(default_factory=dict)
    burns: list[int] = field(default_factory=list)   # block numbers, in burn order (tests look)

    # -- what tests and the emulator's reset state use ---------------------------------------------
    def word(self, block: int, n: int) -> int:
        return self.blocks[block][n]

    def wr_dis(self) -> int:
        return self.blocks[0][0]

    def rd_dis(self) -> int:
        return self.blocks[0][1] & 0x7F

    def key_purpose(self, key: int) -> int:
        return (self.blocks[0][2 + (24 + 4 * key) // 32] >> ((24 + 4 * key) % 32)) & 0xF

    def key_bytes(self, key: int) -> bytes:
        """The raw key in BLOCK_KEYn, as espefuse wrote it (the test's view; the chip hides it)."""
        return b"".join(w.to_bytes(4, "little") for w in self.blocks[4 + key])

    def set_key(self, key: int, data: bytes, purpose: int) -> None:
        """Pre-burn a key block (a chip someone else keyed): data, purpose, read and write protection."""
        self.blocks[4 + key] = [int.from_bytes(data[i:i + 4], "little") for i in range(0, 32, 4)]
        bit = 24 + 4 * key
        self.blocks[0][2 + bit // 32] |= purpose << (bit % 32)
        self.blocks[0][0] |= (1 << (23 + key)) | (1 << (8 + key))
        self.blocks[0][1] |= 1 << key

    # -- the register interface --------------------------------------------------------------------
    @staticmethod
    def owns(addr: int) -> bool:
        return BASE <= addr < BASE + 0x200

    def read(self, addr: int) -> int:
        for block, words in self.blocks.items():
            start = rd_addr(block)
            if start <= addr < start + 4 * len(words):
                if block in KEY_BLOCKS and self.rd_dis() >> (block - 4) & 1:
                    return 0
                return words[(addr - start) // 4]
        return self.regs.get(addr, 0)

    def write(self, addr: int, value: int) -> None:
        if addr == CMD:
            if value & CMD_PGM and self.regs.get(CONF) == WRITE_OP:
                self.program((value >> 2) & 0xF)
            value = 0   # the command completes at once: espefuse polls for CMD == 0
        self.regs[addr] = value

    def program(self, block: int) -> None:
        if block > 10:
            return
        data = [self.regs.get(PGM_DATA + 4 * i, 0) for i in range(8)]
        self.burns.append(block)
        if block == 0:
            masks = [0xFFFFFFFF] * 6
            for bit, guarded in block0_guards().items():
                if self.wr_dis() >> bit & 1:
                    masks = [m & ~g for m, g in zip(masks, guarded)]
            self.blocks[0] = [old | (new & m) for old, new, m in zip(self.blocks[0], data[:6], masks)]
            return
        raw = b"".join(w.to_bytes(4, "little") for w in data)
        check = b"".join(self.regs.get(PGM_CHECK + 4 * i, 0).to_bytes(4, "little") for i in range(3))
        n = len(self.blocks[block])
        if self.wr_dis() >> (19 + block) & 1:
            return   # write-protected: the burn changes nothing
        if check != rs_check(raw):
            self.regs[RS_ERR0 if block < 9 else RS_ERR1] = self.regs.get(RS_ERR0 if block < 9 else RS_ERR1, 0) | (
                0x8 << (4 * ((block - 1) % 8 if block < 9 else block - 9)))
            return
        # a 6-word block takes the first 6 words of the window (espefuse pads the data at the end)
        self.blocks[block] = [old | new for old, new in zip(self.blocks[block], data[:n])]
