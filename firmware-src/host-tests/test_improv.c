/* Improv Wi-Fi serial (rt_improv): parser, builders, service, and a fuzz test.
 * Client packets are built here the way the Improv SDK's client does (header, version 1, type,
 * length, data, checksum = low byte of the sum of the bytes before it, then '\n'). */
#include <stdint.h>
#include <stdlib.h>

#include "rt_improv.h"
#include "rt_test.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static size_t client_packet(uint8_t type, const uint8_t *data, size_t len, uint8_t *out)
{
    memcpy(out, "IMPROV", 6);
    out[6] = 1;
    out[7] = type;
    out[8] = (uint8_t)len;
    memcpy(out + 9, data, len);
    unsigned sum = 0;
    for (size_t i = 0; i < 9 + len; i++) {
        sum += out[i];
    }
    out[9 + len] = (uint8_t)sum;
    out[10 + len] = '\n';
    return 11 + len;
}

static size_t rpc(uint8_t cmd, const uint8_t *data, size_t len, uint8_t *out)
{
    uint8_t inner[300];
    inner[0] = cmd;
    inner[1] = (uint8_t)len;
    if (len > 0) {
        memcpy(inner + 2, data, len);
    }
    return client_packet(RT_IMPROV_TYPE_RPC, inner, len + 2, out);
}

static size_t wifi(const char *ssid, size_t ssid_len, const char *pass, size_t pass_len, uint8_t *out)
{
    uint8_t data[300];
    data[0] = (uint8_t)ssid_len;
    memcpy(data + 1, ssid, ssid_len);
    data[1 + ssid_len] = (uint8_t)pass_len;
    memcpy(data + 2 + ssid_len, pass, pass_len);
    return rpc(RT_IMPROV_CMD_WIFI_SETTINGS, data, 2 + ssid_len + pass_len, out);
}

#define MAX_EVENTS 64
typedef struct {
    rt_improv_event_t ev[MAX_EVENTS];
    int n;
} events_t;

static void collect(void *ctx, const rt_improv_event_t *ev)
{
    events_t *e = ctx;
    if (e->n < MAX_EVENTS) {
        e->ev[e->n] = *ev;
    }
    e->n++;
}

static events_t feed_all(const uint8_t *data, size_t n, size_t chunk)
{
    events_t e;
    memset(&e, 0, sizeof(e));
    rt_improv_parser_t p;
    rt_improv_parser_init(&p);
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        rt_improv_feed(&p, data + i, k, collect, &e);
    }
    return e;
}

static const char PASS[] = "canary-" "improv-pw-42";   /* a canary, in two pieces */

/* ---- parser -------------------------------------------------------------------------------- */

static void test_wifi_settings_whole_split_and_byte_by_byte(void)
{
    uint8_t buf[600];
    const char *noise = "I (123) rtflash: IMPROVISED log line\n";
    size_t n = strlen(noise);
    memcpy(buf, noise, n);
    n += wifi("HomeNet", 7, PASS, strlen(PASS), buf + n);
    for (size_t chunk = 1; chunk <= n; chunk++) {
        events_t e = feed_all(buf, n, chunk);
        CHECK(e.n == 1);
        CHECK(e.ev[0].error == RT_IMPROV_ERR_NONE);
        CHECK(e.ev[0].command == RT_IMPROV_CMD_WIFI_SETTINGS);
        CHECK_STR(e.ev[0].ssid, "HomeNet");
        CHECK_STR(e.ev[0].pass, PASS);
    }
}

