"""rtflash.efuse: where the device keys live, and what plan() decides before anything is burned."""

from __future__ import annotations

import pytest

from rtflash import efuse
from rtflash.errors import ConfigError

MAC = "7c:df:a1:e0:c0:de"


def blocks(**changed: efuse.KeyBlock) -> list[efuse.KeyBlock]:
    out = [efuse.KeyBlock(i, "USER", True, True, True) for i in range(6)]
    for name, block in changed.items():
        out[int(name[1:])] = block
    return out


@pytest.fixture
def env(tmp_path):
    return {"RTFLASH_KEYS_DIR": str(tmp_path / "keys")}


def test_keys_dir_precedence(tmp_path):
    assert efuse.keys_dir({"RTFLASH_KEYS_DIR": "/x"}) == efuse.Path("/x")
    assert efuse.keys_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "rtflash" / "nvs-keys"
    assert efuse.key_path(MAC, {"RTFLASH_KEYS_DIR": "/x"}).name == "hmac-7cdfa1e0c0de.bin"


def test_a_fresh_device_gets_a_new_key_saved_0600_before_the_burn(env):
    plan = efuse.plan(MAC, blocks(), 2, env)
    assert plan.burn and plan.block_name == "BLOCK_KEY2" and len(plan.key) == 32
    assert plan.path.read_bytes() == plan.key and plan.path.stat().st_mode & 0o777 == 0o600
    assert efuse.plan("02:00:00:00:00:01", blocks(), 2, env).key != plan.key   # one key per device


def test_a_keyed_device_reuses_its_key_and_burns_nothing(env):
    key = efuse.plan(MAC, blocks(), 1, env).key
    again = efuse.plan(MAC, blocks(b1=efuse.KeyBlock(1, "HMAC_UP", True, False, False)), 1, env)
    assert not again.burn and again.key == key


@pytest.mark.parametrize("block,words", [
    (efuse.KeyBlock(0, "XTS_AES_128_KEY", True, False, False), "BLOCK_KEY0 has purpose XTS_AES_128_KEY"),
    (efuse.KeyBlock(0, "USER", False, True, True), "BLOCK_KEY0 is not empty"),
    (efuse.KeyBlock(0, "USER", True, True, False), "BLOCK_KEY0 is read- or write-protected"),
])
def test_a_used_block_is_refused_naming_the_free_ones(env, block, words):
    with pytest.raises(ConfigError) as err:
        efuse.plan(MAC, blocks(b0=block), 0, env)
    assert words in str(err.value) and "free: BLOCK_KEY1, BLOCK_KEY2" in str(err.value)
    assert "nothing burned" in str(err.value)
    assert not efuse.key_path(MAC, env).exists(), "no key made for a refused plan"


def test_hmac_key_in_another_block_or_unknown_here(env):
    hmac3 = blocks(b3=efuse.KeyBlock(3, "HMAC_UP", True, False, False))
    with pytest.raises(ConfigError, match="does not have"):
        efuse.plan(MAC, hmac3, 0, env)
    efuse.save_key(MAC, b"k" * 32, env)
    with pytest.raises(ConfigError, match="nvs_hmac_key_block = 3"):
        efuse.plan(MAC, hmac3, 0, env)


def test_a_key_file_readable_by_others_or_cut_short_is_refused(env):
    path = efuse.save_key(MAC, b"k" * 32, env)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        efuse.load_key(MAC, env)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="5 bytes, an HMAC key is 32"):
        efuse.load_key(MAC, env)
