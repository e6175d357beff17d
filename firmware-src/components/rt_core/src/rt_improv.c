/* Improv Wi-Fi serial: stream parser, packet builders, service (see rt_improv.h).
 * Protocol as specified at improv-wifi.com/serial (packet format, types 1-4, states 2-4, error
 * states 0/1/2/3/5/0xFF, RPCs 1-4). */
#include "rt_improv.h"

#include <string.h>

#include "rt_config.h"

static const uint8_t MAGIC[6] = {'I', 'M', 'P', 'R', 'O', 'V'};

void rt_improv_parser_init(rt_improv_parser_t *p)
{
    memset(p, 0, sizeof(*p));
}

bool rt_improv_pending(const rt_improv_parser_t *p)
{
    return p->len > 0;
}

/* Remove the first n bytes of the buffer; what is left behind is zeroed (it may have held a password). */
static void drop(rt_improv_parser_t *p, size_t n)
{
    if (n > p->len) {
        n = p->len;
    }
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
    memset(p->buf + p->len, 0, sizeof(p->buf) - p->len);
}

static uint8_t checksum(const uint8_t *data, size_t len)
{
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += data[i];
    }
    return (uint8_t)(sum & 0xFF);
}

/* Copy a length-prefixed string field without NUL bytes; false when it is out of [min, max]. */
static bool take_string(const uint8_t *src, size_t len, size_t min, size_t max, char *dst)
{
    if (len < min || len > max || memchr(src, 0, len) != NULL) {
        return false;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* A complete, checksum-correct packet of length 10 + L at buf: what it asks for. */
static void decode(const uint8_t *pkt, rt_improv_event_t *ev)
{
    uint8_t type = pkt[7], len = pkt[8];
    const uint8_t *data = pkt + RT_IMPROV_HEADER_LEN;
    ev->error = RT_IMPROV_ERR_INVALID_RPC;
    if (type != RT_IMPROV_TYPE_RPC || len < 2 || data[1] != len - 2) {
        return;
    }
    ev->command = data[0];
    const uint8_t *in = data + 2;
    size_t n = (size_t)len - 2;
    switch (ev->command) {
    case RT_IMPROV_CMD_WIFI_SETTINGS: {
        if (n < 2 || (size_t)in[0] + 2 > n) {
            return;
        }
        size_t ssid_len = in[0], pass_len = in[1 + ssid_len];
        if (2 + ssid_len + pass_len != n || !take_string(in + 1, ssid_len, 1, RT_IMPROV_SSID_MAX, ev->ssid) ||
            !take_string(in + 2 + ssid_len, pass_len, 0, RT_IMPROV_PASS_MAX, ev->pass)) {
            memset(ev->ssid, 0, sizeof(ev->ssid));
            memset(ev->pass, 0, sizeof(ev->pass));
            return;
        }
        ev->error = RT_IMPROV_ERR_NONE;
        return;
    }
    case RT_IMPROV_CMD_CURRENT_STATE:
    case RT_IMPROV_CMD_DEVICE_INFO:
    case RT_IMPROV_CMD_WIFI_NETWORKS:
        ev->error = RT_IMPROV_ERR_NONE;   /* no data expected; any given is ignored, as other devices do */
        return;
    default:
        ev->error = RT_IMPROV_ERR_UNKNOWN_RPC;
        return;
    }
}

/* Bring the buffer back to "a prefix of a packet" (or empty), emitting events for complete ones. */
static void settle(rt_improv_parser_t *p, rt_improv_on_event cb, void *ctx)
{
    while (p->len > 0) {
        size_t head = p->len < sizeof(MAGIC) ? p->len : sizeof(MAGIC);
        if (memcmp(p->buf, MAGIC, head) != 0 || (p->len > 6 && p->buf[6] != RT_IMPROV_VERSION)) {
            drop(p, 1);   /* log text, or a packet of another version: not ours */
            continue;
        }
        if (p->len < RT_IMPROV_HEADER_LEN) {
            return;
        }
        size_t total = RT_IMPROV_HEADER_LEN + (size_t)p->buf[8] + 1;
        if (p->len < total) {
            return;
        }
        rt_improv_event_t ev;
        memset(&ev, 0, sizeof(ev));
        if (checksum(p->buf, total - 1) != p->buf[total - 1]) {
            ev.error = RT_IMPROV_ERR_INVALID_RPC;
            cb(ctx, &ev);
            drop(p, 1);   /* resynchronise: a good packet may start inside what was taken */
            continue;
        }
        uint8_t type = p->buf[7];
        bool echo = type == RT_IMPROV_TYPE_CURRENT_STATE || type == RT_IMPROV_TYPE_ERROR_STATE ||
                    type == RT_IMPROV_TYPE_RPC_RESULT;
        decode(p->buf, &ev);
        drop(p, total);
        if (!echo) {   /* a device-to-client packet (a terminal echoing our own output): not for us */
            cb(ctx, &ev);
        }
        memset(&ev, 0, sizeof(ev));
    }
}

void rt_improv_feed(rt_improv_parser_t *p, const uint8_t *data, size_t n, rt_improv_on_event cb, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        /* settle() leaves at most a 264-byte prefix of a packet, so there is always room for one byte */
        p->buf[p->len++] = data[i];
        settle(p, cb, ctx);
    }
}

bool rt_improv_idle(rt_improv_parser_t *p)
{
    bool had = p->len > 0;
    drop(p, p->len);
    return had;
}

size_t rt_improv_packet(uint8_t type, const uint8_t *data, size_t len, uint8_t *out, size_t cap)
{
    size_t total = RT_IMPROV_HEADER_LEN + len + 2;
    if (len > 255 || total > cap || (len > 0 && data == NULL)) {
        return 0;
    }
    memcpy(out, MAGIC, sizeof(MAGIC));
    out[6] = RT_IMPROV_VERSION;
    out[7] = type;
    out[8] = (uint8_t)len;
    if (len > 0) {
        memcpy(out + RT_IMPROV_HEADER_LEN, data, len);
    }
    out[RT_IMPROV_HEADER_LEN + len] = checksum(out, RT_IMPROV_HEADER_LEN + len);
    out[RT_IMPROV_HEADER_LEN + len + 1] = '\n';
    return total;
}

size_t rt_improv_rpc_result(uint8_t command, const char *const *strings, size_t count, uint8_t *out, size_t cap)
{
    uint8_t data[255];
    size_t pos = 2;
    for (size_t i = 0; i < count; i++) {
        size_t slen = strlen(strings[i]);
        if (slen > 255 || pos + 1 + slen > sizeof(data)) {
            return 0;
        }
        data[pos++] = (uint8_t)slen;
        memcpy(data + pos, strings[i], slen);
        pos += slen;
    }
    data[0] = command;
    data[1] = (uint8_t)(pos - 2);
    return rt_improv_packet(RT_IMPROV_TYPE_RPC_RESULT, data, pos, out, cap);
}

const char *rt_improv_state_name(rt_improv_state_t state)
{
    switch (state) {
    case RT_IMPROV_STATE_AUTHORIZED: return "ready";
    case RT_IMPROV_STATE_PROVISIONING: return "provisioning";
    case RT_IMPROV_STATE_PROVISIONED: return "provisioned";
    }
    return "unknown";
}

const char *rt_improv_error_name(rt_improv_error_t error)
{
    switch (error) {
    case RT_IMPROV_ERR_NONE: return "no error";
    case RT_IMPROV_ERR_INVALID_RPC: return "invalid RPC packet";
    case RT_IMPROV_ERR_UNKNOWN_RPC: return "unknown RPC command";
    case RT_IMPROV_ERR_UNABLE_TO_CONNECT: return "unable to connect";
    case RT_IMPROV_ERR_BAD_HOSTNAME: return "bad hostname";
    case RT_IMPROV_ERR_UNKNOWN: return "unknown error";
    }
    return "unknown error";
}

/* --- service --------------------------------------------------------------------------------- */

static void send(rt_improv_service_t *s, uint8_t type, const uint8_t *data, size_t len)
{
    uint8_t out[RT_IMPROV_MAX_PACKET + 1];
    size_t n = rt_improv_packet(type, data, len, out, sizeof(out));
    if (n > 0) {
        s->ops->write(s->ops->ctx, out, n);
    }
}

static void set_state(rt_improv_service_t *s, rt_improv_state_t state, const char *ssid)
{
    uint8_t b = (uint8_t)state;
    s->state = state;
    send(s, RT_IMPROV_TYPE_CURRENT_STATE, &b, 1);
    if (s->ops->on_change) {
        s->ops->on_change(s->ops->ctx, s->state, s->error, ssid);
    }
}

static void set_error(rt_improv_service_t *s, rt_improv_error_t error)
{
    uint8_t b = (uint8_t)error;
    bool changed = s->error != error;
    s->error = error;
    send(s, RT_IMPROV_TYPE_ERROR_STATE, &b, 1);
    if (changed && error != RT_IMPROV_ERR_NONE && s->ops->on_change) {
        s->ops->on_change(s->ops->ctx, s->state, s->error, NULL);
    }
}

static void send_result(rt_improv_service_t *s, uint8_t command, const char *const *strings, size_t count)
{
    uint8_t out[RT_IMPROV_MAX_PACKET + 1];
    size_t n = rt_improv_rpc_result(command, strings, count, out, sizeof(out));
    if (n > 0) {
        s->ops->write(s->ops->ctx, out, n);
    }
}

static void send_redirect(rt_improv_service_t *s, uint8_t command)
{
    const char *url = s->ops->redirect_url;
    bool has = url != NULL && url[0] != '\0';
    send_result(s, command, &url, has ? 1 : 0);
}

static void emit_network(void *svc, const char *ssid, int rssi, bool secured)
{
    rt_improv_service_t *s = svc;
    char level[8];
    int v = rssi < -999 ? -999 : rssi > 999 ? 999 : rssi;
    int k = 0;
    if (v < 0) {
        level[k++] = '-';
        v = -v;
    }
    char digits[4];
    int d = 0;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (d > 0) {
        level[k++] = digits[--d];
    }
    level[k] = '\0';
    const char *strings[3] = {ssid, level, secured ? "YES" : "NO"};
    send_result(s, RT_IMPROV_CMD_WIFI_NETWORKS, strings, 3);
}

static void wifi_settings(rt_improv_service_t *s, const rt_improv_event_t *ev)
{
    char why[128];
    if (!rt_config_check_value("wifi_ssid", ev->ssid, why, sizeof(why)) ||
        (ev->pass[0] != '\0' && !rt_config_check_value("wifi_pass", ev->pass, why, sizeof(why)))) {
        set_error(s, RT_IMPROV_ERR_INVALID_RPC);   /* the same rules as `rtflash provision` */
        return;
    }
    set_state(s, RT_IMPROV_STATE_PROVISIONING, ev->ssid);
    if (!s->ops->connect(s->ops->ctx, ev->ssid, ev->pass)) {
        set_error(s, RT_IMPROV_ERR_UNABLE_TO_CONNECT);
        set_state(s, RT_IMPROV_STATE_AUTHORIZED, ev->ssid);
        return;
    }
    if (!s->ops->store(s->ops->ctx, ev->ssid, ev->pass)) {
        set_error(s, RT_IMPROV_ERR_UNKNOWN);
        set_state(s, RT_IMPROV_STATE_AUTHORIZED, ev->ssid);
        return;
    }
    set_state(s, RT_IMPROV_STATE_PROVISIONED, ev->ssid);
    send_redirect(s, RT_IMPROV_CMD_WIFI_SETTINGS);
}

static void on_event(void *ctx, const rt_improv_event_t *ev)
{
    rt_improv_service_t *s = ctx;
    if (ev->error != RT_IMPROV_ERR_NONE) {
        set_error(s, ev->error);
        return;
    }
    set_error(s, RT_IMPROV_ERR_NONE);   /* the spec: each RPC first clears the error state */
    switch (ev->command) {
    case RT_IMPROV_CMD_WIFI_SETTINGS:
        wifi_settings(s, ev);
        break;
    case RT_IMPROV_CMD_CURRENT_STATE:
        set_state(s, s->state, NULL);
        if (s->state == RT_IMPROV_STATE_PROVISIONED) {
            send_redirect(s, RT_IMPROV_CMD_CURRENT_STATE);
        }
        break;
    case RT_IMPROV_CMD_DEVICE_INFO: {
        const char *strings[4] = {s->ops->firmware, s->ops->version, s->ops->chip, s->ops->device_name};
        send_result(s, RT_IMPROV_CMD_DEVICE_INFO, strings, 4);
        break;
    }
    case RT_IMPROV_CMD_WIFI_NETWORKS:
        if (s->ops->scan) {
            s->ops->scan(s->ops->ctx, s, emit_network);
        }
        send_result(s, RT_IMPROV_CMD_WIFI_NETWORKS, NULL, 0);   /* an empty result ends the list */
        break;
    default:
        break;
    }
}

void rt_improv_service_init(rt_improv_service_t *s, const rt_improv_ops_t *ops, bool provisioned)
{
    rt_improv_parser_init(&s->parser);
    s->ops = ops;
    s->state = provisioned ? RT_IMPROV_STATE_PROVISIONED : RT_IMPROV_STATE_AUTHORIZED;
    s->error = RT_IMPROV_ERR_NONE;
}

void rt_improv_service_feed(rt_improv_service_t *s, const uint8_t *data, size_t n)
{
    rt_improv_feed(&s->parser, data, n, on_event, s);
}

void rt_improv_service_idle(rt_improv_service_t *s)
{
    if (rt_improv_idle(&s->parser)) {
        set_error(s, RT_IMPROV_ERR_INVALID_RPC);
    }
}
