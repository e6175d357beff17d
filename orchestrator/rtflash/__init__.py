"""rtflash: build, configure, flash and watch realtime voice firmware on ESP32-S3 boards."""

__version__ = "0.1.0"