static void test_open_network_and_the_other_rpcs(void)
{
    uint8_t buf[600];
    size_t n = wifi("Cafe", 4, "", 0, buf);
    n += rpc(RT_IMPROV_CMD_CURRENT_STATE, NULL, 0, buf + n);
    n += rpc(RT_IMPROV_CMD_DEVICE_INFO, NULL, 0, buf + n);
    n += rpc(RT_IMPROV_CMD_WIFI_NETWORKS, NULL, 0, buf + n);
    events_t e = feed_all(buf, n, n);
    CHECK(e.n == 4);
    CHECK(e.ev[0].error == RT_IMPROV_ERR_NONE && e.ev[0].pass[0] == '\0');
    CHECK(e.ev[1].command == RT_IMPROV_CMD_CURRENT_STATE && e.ev[1].error == RT_IMPROV_ERR_NONE);
    CHECK(e.ev[2].command == RT_IMPROV_CMD_DEVICE_INFO && e.ev[2].error == RT_IMPROV_ERR_NONE);
    CHECK(e.ev[3].command == RT_IMPROV_CMD_WIFI_NETWORKS && e.ev[3].error == RT_IMPROV_ERR_NONE);
}

static void expect_one_error(const uint8_t *buf, size_t n, rt_improv_error_t want)
{
    for (size_t chunk = 1; chunk <= n; chunk += (chunk < 4 ? 1 : 7)) {
        events_t e = feed_all(buf, n, chunk);
        CHECK(e.n == 1);
        CHECK(e.ev[0].error == want);
        CHECK(e.ev[0].ssid[0] == '\0' && e.ev[0].pass[0] == '\0');
    }
}

static void test_bad_packets_each_get_an_error_state(void)
{
    uint8_t buf[600], ssid[300];
    memset(ssid, 'a', sizeof(ssid));
    size_t n = wifi("HomeNet", 7, PASS, strlen(PASS), buf);
    buf[n - 2] ^= 0x55;                                   /* wrong checksum */
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    uint8_t inner[] = {RT_IMPROV_CMD_CURRENT_STATE, 3, 0};  /* RPC length says 3, carries 1 */
    n = client_packet(RT_IMPROV_TYPE_RPC, inner, sizeof(inner), buf);
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    n = client_packet(RT_IMPROV_TYPE_RPC, inner, 1, buf);  /* no RPC length byte at all */
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    n = rpc(0x42, NULL, 0, buf);                          /* unknown RPC */
    expect_one_error(buf, n, RT_IMPROV_ERR_UNKNOWN_RPC);

    n = wifi("", 0, PASS, strlen(PASS), buf);             /* 0-byte SSID */
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    n = wifi((const char *)ssid, 33, PASS, strlen(PASS), buf);   /* 33-byte SSID */
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    /* a 255-byte SSID: the length byte says 255, the packet cannot hold it */
    uint8_t data[253];
    memset(data, 'b', sizeof(data));
    data[0] = 255;
    n = rpc(RT_IMPROV_CMD_WIFI_SETTINGS, data, sizeof(data), buf);
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    n = wifi("HomeNet", 7, (const char *)ssid, 65, buf);  /* 65-byte password */
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    uint8_t settings[] = {4, 'a', 'b', 'c', 'd', 2, 'x', 'y', 'z'};   /* a byte after the password */
    n = rpc(RT_IMPROV_CMD_WIFI_SETTINGS, settings, sizeof(settings), buf);
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    uint8_t with_nul[] = {4, 'a', 0, 'c', 'd', 0};        /* NUL inside the SSID */
    n = rpc(RT_IMPROV_CMD_WIFI_SETTINGS, with_nul, sizeof(with_nul), buf);
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);

    uint8_t state = 4;                                    /* a packet type no one defines */
    n = client_packet(0x07, &state, 1, buf);
    expect_one_error(buf, n, RT_IMPROV_ERR_INVALID_RPC);
}

static void test_our_own_packets_echoed_back_are_ignored(void)
{
    uint8_t buf[600], state = RT_IMPROV_STATE_PROVISIONED, error = RT_IMPROV_ERR_NONE;
    size_t n = rt_improv_packet(RT_IMPROV_TYPE_CURRENT_STATE, &state, 1, buf, sizeof(buf));
    n += rt_improv_packet(RT_IMPROV_TYPE_ERROR_STATE, &error, 1, buf + n, sizeof(buf) - n);
    const char *url[] = {"http://x/"};
    n += rt_improv_rpc_result(RT_IMPROV_CMD_WIFI_SETTINGS, url, 1, buf + n, sizeof(buf) - n);
    events_t e = feed_all(buf, n, 1);
    CHECK(e.n == 0);   /* a terminal with echo on must not make the device answer itself forever */
}

