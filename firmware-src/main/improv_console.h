/* Improv Wi-Fi serial on the console (UART or USB-Serial-JTAG on the device, stdin/stdout on the
 * linux target): after a browser install, ESP Web Tools sets Wi-Fi this way; so does
 * `rtflash provision --improv`. Wi-Fi settings received are tried, then stored (NVS namespace
 * "rtflash", keys wifi_ssid / wifi_pass, as `rtflash provision` writes them). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Start the reader task. Call after NVS is initialised. false (with a log line) if it cannot run. */
bool improv_console_start(void);

/* Wait up to timeout_ms for Wi-Fi settings newly stored over Improv: true when they came, and the
 * caller loads its settings again and goes on (no reboot: the browser's Improv dialog has its answer
 * and the device keeps its console). Sleeps the whole timeout when Improv is not running. */
bool improv_console_wait_settings(uint32_t timeout_ms);
