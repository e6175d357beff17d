/* Improv Wi-Fi over serial (https://www.improv-wifi.com/serial/): the device side.
 *
 * Why: after a browser install (ESP Web Tools) the page asks for the Wi-Fi name and password and
 * sends them over the same USB serial console, framed as Improv packets:
 *   "IMPROV" | version (1) | type | length | data[length] | checksum (low byte of the sum of all
 *   bytes before it)
 * The client follows each packet with '\n'; the device's log lines share the wire. This module is
 * pure C (no ESP-IDF header): the stream parser, packet builders and the small service state machine
 * (states, error states, RPCs), with the platform's write / connect / store / scan passed in, so the
 * same code runs on the device, in the linux firmware and in the host tests (incl. a fuzz test).
 * The password only ever sits in the parser's buffer and the event handed to the service; both
 * are wiped after use, and nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_IMPROV_VERSION 1
#define RT_IMPROV_HEADER_LEN 9          /* "IMPROV" + version + type + length */
#define RT_IMPROV_MAX_PACKET (RT_IMPROV_HEADER_LEN + 255 + 1)
#define RT_IMPROV_SSID_MAX 32           /* 802.11 SSID, as wifi_sta_config_t.ssid */
#define RT_IMPROV_PASS_MAX 64           /* WPA2 passphrase 8-63 characters or a 64-hex PSK */

typedef enum {
    RT_IMPROV_TYPE_CURRENT_STATE = 0x01,
    RT_IMPROV_TYPE_ERROR_STATE = 0x02,
    RT_IMPROV_TYPE_RPC = 0x03,
    RT_IMPROV_TYPE_RPC_RESULT = 0x04,
} rt_improv_type_t;

typedef enum {
    RT_IMPROV_STATE_AUTHORIZED = 0x02,  /* ready to accept credentials */
    RT_IMPROV_STATE_PROVISIONING = 0x03,
    RT_IMPROV_STATE_PROVISIONED = 0x04,
} rt_improv_state_t;

typedef enum {
    RT_IMPROV_ERR_NONE = 0x00,
    RT_IMPROV_ERR_INVALID_RPC = 0x01,   /* malformed packet: checksum, lengths, SSID/password out of range */
    RT_IMPROV_ERR_UNKNOWN_RPC = 0x02,
    RT_IMPROV_ERR_UNABLE_TO_CONNECT = 0x03,
    RT_IMPROV_ERR_BAD_HOSTNAME = 0x05,
    RT_IMPROV_ERR_UNKNOWN = 0xFF,
} rt_improv_error_t;

typedef enum {
    RT_IMPROV_CMD_WIFI_SETTINGS = 0x01,
    RT_IMPROV_CMD_CURRENT_STATE = 0x02,
    RT_IMPROV_CMD_DEVICE_INFO = 0x03,
    RT_IMPROV_CMD_WIFI_NETWORKS = 0x04,
} rt_improv_command_t;

/* One complete packet from the client: either a well-formed RPC (error == NONE) or the error state
 * it earns (INVALID_RPC for a bad checksum, length or type; UNKNOWN_RPC for an unknown command). */
typedef struct {
    rt_improv_error_t error;
    uint8_t command;
    char ssid[RT_IMPROV_SSID_MAX + 1];  /* RT_IMPROV_CMD_WIFI_SETTINGS only */
    char pass[RT_IMPROV_PASS_MAX + 1];
} rt_improv_event_t;

typedef void (*rt_improv_on_event)(void *ctx, const rt_improv_event_t *ev);

/* Stream parser: bytes in any split (one at a time, several packets at once, log noise between),
 * one event per complete packet. Packets of the device-to-client types (current state, error state,
 * RPC result) are dropped silently: they are our own output echoed by a terminal, and answering them
 * would loop. After a bad packet it resynchronises on the next "IMPROV" inside
 * the bytes already taken, so a truncated packet does not swallow the good one behind it. */
typedef struct {
    uint8_t buf[RT_IMPROV_MAX_PACKET];
    size_t len;
} rt_improv_parser_t;

void rt_improv_parser_init(rt_improv_parser_t *p);

/* Feed n bytes; calls cb for each complete packet. The event is wiped after cb returns. */
void rt_improv_feed(rt_improv_parser_t *p, const uint8_t *data, size_t n, rt_improv_on_event cb, void *ctx);

/* The line went quiet with a packet half received (the caller's read timed out): drop it, returning
 * true when something was dropped, so the caller can answer INVALID_RPC. */
bool rt_improv_idle(rt_improv_parser_t *p);

/* Whether the parser holds a partial packet. */
bool rt_improv_pending(const rt_improv_parser_t *p);

/* Build a device-to-client packet (followed by '\n', as the clients expect a line) into out.
 * Returns its length, or 0 when it does not fit in cap or len > 255. */
size_t rt_improv_packet(uint8_t type, const uint8_t *data, size_t len, uint8_t *out, size_t cap);

/* RPC result: command, total length, then each string as length + bytes. 0 when it does not fit. */
size_t rt_improv_rpc_result(uint8_t command, const char *const *strings, size_t count, uint8_t *out, size_t cap);

const char *rt_improv_state_name(rt_improv_state_t state);
const char *rt_improv_error_name(rt_improv_error_t error);

/* --- The service: what the device answers ---------------------------------------------------- */

/* A network seen by a scan, handed to the emit callback. */
typedef void (*rt_improv_emit_network)(void *svc, const char *ssid, int rssi, bool secured);

typedef struct {
    /* write bytes to the console (one call per packet, so it does not interleave with a log line) */
    void (*write)(void *ctx, const uint8_t *data, size_t len);
    /* try the network; true once connected (the linux target has no Wi-Fi: it just says yes) */
    bool (*connect)(void *ctx, const char *ssid, const char *pass);
    /* store wifi_ssid / wifi_pass (NVS namespace "rtflash" on the device); true on success */
    bool (*store)(void *ctx, const char *ssid, const char *pass);
    /* optional: scan, calling emit(svc, ...) per network */
    void (*scan)(void *ctx, void *svc, rt_improv_emit_network emit);
    /* optional: a state or error change, for one log line (never given the password) */
    void (*on_change)(void *ctx, rt_improv_state_t state, rt_improv_error_t error, const char *ssid);
    void *ctx;
    const char *firmware;       /* device information RPC: firmware name, version, chip/variant, name */
    const char *version;
    const char *chip;
    const char *device_name;
    const char *redirect_url;   /* sent after provisioning only when non-empty */
} rt_improv_ops_t;

typedef struct {
    rt_improv_parser_t parser;
    const rt_improv_ops_t *ops;
    rt_improv_state_t state;
    rt_improv_error_t error;
} rt_improv_service_t;

/* provisioned: the device already holds Wi-Fi settings (so "request current state" says so). */
void rt_improv_service_init(rt_improv_service_t *s, const rt_improv_ops_t *ops, bool provisioned);

/* Console bytes in; answers go out through ops->write. */
void rt_improv_service_feed(rt_improv_service_t *s, const uint8_t *data, size_t n);

/* The caller's read timed out: a half packet is dropped and answered with INVALID_RPC. */
void rt_improv_service_idle(rt_improv_service_t *s);

#ifdef __cplusplus
}
#endif