static void test_other_versions_and_log_text_are_ignored(void)
{
    uint8_t buf[600];
    size_t n = rpc(RT_IMPROV_CMD_CURRENT_STATE, NULL, 0, buf);
    buf[6] = 2;
    events_t e = feed_all(buf, n, 1);
    CHECK(e.n == 0);
    const char *text = "IMPRO\nIMPROVE the log\nIMPROV";
    e = feed_all((const uint8_t *)text, strlen(text), 3);
    CHECK(e.n == 0);
}

static void test_truncated_packet_then_a_good_one_resynchronises(void)
{
    uint8_t buf[600];
    size_t cut = wifi("HomeNet", 7, PASS, strlen(PASS), buf) - 8;   /* the rest never comes */
    size_t n = cut + rpc(RT_IMPROV_CMD_DEVICE_INFO, NULL, 0, buf + cut);
    events_t e = feed_all(buf, n, 1);
    CHECK(e.n == 2);
    CHECK(e.ev[0].error == RT_IMPROV_ERR_INVALID_RPC);
    CHECK(e.ev[1].error == RT_IMPROV_ERR_NONE && e.ev[1].command == RT_IMPROV_CMD_DEVICE_INFO);

    rt_improv_parser_t p;
    rt_improv_parser_init(&p);
    memset(&e, 0, sizeof(e));
    rt_improv_feed(&p, buf, 20, collect, &e);
    CHECK(rt_improv_pending(&p));
    CHECK(rt_improv_idle(&p));            /* the line went quiet: dropped */
    CHECK(!rt_improv_pending(&p) && !rt_improv_idle(&p));
    for (size_t i = 0; i < sizeof(p.buf); i++) {
        CHECK(p.buf[i] == 0);             /* nothing of the password left behind */
        if (p.buf[i] != 0) break;
    }
    CHECK(e.n == 0);
}

static void test_builders(void)
{
    uint8_t out[300];
    uint8_t state = RT_IMPROV_STATE_PROVISIONED;
    size_t n = rt_improv_packet(RT_IMPROV_TYPE_CURRENT_STATE, &state, 1, out, sizeof(out));
    const uint8_t want[] = {'I', 'M', 'P', 'R', 'O', 'V', 1, 1, 1, 4, 0, '\n'};
    unsigned sum = 0;
    for (int i = 0; i < 10; i++) sum += want[i];
    CHECK(n == 12);
    CHECK(memcmp(out, want, 10) == 0 && out[10] == (uint8_t)sum && out[11] == '\n');
    CHECK(rt_improv_packet(1, &state, 1, out, 11) == 0);   /* does not fit */

    const char *strings[] = {"rtflash", "1.2.3"};
    n = rt_improv_rpc_result(RT_IMPROV_CMD_DEVICE_INFO, strings, 2, out, sizeof(out));
    CHECK(n == 9 + 2 + 1 + 7 + 1 + 5 + 2);
    CHECK(out[7] == RT_IMPROV_TYPE_RPC_RESULT && out[8] == 16 && out[9] == 3 && out[10] == 14);
    CHECK(out[11] == 7 && memcmp(out + 12, "rtflash", 7) == 0 && out[19] == 5);

    char big[256];
    memset(big, 'x', 255);
    big[255] = '\0';
    const char *too_long[] = {big};
    CHECK(rt_improv_rpc_result(1, too_long, 1, out, sizeof(out)) == 0);
    CHECK_STR(rt_improv_state_name(RT_IMPROV_STATE_PROVISIONED), "provisioned");
    CHECK_STR(rt_improv_error_name(RT_IMPROV_ERR_UNKNOWN_RPC), "unknown RPC command");
}

/* ---- service ------------------------------------------------------------------------------- */

typedef struct {
    uint8_t out[8192];
    size_t len;
    bool connect_ok, store_ok;
    char stored_ssid[40], stored_pass[80];
    int connects;
} fake_t;

