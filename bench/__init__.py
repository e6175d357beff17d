"""Benchmarks that print figures (never timed tests).

Run one with the project's venv, from the repo root: `.venv/bin/python bench/flash_bench.py`. What they
share with the tests (ROM loader emulator, Realtime API stand-in, Xtensa check, ../shared discovery)
lives in testkit/; bench/ and tests/ never import each other.
"""
