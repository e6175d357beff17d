"""sectors.plan against a device's flash held in a bytearray: what it asks, and what it decides to write."""

from __future__ import annotations

import hashlib
import random

import pytest

from rtflash import sectors

SECTOR = sectors.SECTOR
BASE = 0x20000


class Device:
    """Answers SPI_FLASH_MD5 from a bytearray, counting the questions."""

    def __init__(self, size: int = 0x200000) -> None:
        self.flash = bytearray(b"\xff" * size)
        self.asked: list[tuple[int, int]] = []

    def put(self, offset: int, data: bytes) -> None:
        self.flash[offset:offset + len(data)] = data

    def md5(self, offset: int, size: int) -> str:
        self.asked.append((offset, size))
        return hashlib.md5(self.flash[offset:offset + size]).hexdigest()

    def apply(self, plan: sectors.Plan) -> None:
        for offset, data in plan.spans:
            self.put(offset, data)


def image(seed: int, size: int = 300 * SECTOR + 0x7F4) -> bytes:
    return random.Random(seed).randbytes(size)


def changed(data: bytes, *positions: int) -> bytes:
    out = bytearray(data)
    for p in positions:
        out[p] ^= 0xFF
    return bytes(out)


def written_sectors(plan: sectors.Plan) -> list[int]:
    return [off - BASE + s for off, d in plan.spans for s in range(0, len(d), SECTOR)]


def test_unchanged_is_one_question():
    dev, new = Device(), image(1)
    dev.put(BASE, new)
    plan = sectors.plan(new, BASE, dev.md5, old=new)
    assert (plan.spans, plan.skipped, dev.asked) == ([], len(new), [(BASE, len(new))])
    assert sectors.plan(new, BASE, dev.md5).spans == [], "no hint: the same single question"


def test_one_changed_sector_with_the_hint_is_three_questions():
    dev, old = Device(), image(1)
    dev.put(BASE, old)
    new = changed(old, 123 * SECTOR + 5)
    plan = sectors.plan(new, BASE, dev.md5, old=old)
    assert plan.spans == [(BASE + 123 * SECTOR, new[123 * SECTOR:124 * SECTOR])]
    assert plan.questions == len(dev.asked) == 3 and plan.skipped == len(new) - SECTOR


def test_without_a_hint_the_device_still_finds_each_changed_sector():
    dev, old = Device(), image(1)
    dev.put(BASE, old)
    new = changed(old, 7, 200 * SECTOR + 9, 201 * SECTOR)
    plan = sectors.plan(new, BASE, dev.md5)
    assert written_sectors(plan) == [0, 200 * SECTOR, 201 * SECTOR]
    assert len(plan.spans) == 2, "adjacent sectors merge into one span"
    assert plan.questions < 60, "64 KB chunks first, sectors only inside a differing chunk"
    dev.apply(plan)
    assert dev.flash[BASE:BASE + len(new)] == new


def test_stale_hint_is_not_trusted():
    """The cache says the device holds `old`; it holds something else: the device's answer wins."""
    dev, old = Device(), image(1)
    dev.put(BASE, old)
    dev.flash[BASE + 50 * SECTOR] ^= 1  # changed behind rtflash's back
    plan = sectors.plan(old, BASE, dev.md5, old=old)
    assert written_sectors(plan) == [50 * SECTOR]


@pytest.mark.parametrize("cut", [0, 1, 37, 150, 299])
@pytest.mark.parametrize("hint", [True, False])
def test_interrupted_write_leaves_only_the_rest(cut, hint):
    """Ctrl-C after `cut` sectors of a new image, the rest erased (a ROM) or still the old image (a stub)."""
    for rest_erased in (True, False):
        dev, old, new = Device(), image(1), image(2)
        dev.put(BASE, old)
        if rest_erased:
            dev.put(BASE, b"\xff" * len(new))
        dev.put(BASE, new[:cut * SECTOR])
        plan = sectors.plan(new, BASE, dev.md5, old=old if hint else None)
        assert written_sectors(plan) == [s * SECTOR for s in range(cut, 301)]
        assert plan.skipped == cut * SECTOR
        dev.apply(plan)
        assert dev.flash[BASE:BASE + len(new)] == new
        if hint or rest_erased:
            assert plan.questions <= 45, "narrowed by chunk, the rest settled as the old image or erased"
        else:  # unknown content behind the cut: a question per sector there, still far cheaper than writing
            assert plan.questions <= 1 + 19 + 16 + (301 - cut)


def test_erased_region_is_settled_without_narrowing_it_down():
    dev, new = Device(), image(1)
    dev.put(BASE, new)
    dev.put(BASE + 0x20000, b"\xff" * 0x10000)
    plan = sectors.plan(new, BASE, dev.md5, old=new)
    assert written_sectors(plan) == list(range(0x20000, 0x30000, SECTOR))
    assert plan.questions <= 1 + 19, "one question per run, then per 64 KB chunk; the erased chunk settles itself"


def test_blank_sectors_of_the_image_are_not_written_to_erased_flash():
    dev = Device()
    new = image(1, 4 * SECTOR)[:SECTOR] + b"\xff" * 2 * SECTOR + image(3, SECTOR)
    plan = sectors.plan(new, BASE, dev.md5)
    assert written_sectors(plan) == [0, 3 * SECTOR]


def test_image_padded_to_four_bytes_like_esptool():
    dev = Device()
    new = b"\x01\x02\x03\x04\x05"
    plan = sectors.plan(new, BASE, dev.md5)
    assert plan.spans == [(BASE, new + b"\xff\xff\xff")]
    dev.apply(plan)
    assert sectors.plan(new, BASE, dev.md5).spans == []


def test_hint_of_another_length():
    dev, old = Device(), image(1, 10 * SECTOR)
    dev.put(BASE, old)
    new = old + image(2, 3 * SECTOR)
    plan = sectors.plan(new, BASE, dev.md5, old=old)
    assert written_sectors(plan) == [10 * SECTOR, 11 * SECTOR, 12 * SECTOR]
    shorter = old[:5 * SECTOR + 100]
    assert sectors.plan(shorter, BASE, dev.md5, old=old).spans == []


def test_unrelated_content_costs_a_question_per_sector_and_writes_everything():
    dev, new = Device(), image(1, 40 * SECTOR)
    dev.put(BASE, image(9, 40 * SECTOR))
    plan = sectors.plan(new, BASE, dev.md5)
    assert plan.spans == [(BASE, new)] and plan.skipped == 0
    assert plan.questions == 1 + 3 + 40
