"""`rtflash monitor`: a serial log viewer that keeps up, decodes crashes and survives resets.

The pieces, each plain data in and out so they can be tested alone:

- `reader`  a thread that reads the port in big chunks into a queue and reopens it after a reset
- `parser`  bytes -> lines (partial lines, bad UTF-8, NUL and colour escapes handled) -> `LogLine`
- `decoder` panic backtraces and register dumps -> function and file:line (esp-idf-panic-decoder)
- `status`  Wi-Fi / WebRTC / data-channel lines -> one status summary
- `keys`    the Ctrl-] / Ctrl-T key state machine and a raw-mode stdin reader
- `view`    batches of lines -> terminal (rich styles), plain text, JSON, log file
- `session` the loop that joins them
"""