static void fake_write(void *ctx, const uint8_t *data, size_t len)
{
    fake_t *f = ctx;
    if (f->len + len <= sizeof(f->out)) {
        memcpy(f->out + f->len, data, len);
        f->len += len;
    }
}

static bool fake_connect(void *ctx, const char *ssid, const char *pass)
{
    fake_t *f = ctx;
    (void)ssid;
    (void)pass;
    f->connects++;
    return f->connect_ok;
}

static bool fake_store(void *ctx, const char *ssid, const char *pass)
{
    fake_t *f = ctx;
    snprintf(f->stored_ssid, sizeof(f->stored_ssid), "%s", ssid);
    snprintf(f->stored_pass, sizeof(f->stored_pass), "%s", pass);
    return f->store_ok;
}

static void fake_scan(void *ctx, void *svc, rt_improv_emit_network emit)
{
    (void)ctx;
    emit(svc, "HomeNet", -61, true);
    emit(svc, "Cafe", -80, false);
}

/* Device output as the client reads it: "T:hex" per packet (type and data), space separated. */
static void decode_output(const fake_t *f, char *text, size_t cap)
{
    size_t pos = 0, i = 0;
    text[0] = '\0';
    while (i + 11 <= f->len) {
        CHECK(memcmp(f->out + i, "IMPROV\x01", 7) == 0);
        uint8_t type = f->out[i + 7], len = f->out[i + 8];
        unsigned sum = 0;
        for (size_t k = 0; k < 9u + len; k++) sum += f->out[i + k];
        CHECK(f->out[i + 9 + len] == (uint8_t)sum);
        CHECK(f->out[i + 10 + len] == '\n');
        pos += (size_t)snprintf(text + pos, cap - pos, "%s%u:", pos ? " " : "", type);
        for (size_t k = 0; k < len && pos + 3 < cap; k++) {
            uint8_t c = f->out[i + 9 + k];
            pos += (size_t)snprintf(text + pos, cap - pos, (c >= 0x20 && c < 0x7f && type == 4 && k >= 2) ? "%c" : "%02x", c);
        }
        i += 11u + len;
    }
    CHECK(i == f->len);
}

static rt_improv_ops_t ops_for(fake_t *f, const char *url)
{
    rt_improv_ops_t ops = {.write = fake_write, .connect = fake_connect, .store = fake_store, .scan = fake_scan,
                           .ctx = f, .firmware = "rtflash", .version = "1.2.3", .chip = "sonatino/ESP32-S3",
                           .device_name = "rtflash sonatino", .redirect_url = url};
    return ops;
}

static void test_service_provisions_and_answers(void)
{
    fake_t f = {.connect_ok = true, .store_ok = true};
    rt_improv_ops_t ops = ops_for(&f, "");
    rt_improv_service_t s;
    rt_improv_service_init(&s, &ops, false);
    uint8_t buf[600];
    size_t n = rpc(RT_IMPROV_CMD_CURRENT_STATE, NULL, 0, buf);
    rt_improv_service_feed(&s, buf, n);
    char text[2048];
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 1:02");   /* error cleared, state ready; no RPC result while not provisioned */

    f.len = 0;
    n = wifi("HomeNet", 7, PASS, strlen(PASS), buf);
    for (size_t i = 0; i < n; i++) {
        rt_improv_service_feed(&s, buf + i, 1);
    }
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 1:03 1:04 4:0100");   /* provisioning, provisioned, empty result: no URL set */
    CHECK_STR(f.stored_ssid, "HomeNet");
    CHECK_STR(f.stored_pass, PASS);
    CHECK(s.state == RT_IMPROV_STATE_PROVISIONED);

    f.len = 0;
    n = rpc(RT_IMPROV_CMD_DEVICE_INFO, NULL, 0, buf);
    rt_improv_service_feed(&s, buf, n);
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 4:033107rtflash051.2.311sonatino/ESP32-S310rtflash sonatino");

    f.len = 0;
    n = rpc(RT_IMPROV_CMD_WIFI_NETWORKS, NULL, 0, buf);
    rt_improv_service_feed(&s, buf, n);
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 4:041007HomeNet03-6103YES 4:040c04Cafe03-8002NO 4:0400");
}

