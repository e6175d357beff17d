"""rtflash.toml: defaults, validation, and the refusal to hold secrets."""

from __future__ import annotations

import pytest

from rtflash.errors import ConfigError
from rtflash.settings import Security, Settings, load_settings, security_for


def test_defaults_without_file(tmp_path):
    assert load_settings(tmp_path) == Settings()


def test_values_and_relative_boards_dir(tmp_path):
    (tmp_path / "rtflash.toml").write_text('board = "sonatino"\nbaud = 460800\nboards_dir = "mine"\nvoice = "verse"\n')
    s = load_settings(tmp_path)
    assert (s.board, s.baud, s.voice) == ("sonatino", 460800, "verse")
    assert s.boards_dir == str(tmp_path / "mine")


@pytest.mark.parametrize("text,words", [
    ('bord = "x"', "bord: unknown setting; did you mean 'board'?"),
    ("baud = \"fast\"", "baud: must be a whole number"),
    ("baud = 12", "not a usable baud rate"),
    ('backend = "make"', "backend: 'make' is not one of auto, idf, pio"),
    ('wifi_password = "hunter22"', "secrets do not belong in rtflash.toml"),
    ('api_key = "sk-x"', "rtflash secrets set"),
    ("board = ", "invalid TOML"),
    ('[security]\nnvs_encryption = "aes"', "security.nvs_encryption: 'aes' is not one of none, hmac"),
    ("[security]\nnvs_hmac_key_block = 6", "security.nvs_hmac_key_block: 6 is not an eFuse key block"),
    ('[security]\nnvs_hmac_key_block = "2"', "security.nvs_hmac_key_block: must be a whole number"),
    ('[security.boards.sonatino]\nencrypt = true', "security.boards.sonatino.encrypt: unknown setting"),
])
def test_bad_settings(tmp_path, text, words):
    (tmp_path / "rtflash.toml").write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert words in str(err.value) and "rtflash.toml" in str(err.value)
    assert "hunter22" not in str(err.value)


def test_security_per_board_over_the_top_table(tmp_path):
    (tmp_path / "rtflash.toml").write_text('[security]\nnvs_encryption = "hmac"\nnvs_hmac_key_block = 1\n'
                                           '[security.boards.linux]\nnvs_encryption = "none"\n'
                                           '[security.boards.sonatino]\nnvs_hmac_key_block = 3\n')
    s = load_settings(tmp_path)
    assert security_for(s, "sonatino") == Security("hmac", 3)
    assert security_for(s, "freenove-s3") == Security("hmac", 1)
    assert not security_for(s, "linux").hmac
    assert security_for(Settings(), "sonatino") == Security("none", 0)
