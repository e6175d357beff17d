"""Benchmarks, and the emulated ESP32-S3 ROM bootloader that both they and the tests talk to.

Run a bench with the project's venv, from the repo root: `.venv/bin/python bench/flash_bench.py`.
Scripts import their neighbours (`esp_rom_emulator`) directly; tests import `bench.esp_rom_emulator`.
"""
