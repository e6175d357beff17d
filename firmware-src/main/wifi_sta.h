/* Wi-Fi station: connect, and on every disconnect retry with back-off (never reboot). Log lines
 * (tag wifi_sta) that rtflash's monitor parses: `connected to <ssid>`, `got ip: <a.b.c.d>`,
 * `disconnected (reason <n>), retry in <ms> ms`. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Start the station; returns once the first IP address is obtained (or false on set-up errors). */
bool wifi_sta_start(const char *ssid, const char *password);