static void test_service_redirect_url_and_state_when_provisioned(void)
{
    fake_t f = {.connect_ok = true, .store_ok = true};
    rt_improv_ops_t ops = ops_for(&f, "http://voicebox.local/");
    rt_improv_service_t s;
    rt_improv_service_init(&s, &ops, true);
    uint8_t buf[600];
    size_t n = rpc(RT_IMPROV_CMD_CURRENT_STATE, NULL, 0, buf);
    rt_improv_service_feed(&s, buf, n);
    char text[2048];
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 1:04 4:021716http://voicebox.local/");
}

static void test_service_errors(void)
{
    fake_t f = {.connect_ok = false, .store_ok = true};
    rt_improv_ops_t ops = ops_for(&f, "");
    rt_improv_service_t s;
    rt_improv_service_init(&s, &ops, false);
    uint8_t buf[600];
    char text[2048];
    size_t n = wifi("HomeNet", 7, PASS, strlen(PASS), buf);
    rt_improv_service_feed(&s, buf, n);
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 1:03 2:03 1:02");   /* could not connect: error 3, back to ready */
    CHECK(f.stored_ssid[0] == '\0');

    f.len = 0;
    f.connect_ok = true;
    n = wifi("HomeNet", 7, "short", 5, buf);   /* WPA2 needs 8-63: the rules of `rtflash provision` */
    rt_improv_service_feed(&s, buf, n);
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 2:01");
    CHECK(f.connects == 1);

    f.len = 0;
    f.store_ok = false;
    n = wifi("HomeNet", 7, PASS, strlen(PASS), buf);
    rt_improv_service_feed(&s, buf, n);
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:00 1:03 2:ff 1:02");

    f.len = 0;
    n = rpc(0x09, NULL, 0, buf);
    rt_improv_service_feed(&s, buf, n);
    rt_improv_service_feed(&s, buf, 10);      /* half a packet, then silence */
    rt_improv_service_idle(&s);
    decode_output(&f, text, sizeof(text));
    CHECK_STR(text, "2:02 2:01");
}

/* ---- fuzz ---------------------------------------------------------------------------------- */

static uint32_t rng = 0x1234567u;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static bool valid_error(rt_improv_error_t e)
{
    return e == RT_IMPROV_ERR_NONE || e == RT_IMPROV_ERR_INVALID_RPC || e == RT_IMPROV_ERR_UNKNOWN_RPC;
}

typedef struct {
    int events, bad;
} fuzz_t;

static void check_event(void *ctx, const rt_improv_event_t *ev)
{
    fuzz_t *f = ctx;
    f->events++;
    if (!valid_error(ev->error)) f->bad++;
    if (ev->error == RT_IMPROV_ERR_NONE && ev->command == RT_IMPROV_CMD_WIFI_SETTINGS) {
        size_t sl = strnlen(ev->ssid, sizeof(ev->ssid)), pl = strnlen(ev->pass, sizeof(ev->pass));
        if (sl < 1 || sl > RT_IMPROV_SSID_MAX || pl > RT_IMPROV_PASS_MAX) f->bad++;
    }
    if (ev->error != RT_IMPROV_ERR_NONE && (ev->ssid[0] || ev->pass[0])) f->bad++;
}

static void null_write(void *ctx, const uint8_t *data, size_t len)
{
    size_t *total = ctx;
    (void)data;
    *total += len;
}
static bool yes(void *ctx, const char *a, const char *b)
{
    (void)ctx, (void)a, (void)b;
    return true;
}

/* Random streams and mutated valid packets, fed in random splits to the parser and the service:
 * no crash, no read or write out of bounds (ASan / valgrind), every event well-formed; and a
 * stream of valid packets with noise between them always yields exactly those packets. */
