"""rtflash.toml: defaults, validation, and the refusal to hold secrets."""

from __future__ import annotations

import pytest

from rtflash.errors import ConfigError
from rtflash.settings import Settings, load_settings


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
])
def test_bad_settings(tmp_path, text, words):
    (tmp_path / "rtflash.toml").write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert words in str(err.value) and "rtflash.toml" in str(err.value)
    assert "hunter22" not in str(err.value)
