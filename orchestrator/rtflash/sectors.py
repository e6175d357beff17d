"""Which 4 KB sectors of an image differ on the device, asked of the device itself (SPI_FLASH_MD5).

The device is the truth: a range is skipped only when the device's MD5 of it equals the image's.
What rtflash wrote last (`old`, the per-device cache) is only a hint that chooses the ranges to ask
about: runs of sectors the hint says are unchanged, and runs it says changed. One MD5 of a range is
compared with three known contents at once: the new image (skip it), the hinted old image and erased
flash (then exactly the sectors that differ from that content are written, with no more questions).
Anything else is narrowed down: 64 KB chunks, then single sectors. So an unchanged image costs one
question, a one-sector change a few, and an interrupted write or an erased region about two per
boundary; a device holding something unrelated costs one question per sector (cheaper than writing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

SECTOR = 0x1000
CHUNK = 16 * SECTOR
Md5 = Callable[[int, int], str]  # (flash address, size) -> hex digest of the device's flash there


@dataclass(frozen=True)
class Plan:
    """What to write of one image: (flash address, bytes) spans, and how many bytes are already there."""

    spans: list[tuple[int, bytes]]
    skipped: int
    questions: int

    @property
    def written(self) -> int:
        return sum(len(d) for _, d in self.spans)


def pad4(data: bytes) -> bytes:
    """esptool pads every image to 4 bytes with 0xFF; so do the MD5s and the writes."""
    return data + b"\xff" * (-len(data) % 4)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sectors(start: int, end: int) -> Iterator[tuple[int, int]]:
    for s in range(start, end, SECTOR):
        yield s, min(s + SECTOR, end)


def hint_runs(new: bytes, old: bytes | None) -> list[tuple[int, int]]:
    """Runs of sectors that the hint says are all unchanged or all changed (one run without a hint)."""
    if old is None:
        return [(0, len(new))]
    old = pad4(old)
    runs: list[tuple[int, int]] = []
    prev = None
    for s, e in _sectors(0, len(new)):
        same = new[s:e] == old[s:e]
        if runs and same == prev:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
        prev = same
    return runs


def plan(data: bytes, offset: int, md5: Md5, old: bytes | None = None) -> Plan:
    """Ask the device, range by range, which sectors of `data` (to be written at `offset`) differ."""
    new = pad4(data)
    refs = [pad4(old)] if old is not None else []
    refs.append(b"\xff" * len(new))
    todo: list[tuple[int, int]] = []
    asked = 0

    def ask(start: int, end: int) -> bool:
        """True when the range is settled (skipped, or its sectors to write are known)."""
        nonlocal asked
        asked += 1
        got = md5(offset + start, end - start)
        if got == _md5(new[start:end]):
            return True
        for ref in refs:
            if len(ref) >= end and got == _md5(ref[start:end]):
                todo.extend((s, e) for s, e in _sectors(start, end) if new[s:e] != ref[s:e])
                return True
        if end - start <= SECTOR:
            todo.append((start, end))
            return True
        return False

    pending = [r for r in hint_runs(new, old) if not ask(*r)]
    for start, end in pending:
        step = CHUNK if end - start > CHUNK else SECTOR
        for s in range(start, end, step):
            e = min(s + step, end)
            if not ask(s, e):
                for piece in _sectors(s, e):
                    ask(*piece)
    spans = _merge(sorted(todo), new, offset)
    return Plan(spans, len(new) - sum(len(d) for _, d in spans), asked)


def _merge(ranges: list[tuple[int, int]], new: bytes, offset: int) -> list[tuple[int, bytes]]:
    """Adjacent sectors become one span (one FLASH_BEGIN, one verify)."""
    merged: list[list[int]] = []
    for s, e in ranges:
        if merged and merged[-1][1] == s:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return [(offset + s, new[s:e]) for s, e in merged]