static void test_fuzz(void)
{
    fuzz_t f = {0};
    size_t written = 0;
    rt_improv_ops_t ops = {.write = null_write, .connect = yes, .store = yes, .ctx = &written,
                           .firmware = "rtflash", .version = "x", .chip = "c", .device_name = "d"};
    rt_improv_service_t svc;
    rt_improv_service_init(&svc, &ops, false);
    rt_improv_parser_t p;
    rt_improv_parser_init(&p);
    uint8_t stream[2048];
    int iterations = getenv("RT_FUZZ_ITERATIONS") ? atoi(getenv("RT_FUZZ_ITERATIONS")) : 20000;
    for (int it = 0; it < iterations; it++) {
        size_t n = 0;
        while (n < sizeof(stream) - 300) {
            uint32_t r = next_rand() % 4;
            if (r == 0) {   /* random bytes, biased towards the header's */
                size_t k = next_rand() % 40;
                for (size_t i = 0; i < k; i++) {
                    uint32_t c = next_rand();
                    stream[n++] = (c & 3) == 0 ? (uint8_t)"IMPROV\x01\x03"[c % 8] : (uint8_t)(c >> 8);
                }
            } else {         /* a valid packet, sometimes mutated or cut */
                char ssid[40], pass[80];
                size_t sl = next_rand() % 36, pl = next_rand() % 70;
                memset(ssid, 'A' + (int)(next_rand() % 26), sl);
                memset(pass, 'a' + (int)(next_rand() % 26), pl);
                size_t start = n;
                n += (r == 1) ? wifi(ssid, sl, pass, pl, stream + n) : rpc((uint8_t)(next_rand() % 6), NULL, 0, stream + n);
                size_t len = n - start;
                if (next_rand() % 3 == 0) stream[start + next_rand() % len] ^= (uint8_t)(1u << (next_rand() % 8));
                if (next_rand() % 5 == 0) n = start + next_rand() % len;
            }
            if (next_rand() % 8 == 0) break;
        }
        for (size_t i = 0; i < n;) {
            size_t k = 1 + next_rand() % 64;
            if (k > n - i) k = n - i;
            rt_improv_feed(&p, stream + i, k, check_event, &f);
            rt_improv_service_feed(&svc, stream + i, k);
            if (p.len > RT_IMPROV_MAX_PACKET - 1) f.bad++;
            i += k;
        }
        if (next_rand() % 4 == 0) {
            rt_improv_idle(&p);
            rt_improv_service_idle(&svc);
        }
    }
    CHECK(f.bad == 0);
    CHECK(f.events > iterations);   /* the fuzzer does reach the decoder */
    CHECK(written > 0);

    /* property: valid packets separated by noise without an 'I' come out exactly, in any split */
    for (int it = 0; it < 2000; it++) {
        size_t n = 0;
        int want = 0;
        char ssids[8][40];
        while (want < 8) {
            size_t sl = 1 + next_rand() % 32;
            for (size_t i = 0; i < sl; i++) ssids[want][i] = (char)('a' + next_rand() % 26);
            ssids[want][sl] = '\0';
            n += wifi(ssids[want], sl, PASS, strlen(PASS), stream + n);
            want++;
            size_t k = next_rand() % 20;
            for (size_t i = 0; i < k; i++) {
                uint8_t c = (uint8_t)next_rand();
                stream[n++] = c == 'I' ? 'J' : c;
            }
        }
        events_t e = feed_all(stream, n, 1 + next_rand() % 50);
        CHECK(e.n == want);
        for (int i = 0; i < want && i < e.n; i++) {
            CHECK(e.ev[i].error == RT_IMPROV_ERR_NONE);
            CHECK_STR(e.ev[i].ssid, ssids[i]);
        }
        if (rt_failures) break;
    }
}

int main(void)
{
    RUN(test_wifi_settings_whole_split_and_byte_by_byte);
    RUN(test_open_network_and_the_other_rpcs);
    RUN(test_bad_packets_each_get_an_error_state);
    RUN(test_other_versions_and_log_text_are_ignored);
    RUN(test_our_own_packets_echoed_back_are_ignored);
    RUN(test_truncated_packet_then_a_good_one_resynchronises);
    RUN(test_builders);
    RUN(test_service_provisions_and_answers);
    RUN(test_service_redirect_url_and_state_when_provisioned);
    RUN(test_service_errors);
    RUN(test_fuzz);
    RT_TEST_DONE();
}
