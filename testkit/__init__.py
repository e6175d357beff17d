"""Test and bench infrastructure shared by tests/ and bench/: the emulated ESP32-S3 ROM loader,
the Realtime API stand-in, the Xtensa compile check, the stand-in idf.py and where ../shared is.

Run from the repo root with the project's venv (`.venv/bin/python -m pytest`, `.venv/bin/python bench/X.py`).
"""
