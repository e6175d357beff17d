/* Wi-Fi station: connect, and on every disconnect retry with back-off (never reboot). Log lines
 * (tag wifi_sta) that rtflash's monitor parses: `connected to <ssid>`, `got ip: <a.b.c.d>`,
 * `disconnected (reason <n>), retry in <ms> ms`. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Start the station; returns once the first IP address is obtained (or false on set-up errors). */
bool wifi_sta_start(const char *ssid, const char *password);

/* Try a network (Improv "send Wi-Fi settings"): set it, connect, wait up to timeout_ms for an IP.
 * Replaces the network in use when the station runs already. */
bool wifi_sta_try(const char *ssid, const char *password, uint32_t timeout_ms);

/* Scan once (blocking) and call emit per network seen (at most 20). */
typedef void (*wifi_sta_on_network)(void *ctx, const char *ssid, int rssi, bool secured);
void wifi_sta_scan(wifi_sta_on_network emit, void *ctx);
